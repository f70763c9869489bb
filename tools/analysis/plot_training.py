"""Plot training curves from a Lightning CSVLogger metrics.csv (panels without data are left out), or one run
of the compact log of the shipped and tried runs (docs/results/training/training_metrics.csv, column `run`).

    python -m tools.analysis.plot_training runs/skullfix/version_0/metrics.csv -o docs/images/training_curves.png
    python -m tools.analysis.plot_training docs/results/training/training_metrics.csv --run step4_cpu -o curves.png
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("metrics")
    parser.add_argument("-o", "--output", default="docs/images/training_curves.png")
    parser.add_argument("--run", help="the run to plot from a log with a `run` column (the compact log)")
    args = parser.parse_args()

    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    with open(args.metrics) as handle:
        rows = list(csv.DictReader(handle))
    if rows and "run" in rows[0]:
        runs = sorted({row["run"] for row in rows})
        if args.run not in runs:
            parser.error(f"give --run, one of: {', '.join(runs)}")
        rows = [row for row in rows if row["run"] == args.run]
    for row in rows:
        for key, value in row.items():
            if key not in ("epoch", "step", "run", "rows") and value:
                series[key].append((int(row["step"]), float(value)))

    panels = [
        ("training loss (normalised units)", ["train/loss", "train/local_fine", "train/global_chamfer"]),
        ("validation Chamfer (mm)", ["val/chamfer_mm"]),
        ("validation DSC / bDSC", ["val/dsc", "val/bdsc"]),
        ("validation HD95 (mm)", ["val/hd95"]),
        ("learning rate", ["train/lr"]),
    ]
    panels = [(title, keys) for title, keys in panels if any(series.get(key) for key in keys)]
    figure, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4), squeeze=False)
    axes = axes[0]
    for axis, (title, keys) in zip(axes, panels):
        for key in keys:
            if series.get(key):
                steps, values = zip(*series[key])
                axis.plot(steps, values, marker="o" if key.startswith("val") else None, ms=3, lw=1, label=key)
        axis.set_title(title)
        axis.set_xlabel("optimizer step")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    axes[0].set_yscale("log")
    figure.tight_layout()
    figure.savefig(args.output, dpi=110)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
