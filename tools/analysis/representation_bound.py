"""Issue 30: how far could a perfect network take the pipeline? The reconstruction's ceiling per defect class.

    python -m tools.analysis.representation_bound [--model WEIGHTS] [--designs runs/designs_shipped]
                                                  [--points 8192,32768] [--set NAME=VALUE ...] [--csv OUT.csv]

Uses the development split's 80 stored designs of tools.analysis.rim_thickness. Per case, on the crop: the true
implant's surface is sampled as the networks' training targets are (pcc.geometry.surface.volume_to_points, no
smoothing, exact outward normals) at each --points count (8,192 is what the shipped design voxelizes per defect: the
last local prediction's 4 resamplings of 2,048 points; a bilateral truth is sampled as one, so each side gets about
half that), and those points go through the shipped reconstruction
(pcc.design.reconstruction.implant_from_points with the design settings the weights carry, or changed by --set:
surface step when on, voxelizer, clean-up, rim step).
The DSC against the truth is what a network that predicted the true surface exactly would score; beside it the
stored design's DSC. Prints one row per case and the means of the real, varied and frontal (frontoorbital) cases.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pcc.challenge.metrics import dice
from pcc.design import load_model
from pcc.design.reconstruction import implant_from_points
from pcc.design.settings import DesignSettings
from pcc.geometry.surface import volume_to_points
from pcc.volume import Volume
from tools import REPO
from tools.analysis.stored_designs import print_group_means, write_rows

POINTS = (8192, 32768)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="weights whose design settings are used (default: shipped)")
    parser.add_argument("--designs", default=str(REPO / "runs" / "designs_shipped"),
                        help="folder of the stored designs (python -m tools.analysis.rim_thickness writes them)")
    parser.add_argument("--points", default=",".join(str(n) for n in POINTS), help="point counts, comma-separated")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a design setting changed (pcc.design.settings.DesignSettings), e.g. rim_band_mm=0")
    parser.add_argument("--csv", default=None)
    args = parser.parse_args()
    paths = sorted(Path(args.designs).glob("*.npz"))
    if not paths:
        raise SystemExit(f"no stored designs in {args.designs}: run python -m tools.analysis.rim_thickness first")
    counts = tuple(int(n) for n in args.points.split(","))
    settings = load_model(args.model, device="cpu").settings.with_overrides(args.set)
    rows = [bound_row(path, counts, settings) for path in paths]
    write_rows(rows, args.csv)
    print_group_means(rows)


def bound_row(path: Path, counts: tuple[int, ...], settings: DesignSettings) -> dict:
    """{"case", "design": the stored design's DSC, "truth_points_N": the DSC of the reconstruction from N
    samples of the true surface, per N}."""
    stored = np.load(path)
    bone, truth, design = stored["defective"], stored["truth"], stored["pred"]
    directions = stored["directions"] if "directions" in stored.files else np.diag(stored["spacing"])
    defective = Volume(bone.astype(np.uint8), directions, np.zeros(3))
    row: dict = {"case": path.stem, "design": round(dice(design, truth), 4)}
    for count in counts:
        cloud = volume_to_points(defective.with_array(truth.astype(np.uint8)), count, smoothing_voxels=0.0)
        implant = implant_from_points(cloud, defective, settings=settings)
        row[f"truth_points_{count}"] = round(dice(implant, truth), 4)
    print(" ".join(str(value) for value in row.values()), flush=True)
    return row


if __name__ == "__main__":
    main()
