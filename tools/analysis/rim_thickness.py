"""Issue 30, route 3 in its simplest form: would thinning each implant to the rim bone's thickness pay?

    python -m tools.analysis.rim_thickness [--model WEIGHTS] [--designs runs/designs_shipped]
                                           [--csv OUT.csv]

Designs the development split's 80 implants once (its 10 real defects and the 70 varied ones of
tools.benchmarks.bench_robustness, same seeds) and keeps a crop of each (defective skull, truth, design; .npz
under --designs, reused by later runs). Then, per case, on the crop: the 95th percentile of the half thickness
(distance to the nearest voxel centre outside, mm) of the bone within 10 mm of the implant (the rim), of the
true implant and of the designed one (both measured with the skull's bone counted as inside, so where they meet
the bone is no surface); and the DSC after thinning the design to k × rim + m mm of half thickness (a layer of the
excess peeled off both surfaces; nothing done where the design is not thicker than that) for k in 1.0, 1.2, 1.4
and m in 0, 0.5, 1 mm. Also, as the frontal sinus shows itself: the share of the front-back lines (array axis 1,
y, posterior on an LPS grid) through the true implant that cross two or more separate runs of it, for the truth
and for the design (a frontal defect's bone lies across that axis; a lateral one's along it, where a curved shell
is met twice anyway). Prints one row per case and the means.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage

from pcc.challenge.metrics import dice
from pcc.shared_data import skullfix_training_set
from tools import REPO
from tools.analysis.stored_designs import store_designs, write_rows

VARIANTS = [(k, m) for k in (1.0, 1.2, 1.4) for m in (0.0, 0.5, 1.0)]
RIM_MM = 10.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(skullfix_training_set()))
    parser.add_argument("--model", default=None, help="weights (default: shipped)")
    parser.add_argument("--designs", default=str(REPO / "runs" / "designs_shipped"), help="folder of the stored designs")
    parser.add_argument("--csv", default=None)
    args = parser.parse_args()
    designs = Path(args.designs)
    store_designs(Path(args.root), designs, args.model)
    rows = [thinning_row(path) for path in sorted(designs.glob("*.npz"))]
    write_rows(rows, args.csv)
    for key in list(rows[0])[6:]:
        real = [row[key] for row in rows if row["case"].endswith("_real")]
        varied = [row[key] for row in rows if not row["case"].endswith("_real")]
        print(f"{key:>16}  real {np.mean(real):.4f}  varied {np.mean(varied):.4f}  worst varied {min(varied):.4f}")


def two_layer_share(mask: np.ndarray, truth: np.ndarray) -> float:
    """Share of the lines along array axis 1 that meet the truth on which `mask` has two or more separate runs."""
    starts = np.count_nonzero(np.diff(mask.astype(np.int8), axis=1) == 1, axis=1) + mask[:, 0, :]
    lines = truth.any(axis=1)
    return round(float(np.mean(starts[lines] >= 2)), 3) if lines.any() else 0.0


def thinning_row(path: Path) -> dict:
    stored = np.load(path)
    bone, truth, design, spacing = stored["defective"], stored["truth"], stored["pred"], stored["spacing"]
    rim = bone & (ndimage.distance_transform_edt(~design, sampling=spacing) <= RIM_MM)
    rim_half = float(np.percentile(ndimage.distance_transform_edt(bone, sampling=spacing)[rim], 95))
    depth = ndimage.distance_transform_edt(bone | design, sampling=spacing)  # below the skull's surface, design included
    design_half = float(np.percentile(depth[design], 95)) if design.any() else 0.0
    true_half = float(np.percentile(ndimage.distance_transform_edt(bone | truth, sampling=spacing)[truth], 95))
    row = {"case": path.stem, "rim_half_mm": round(rim_half, 3), "truth_half_mm": round(true_half, 3),
           "design_half_mm": round(design_half, 3), "truth_two_layers": two_layer_share(truth, truth),
           "design_two_layers": two_layer_share(design, truth), "dsc": round(dice(design, truth), 4)}
    for k, m in VARIANTS:
        excess = design_half - (k * rim_half + m)
        row[f"dsc_k{k}_m{m}"] = row["dsc"] if excess <= 0 else round(dice(design & (depth > excess), truth), 4)
    print(" ".join(str(value) for value in row.values()), flush=True)
    return row


if __name__ == "__main__":
    main()
