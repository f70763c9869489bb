"""Benchmark `pcc implant` over cases with ground truth: accuracy, time per stage, peak memory.

    python -m tools.benchmarks.bench_implant [--root ../shared/data/skullfix/training_set] [--cases validation|all|NAMES]
                                  [--model PATH] [--device auto] [--passes 4] [--set NAME=VALUE] [--no-cleanup] [--csv out.csv]

The root holds defective_skull/ and implant/ with the same file names. By default the fixed
validation split (never trained on) is scored. Prints one row per case and the mean: DSC, bDSC,
HD95 (mm), seconds per stage (read, cloud, network, voxelize+clean-up, write) and the process's
peak resident memory. Runs on the CPU or a GPU (--device).
"""

from __future__ import annotations

import argparse
import csv
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from pcc.challenge.metrics import score_case
from pcc.design import design_implant, load_model
from pcc.design.settings import DesignSettings
from pcc.io import read_volume, write_volume
from pcc.learning.cases import case_names, default_validation_split
from pcc.shared_data import skullfix_training_set

STAGES = ("read", "cloud", "network", "voxelize_cleanup", "write")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(skullfix_training_set()))
    parser.add_argument("--cases", default="validation", help="validation, all, or comma-separated file names")
    parser.add_argument("--model", default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--passes", type=int, default=None, help="local passes (default: the model's settings)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a pcc.design.settings.DesignSettings field, e.g. --set point_smoothing_mm=3 (repeatable)")
    parser.add_argument("--no-cleanup", action="store_true")
    parser.add_argument("--csv", default=None)
    args = parser.parse_args()

    root = Path(args.root)
    names = case_names(root)
    if args.cases == "validation":
        names = default_validation_split(names)
    elif args.cases != "all":
        names = [n if n.endswith(".nrrd") else f"{n}.nrrd" for n in args.cases.split(",")]

    start = time.perf_counter()
    model = load_model(args.model, device=args.device)
    settings = model.settings.with_overrides(args.set + ([f"local_passes={args.passes}"] if args.passes else []))
    changed = {k: v for k, v in settings.as_dict().items() if v != getattr(DesignSettings(), k)}
    print(f"model {model.source} on {model.device}, loaded in {time.perf_counter() - start:.1f} s; "
          f"settings other than the defaults: {changed or 'none'}; cleanup={not args.no_cleanup}")
    header = ["case", "dsc", "bdsc", "hd95", *STAGES, "total"]
    print(" ".join(f"{h:>9}" for h in header))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            timings: dict[str, float] = {}
            t = time.perf_counter()
            defective = read_volume(root / "defective_skull" / name)
            timings["read"] = time.perf_counter() - t
            implant = design_implant(defective, model, settings=settings, timings=timings, cleanup=not args.no_cleanup)
            t = time.perf_counter()
            write_volume(Path(tmp) / name, implant)
            timings["write"] = time.perf_counter() - t
            truth = read_volume(root / "implant" / name)
            scores = score_case(implant.mask(), truth.mask(), defective.mask(), defective.spacing)
            row = [name, scores.dsc, scores.bdsc, scores.hd95, *(timings[s] for s in STAGES), sum(timings.values())]
            rows.append(row)
            print(f"{name:>9} " + " ".join(f"{v:9.3f}" for v in row[1:]), flush=True)
    values = np.array([r[1:] for r in rows], dtype=float)
    print(f"{'mean':>9} " + " ".join(f"{v:9.3f}" for v in values.mean(axis=0)))
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"peak resident memory of the process: {peak_gib:.2f} GiB")
    if args.csv:
        with open(args.csv, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)


if __name__ == "__main__":
    main()
