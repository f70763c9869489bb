"""The priors ablation table (issue 16) from the CSV files the benchmarks write, per defect class.

    python -m tools.benchmarks.ablation_table --row "LABEL=VALIDATION_CSV,ROBUSTNESS_CSV" [--row ...]
                                   [--prior-alone docs/results/ablation/bench_prior_alone_cpu.csv] [--out docs/results/ablation/ablation_priors.md]

VALIDATION_CSV: `tools/benchmarks/bench_implant.py --csv` (the real SkullFix defects of the development split);
ROBUSTNESS_CSV: `tools/benchmarks/bench_robustness.py --parts varied --csv` (one defect of every pcc shape cut into
the same skulls). --prior-alone: `tools/benchmarks/bench_prior.py --csv` (the aligned mirror image alone, told
where the hole is; its "local" rows). The issue's classes: one-sided lateral = parietotemporal,
frontal = frontoorbital, bilateral, random; the other shapes are shown too. Writes a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

CLASSES = ("parietotemporal", "frontoorbital", "bilateral", "random", "craniotomy", "cube", "sphere")
TITLES = {"parietotemporal": "lateral", "frontoorbital": "frontal", "bilateral": "bilateral", "random": "random",
          "craniotomy": "craniot.", "cube": "cube", "sphere": "sphere"}


def _read(path: str) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _mean(rows: list[dict], key: str) -> float:
    return float(np.mean([float(r[key]) for r in rows])) if rows else float("nan")


def table_row(label: str, real: list[dict], varied: list[dict]) -> str:
    """One Markdown row: real DSC/bDSC/HD95, varied DSC/bDSC/HD95, min, per-class mean DSC."""
    varied = [r for r in varied if r.get("part", "varied") == "varied"]
    dscs = [float(r["dsc"]) for r in varied]
    cells = [label,
             f"{_mean(real, 'dsc'):.3f} / {_mean(real, 'bdsc'):.3f} / {_mean(real, 'hd95'):.2f}" if real else "",
             f"{_mean(varied, 'dsc'):.3f} / {_mean(varied, 'bdsc'):.3f} / {_mean(varied, 'hd95'):.2f}" if varied else "",
             f"{min(dscs):.3f} ({sum(d < 0.75 for d in dscs)})" if dscs else ""]
    cells += [f"{_mean([r for r in varied if r['shape'] == c], 'dsc'):.3f}" for c in CLASSES]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--row", action="append", default=[], help="LABEL=VALIDATION_CSV,ROBUSTNESS_CSV")
    parser.add_argument("--prior-alone", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    lines = ["| model | SkullFix-type DSC / bDSC / HD95 mm | varied DSC / bDSC / HD95 mm | varied min DSC (cases < 0.75) | "
             + " | ".join(TITLES[c] for c in CLASSES) + " |",
             "|---" * (4 + len(CLASSES)) + "|"]
    if args.prior_alone:
        rows = [r for r in _read(args.prior_alone) if r["fit"] == "local"]
        real = [r for r in rows if r["shape"] == "real"]
        lines.append(table_row("mirror prior alone (told where the hole is)", real, [r for r in rows if r["shape"] != "real"]))
    for spec in args.row:
        label, _, files = spec.partition("=")
        validation, _, robustness = files.partition(",")
        lines.append(table_row(label, _read(validation) if validation else [], _read(robustness) if robustness else []))
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
