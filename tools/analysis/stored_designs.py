"""The development split's 80 designs stored once as crops, shared by the analysis tools that work on them
(rim_thickness, rim_continuation, representation_bound): its 10 real defects and the 70 varied ones of
tools.benchmarks.bench_robustness (same seeds), each kept as an .npz of the defective skull, the truth and the
design (bool arrays, the skull's array index order) cropped CROP_MARGIN_MM around truth and design, with the grid's
spacing and directions (mm).
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np

from pcc.design import design_implant, load_model
from pcc.geometry.masks import widened_box
from pcc.io import read_volume
from pcc.learning.defects import SHAPES
from tools.benchmarks.cases import select_cases, varied_defect

CROP_MARGIN_MM = 20.0


def store_designs(root: Path, out: Path, model_path: str | None) -> None:
    """Design every development case not yet stored under `out` and keep its crop."""
    out.mkdir(parents=True, exist_ok=True)
    model = None
    names = select_cases(root, "validation")
    cases = [(name, "real") for name in names] + [(name, shape) for name in names for shape in SHAPES]
    for name, shape in cases:
        target = out / f"{name[:3]}_{shape}.npz"
        if target.is_file():
            continue
        if model is None:
            model = load_model(model_path, device="cpu")
        if shape == "real":
            defective, truth = read_volume(root / "defective_skull" / name), read_volume(root / "implant" / name).mask()
        else:
            defective, truth = varied_defect(read_volume(root / "complete_skull" / name), name, shape, 0)
        start = time.perf_counter()
        design = design_implant(defective, model).mask()
        lower, upper = widened_box(truth | design, np.ceil(CROP_MARGIN_MM / defective.spacing).astype(int))
        box = tuple(slice(a, b) for a, b in zip(lower, upper))
        np.savez_compressed(target, defective=defective.mask()[box], truth=truth[box], pred=design[box],
                            spacing=defective.spacing, directions=defective.directions)
        print(f"designed {target.stem} in {time.perf_counter() - start:.1f} s", flush=True)


def write_rows(rows: list[dict], path: str | None) -> None:
    """Write one CSV row per stored design (when a path is given)."""
    if path:
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def print_group_means(rows: list[dict]) -> None:
    """Print, for every column after "case", its mean over the real, the varied and the frontal (frontoorbital) cases."""
    groups = {"real": lambda c: c.endswith("_real"), "varied": lambda c: not c.endswith("_real"),
              "frontal": lambda c: c.endswith("_frontoorbital")}
    for key in list(rows[0])[1:]:
        means = "  ".join(f"{group} {np.mean([r[key] for r in rows if keep(r['case'])]):.4f}"
                          for group, keep in groups.items())
        print(f"{key:>14}  {means}")
