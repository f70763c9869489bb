"""The CT path end to end: each case as a DICOM CT series through `pcc implant SERIES --ct`.

    python -m tools.benchmarks.bench_ct [--root ../shared/data/skullfix/training_set] [--cases validation|all|NAMES]
                             [--noise 20] [--no-table] [--csv docs/results/ct/bench_ct_cpu.csv]

Each case's defective skull and ground-truth implant become a head CT in Hounsfield units on the
case's own grid (tools/release/example_dicom.py: bone 1200 HU, scalp 40 HU over the bone and over the removed
bone, air, Gaussian noise, a head-holder plate behind the head), written as one DICOM file per slice
in shuffled order; `pcc implant SERIES --ct -o implant.nrrd --stl implant.stl --report run.json` then
segments it and designs the implant. Prints per case: DSC, bDSC and HD95 (mm) against the removed
bone, whether the implant lies on the series' grid, the largest difference (mm) between the STL's
bounding box and the implant volume's world bounding box (voxel centres), the seconds of the command,
and the segmentation's agreement with the defective skull (DSC). By default the development split.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from pcc.challenge.metrics import dice, score_case
from pcc.io import read_volume
from pcc.learning.cases import case_names, default_validation_split
from pcc.shared_data import skullfix_training_set
from tools.release.example_dicom import ct_hu, write_series


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(skullfix_training_set()))
    parser.add_argument("--cases", default="validation", help="validation, all, or comma-separated file names")
    parser.add_argument("--noise", type=float, default=20.0, help="CT noise, standard deviation in HU (default 20)")
    parser.add_argument("--no-table", action="store_true", help="leave out the head-holder plate")
    parser.add_argument("--csv", default=None)
    args = parser.parse_args()

    import trimesh

    from pcc.cli import main as pcc_main
    from pcc.io.dicom import read_series

    root = Path(args.root)
    names = case_names(root)
    names = default_validation_split(names) if args.cases == "validation" else names if args.cases == "all" else \
        [n if n.endswith(".nrrd") else f"{n}.nrrd" for n in args.cases.split(",")]
    header = ["case", "dsc", "bdsc", "hd95", "on_series_grid", "stl_box_error_mm", "seconds", "segmentation_dsc"]
    print(" ".join(f"{h:>16}" for h in header))
    rows = []
    for i, name in enumerate(names):
        skull, implant = read_volume(root / "defective_skull" / name), read_volume(root / "implant" / name)
        with tempfile.TemporaryDirectory() as tmp:
            series, out = Path(tmp) / "series", Path(tmp) / "out"
            out.mkdir()
            hu = ct_hu(skull, implant.mask(), noise_hu=args.noise, table=not args.no_table, seed=i)
            write_series(series, hu, skull.directions, skull.origin, description=f"{name} as CT", seed=i)
            start = time.perf_counter()
            status = pcc_main(["implant", str(series), "--ct", "-o", str(out / "implant.nrrd"), "--stl", str(out / "implant.stl"),
                               "--report", str(out / "run.json"), "--device", "cpu"])
            seconds = time.perf_counter() - start
            if status != 0:
                raise SystemExit(f"{name}: pcc implant --ct exited {status}")
            predicted, grid = read_volume(out / "implant.nrrd"), read_series(series)
            if not grid.same_grid(skull):
                raise SystemExit(f"{name}: the series does not reproduce the case's grid; scores would compare other voxels")
            scores = score_case(predicted.mask(), implant.mask(), skull.mask(), skull.spacing)
            world = np.argwhere(predicted.mask()) @ predicted.directions + predicted.origin
            mesh = trimesh.load(out / "implant.stl")
            box_error = float(np.abs(mesh.bounds - np.array([world.min(0), world.max(0)])).max()) if len(world) else float("inf")
            warnings = json.loads((out / "run.json").read_text())["cases"][0]["warnings"]
            segmentation = dice(_segmented(series), skull.mask())
        row = [name, scores.dsc, scores.bdsc, scores.hd95, predicted.same_grid(grid), box_error, seconds, segmentation]
        for warning in warnings:
            print(f"{name}: warning: {warning}")
        rows.append(row)
        print(f"{name:>16} " + " ".join(f"{v:16.3f}" if isinstance(v, float) else f"{str(v):>16}" for v in row[1:]), flush=True)
    values = np.array([[r[1], r[2], r[3], r[5], r[6], r[7]] for r in rows], dtype=float)
    print(f"{'mean':>16} DSC {values[:, 0].mean():.4f}  bDSC {values[:, 1].mean():.4f}  HD95 {values[:, 2].mean():.3f} mm  "
          f"STL box error max {values[:, 3].max():.3f} mm  {values[:, 4].mean():.1f} s per case  "
          f"segmentation DSC min {values[:, 5].min():.4f}")
    if args.csv:
        with open(args.csv, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)


def _segmented(series: Path) -> np.ndarray:
    """The skull pcc segments from the series (what `pcc implant --ct` designed from)."""
    from pcc.io.dicom import read_series
    from pcc.io.segment import segment_skull

    return segment_skull(read_series(series))


if __name__ == "__main__":
    main()
