"""Sweep the settings that act after the networks (surface step, voxelizer, clean-up) on cases with
ground truth: an ablation on the development split, not a tuner.

    python -m tools.analysis.sweep_cleanup [--model PATH] [--root ../shared/data/skullfix/training_set]
        [--grid point_smoothing_mm=0,2,3,4] [--grid surface_smoothing_mm=0.5,1.0] [--csv out.csv]

For each development case (the fixed split, never trained on) the networks run once (first search,
the model's settings); every combination of the --grid values of pcc.design.settings.DesignSettings fields
(those implant_from_points uses: point_smoothing_mm, kernel_neighbours, implant_reach_mm,
surface_smoothing_mm, rim_closing_mm, sliver_mm) is then applied to that output and scored. Prints
the mean DSC, bDSC and HD95 (mm) of every combination; --csv writes one row per case and combination.
"""

from __future__ import annotations

import argparse
import csv
import itertools
from pathlib import Path

import numpy as np

import pcc.design as pipeline
from pcc.challenge.metrics import score_case
from pcc.design.reconstruction import implant_from_points
from pcc.io import read_volume
from pcc.learning.cases import case_names, default_validation_split
from pcc.shared_data import skullfix_training_set

AFTER_THE_NETWORKS = ("point_smoothing_mm", "kernel_neighbours", "implant_reach_mm", "surface_smoothing_mm",
                      "rim_closing_mm", "sliver_mm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(skullfix_training_set()))
    parser.add_argument("--model", default=None)
    parser.add_argument("--cases", default="validation", help="validation or comma-separated file names")
    parser.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2,...",
                        help=f"values of one setting (repeatable); NAME one of {', '.join(AFTER_THE_NETWORKS)}")
    parser.add_argument("--csv", default=None)
    args = parser.parse_args()

    grid: dict[str, list[str]] = {}
    for item in args.grid:
        name, _, values = item.partition("=")
        if name not in AFTER_THE_NETWORKS or not values:
            parser.error(f"--grid {item!r}: expected NAME=V1,V2 with NAME one of {', '.join(AFTER_THE_NETWORKS)}")
        grid[name] = values.split(",")
    root = Path(args.root)
    model = pipeline.load_model(args.model, device="cpu")
    combinations = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    settings = [model.settings.with_overrides([f"{k}={v}" for k, v in combo.items()]) for combo in combinations]
    names = default_validation_split(case_names(root)) if args.cases == "validation" else \
        [n if n.endswith(".nrrd") else f"{n}.nrrd" for n in args.cases.split(",")]
    rows = []
    for name in names:
        defective = read_volume(root / "defective_skull" / name)
        truth = read_volume(root / "implant" / name).mask()
        cloud = pipeline.implant_cloud(defective, model, settings=model.settings)
        for combo, setting in zip(combinations, settings):
            implant = implant_from_points(cloud, defective, settings=setting)
            result = score_case(implant, truth, defective.mask(), defective.spacing)
            rows.append({"case": name, **combo, "dsc": result.dsc, "bdsc": result.bdsc, "hd95": result.hd95})
        print(f"{name} done", flush=True)
    print(" ".join(f"{k:>20}" for k in grid) + f" {'DSC':>6} {'bDSC':>6} {'HD95':>6}")
    for combo in combinations:
        values = np.array([[r["dsc"], r["bdsc"], r["hd95"]] for r in rows if all(r[k] == v for k, v in combo.items())])
        dsc, bdsc, hd95 = values.mean(axis=0)
        print(" ".join(f"{v:>20}" for v in combo.values()) + f" {dsc:6.4f} {bdsc:6.4f} {hd95:6.3f}")
    if args.csv:
        with open(args.csv, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
