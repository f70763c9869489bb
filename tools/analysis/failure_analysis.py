"""Where a defect class's wrong voxels lie: one row per development-split case of one pcc defect shape.

    python -m tools.analysis.failure_analysis [--shape frontoorbital] [--model PATH] [--out docs/results/analysis/failure_analysis_frontoorbital_cpu.txt]

The defects are cut by tools/benchmarks/bench_robustness.py's varied_defect (same seed, case name and shape, so
the rows match its CSV), the implant designed with the given weights (default: shipped). Per case:
DSC; the true and the predicted implant's volume, and the volumes predicted outside the truth (false
positive) and missed (false negative), cm³; the distance of the points the networks predict in the
first search (pcc.design.implant.implant_cloud, run again for them) to the true implant's surface
(median and 90th percentile, mm: how scattered the points are); the 95th percentile
of the half thickness (distance to the nearest outside voxel centre, mm) of the true implant, of the
predicted one and of the skull's bone within 10 voxels of the truth (how thin the bone is there).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pcc.cli import memory_settings
from pcc.shared_data import skullfix_training_set

memory_settings()  # before NumPy is imported, as the pcc command does

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from pcc.challenge.metrics import score_case
from pcc.design import design_implant, load_model
from pcc.design.implant import implant_cloud
from pcc.geometry.masks import bounding_box, box_slices
from pcc.io import read_volume
from pcc.learning.cases import case_names, default_validation_split
from pcc.learning.defects import SHAPES
from tools.benchmarks.cases import varied_defect

DEFAULT_ROOT = skullfix_training_set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(DEFAULT_ROOT), help="folder with complete_skull/ (SkullFix training set)")
    parser.add_argument("--shape", default="frontoorbital", choices=SHAPES)
    parser.add_argument("--model", default=None, help="checkpoint (.ckpt) or exported weights (default: shipped)")
    parser.add_argument("--seed", type=int, default=0, help="as tools/benchmarks/bench_robustness.py --seed")
    parser.add_argument("--out", default=None, help="also write the printed table to this file")
    args = parser.parse_args()

    root = Path(args.root)
    model = load_model(args.model)
    lines = [f"{args.shape} defects of the development split, weights {args.model or 'shipped'}; "
             f"python -m tools.analysis.failure_analysis {' '.join(sys.argv[1:])}",
             "case    DSC  truth cm³  predicted cm³  false pos. cm³  missed cm³ | points to true surface mm: "
             "median  p90 | half thickness p95 mm: truth  predicted  bone near the hole"]
    print("\n".join(lines), flush=True)
    for name in default_validation_split(case_names(root)):
        defective, truth = varied_defect(read_volume(root / "complete_skull" / name), name, args.shape, args.seed)
        predicted = design_implant(defective, model).mask()
        points = implant_cloud(defective, model).points
        dsc = score_case(predicted, truth, defective.mask(), defective.spacing).dsc
        cm3 = defective.voxel_volume / 1000
        first, end = bounding_box(truth | predicted)
        lower, upper = np.maximum(first - 20, 0), end + 19  # 20 voxels around the implants, either side
        box = box_slices(lower, upper)
        true_box, predicted_box, bone_box = truth[box], predicted[box], defective.mask(box)
        surface = true_box & ~ndimage.binary_erosion(true_box)
        distance, _ = cKDTree(defective.index_to_world(np.argwhere(surface) + lower)).query(points)
        bone_near = ndimage.binary_dilation(true_box, iterations=10) & bone_box
        thickness = [half_thickness_p95(mask, where, defective.spacing)
                     for mask, where in ((true_box, true_box), (predicted_box, predicted_box), (bone_box, bone_near))]
        lines.append(
            f"{Path(name).stem:>4} {dsc:6.3f} {true_box.sum() * cm3:10.1f} {predicted_box.sum() * cm3:14.1f} "
            f"{(predicted_box & ~true_box).sum() * cm3:15.1f} {(true_box & ~predicted_box).sum() * cm3:11.1f} | "
            f"{np.median(distance):33.2f} {np.percentile(distance, 90):4.2f} | "
            f"{thickness[0]:27.2f} {thickness[1]:10.2f} {thickness[2]:19.2f}")
        print(lines[-1], flush=True)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


def half_thickness_p95(mask: np.ndarray, where: np.ndarray, spacing: np.ndarray) -> float:
    """95th percentile (mm) over the voxels `where` of the distance to mask's nearest outside voxel centre."""
    return float(np.percentile(ndimage.distance_transform_edt(mask, sampling=spacing)[where], 95))


if __name__ == "__main__":
    main()
