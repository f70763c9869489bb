"""The mirror prior alone (pcc.geometry.symmetry), scored as an implant: how much the skull's other side knows.

    python -m tools.benchmarks.bench_prior [--root ../shared/data/skullfix/training_set] [--cases validation|N|NAMES]
                                [--shapes real,all|S1,S2] [--seed 0] [--csv docs/results/ablation/bench_prior_alone_cpu.csv]

For each case (default: the development split, never trained on) and each defect: the real SkullFix
defect ("real") and one defect of every pcc shape cut into the complete skull with the same seeds as
tools/benchmarks/bench_robustness.py. The prior is told where the hole is (the true implant's centre and radius,
which the network's global stage estimates in use): the skull's mirror image is fitted to the whole
skull ("whole") and again to the bone around the hole ("local"), and the mirrored bone inside the
hole is the implant (symmetry.mirror_implant, within 1.05 defect radii of the centre). Prints DSC,
bDSC and HD95 of both per case, and their means per shape.
"""

from __future__ import annotations

import argparse
import csv
import time
import zlib
from pathlib import Path

import numpy as np

from pcc.challenge.metrics import score_case
from pcc.geometry import symmetry
from pcc.geometry.frames import defect_frame
from pcc.geometry.surface import volume_to_points
from pcc.io import read_volume
from pcc.learning.defects import SHAPES, make_defect
from pcc.models.inputs import NETWORK_SURFACE_SMOOTHING, SKULL_POINTS
from pcc.shared_data import skullfix_training_set
from tools.benchmarks.cases import select_cases

REACH_RADII = 1.05
HEADER = ["case", "shape", "fit", "dsc", "bdsc", "hd95", "icp_rmse_mm", "seconds"]


def prior_rows(name: str, shape: str, defective, truth: np.ndarray) -> list[list]:
    """Rows (HEADER) of the whole-skull and local mirror fits of one defective skull."""
    start = time.perf_counter()
    skull = volume_to_points(defective, SKULL_POINTS, seed=0, smoothing_voxels=NETWORK_SURFACE_SMOOTHING)
    hole = volume_to_points(defective.with_array(truth.astype(np.uint8)), 4096, seed=2, smoothing_voxels=NETWORK_SURFACE_SMOOTHING)
    frame = defect_frame(hole.points)
    whole = symmetry.whole_skull_mirror(skull.points, skull.normals)
    local = symmetry.local_mirror(skull.points, skull.normals, whole, frame.centre, frame.scale)
    rows = []
    for label, fit in (("whole", whole), ("local", local)):
        implant = symmetry.mirror_implant(defective, fit, frame.centre, REACH_RADII * frame.scale)
        scores = score_case(implant, truth, defective.mask(), defective.spacing)
        rows.append([name, shape, label, scores.dsc, scores.bdsc, scores.hd95, fit.inlier_rmse_mm,
                     time.perf_counter() - start])
    print(f"{name:>5} {shape:>16}  whole DSC {rows[0][3]:.3f}  local DSC {rows[1][3]:.3f} bDSC {rows[1][4]:.3f} "
          f"HD95 {rows[1][5]:6.2f} mm  (ICP rmse {whole.inlier_rmse_mm:.2f} → {local.inlier_rmse_mm:.2f} mm)", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(skullfix_training_set()))
    parser.add_argument("--cases", default="validation", help="validation (the development split), N (its first N) or NAMES")
    parser.add_argument("--shapes", default="real,all", help=f"real and/or all or a subset of {','.join(SHAPES)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", default=None)
    args = parser.parse_args()

    root = Path(args.root)
    names = select_cases(root, args.cases)
    requested = [s.strip() for s in args.shapes.split(",")]
    shapes = [s for s in requested if s not in ("all", "real")] + (list(SHAPES) if "all" in requested else [])
    rows: list[list] = []
    for name in names:
        if "real" in requested:
            defective = read_volume(root / "defective_skull" / name)
            rows += prior_rows(name[:-5], "real", defective, read_volume(root / "implant" / name).mask())
        if shapes:
            complete = read_volume(root / "complete_skull" / name)
        for shape in shapes:
            rng = np.random.default_rng([args.seed, zlib.crc32(f"{name}/{shape}".encode())])
            cut, truth = make_defect(complete, shape=shape, rng=rng)
            rows += prior_rows(name[:-5], shape, complete.with_array(cut.astype(np.uint8)), truth)

    print(f"\nmirror prior alone, told where the hole is: {'':>6} mean DSC (whole / local)  min  mean bDSC  mean HD95  cases")
    for shape in dict.fromkeys(row[1] for row in rows):
        whole = np.array([r[3:6] for r in rows if r[1] == shape and r[2] == "whole"], float)
        local = np.array([r[3:6] for r in rows if r[1] == shape and r[2] == "local"], float)
        print(f"{shape:>44}  {whole[:, 0].mean():.3f} / {local[:, 0].mean():.3f}  {local[:, 0].min():.3f}  "
              f"{local[:, 1].mean():9.3f}  {local[:, 2].mean():9.2f}  {len(local):5d}")
    if args.csv:
        with open(args.csv, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(HEADER)
            writer.writerows([r[0], r[1], r[2], *(f"{v:.4f}" for v in r[3:])] for r in rows)
        print(f"wrote {args.csv}")


if __name__ == "__main__":
    main()
