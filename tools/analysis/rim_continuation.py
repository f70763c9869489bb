"""Issue 30, route 3 in full: would continuing the rim bone's own surfaces into the hole pay, and how much could?

    python -m tools.analysis.rim_continuation [--model WEIGHTS] [--designs runs/designs_shipped]
                                              [--bands 2,3.5,5,7] [--near-mm 2] [--csv OUT.csv]

Uses the development split's 80 stored designs of tools.analysis.rim_thickness (designed once when missing).
Per case, on the crop:

- **Bound** (`oracle_B`): the DSC when the design is replaced by the truth within B mm of the defective
  skull's bone (B = 2, 5, 10), i.e. the most a step acting in that band could reach.
- **Continuation** (`continued_B`, one per --bands value): the design continued from the rim over a band of
  B mm by pcc.design.rim (the pipeline's `rim_band_mm`; --near-mm: only voxels this close to the design
  change), applied to the stored design's crop.

Prints one row per case and the means of the real, varied and frontal (frontoorbital) cases.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage

from pcc.challenge.metrics import dice
from pcc.design.rim import NEAR_DESIGN_MM, blend, plate_near_rim
from pcc.shared_data import skullfix_training_set
from tools import REPO
from tools.analysis.stored_designs import print_group_means, store_designs, write_rows

ORACLE_BANDS_MM = (2.0, 5.0, 10.0)
CONTINUATION_BANDS_MM = (2.0, 3.5, 5.0, 7.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(skullfix_training_set()))
    parser.add_argument("--model", default=None, help="weights (default: shipped)")
    parser.add_argument("--designs", default=str(REPO / "runs" / "designs_shipped"), help="folder of the stored designs")
    parser.add_argument("--bands", default=",".join(f"{b:g}" for b in CONTINUATION_BANDS_MM),
                        help="continuation bands, mm from the bone, comma-separated")
    parser.add_argument("--near-mm", type=float, default=NEAR_DESIGN_MM,
                        help="only voxels within this of the design's surface are re-decided, mm, at most 4 "
                             "(an analysis knob: the pipeline uses pcc.design.rim.NEAR_DESIGN_MM)")
    parser.add_argument("--csv", default=None)
    args = parser.parse_args()
    bands = tuple(float(b) for b in args.bands.split(","))
    designs = Path(args.designs)
    store_designs(Path(args.root), designs, args.model)
    rows = [continuation_row(path, bands, args.near_mm) for path in sorted(designs.glob("*.npz"))]
    write_rows(rows, args.csv)
    print_group_means(rows)


def continuation_row(path: Path, bands_mm: tuple[float, ...], near_mm: float) -> dict:
    stored = np.load(path)
    bone, truth, design, spacing = stored["defective"], stored["truth"], stored["pred"], stored["spacing"]
    directions = stored["directions"] if "directions" in stored.files else np.diag(spacing)
    to_bone = ndimage.distance_transform_edt(~bone, sampling=spacing)
    row: dict = {"case": path.stem, "dsc": round(dice(design, truth), 4)}
    for band in ORACLE_BANDS_MM:
        row[f"oracle_{band:g}"] = round(dice(np.where(to_bone <= band, truth, design), truth), 4)
    near_rim = plate_near_rim(bone, design, directions, max(bands_mm), near_mm=near_mm)
    for band in bands_mm:
        row[f"continued_{band:g}"] = round(dice(blend(design, near_rim, band), truth), 4)
    print(" ".join(str(value) for value in row.values()), flush=True)
    return row


if __name__ == "__main__":
    main()
