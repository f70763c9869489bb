"""Robustness benchmark of the implant pipeline: varied defect shapes, coarser grids, memory at 512³.

    python -m tools.benchmarks.bench_robustness [--model PATH] [--cases validation|N|NAMES] [--shapes all|S1,S2]
                                     [--parts varied,coarse,slices,complete,memory] [--slice-mm 1.5] [--seed 0]
                                     [--device auto] [--csv out.csv]

Parts (all by default):

- varied: for each case (default: the fixed validation split of the SkullFix training set, never
  trained on), read its complete skull (complete_skull/NAME), cut one defect of every shape in
  pcc.learning.defects.SHAPES (seeded by --seed, the case name and the shape, so reruns cut the same defects),
  design the implant and score DSC, bDSC and HD95 against the cut-out bone. Prints per-shape and
  overall mean and minimum.
- coarse: the case's defective skull and implant at 2× coarser voxels (2×2×2 blocks; a coarse voxel
  is bone when at least half its block is; the coarse implant is coarse(defective ∪ implant) minus the
  coarse defective skull, the same "complete minus defective" definition as the challenge's). Space
  directions ×2, origin moved to the centre of the first block. Scored against that coarse ground truth.
- slices: the case's real defect as a hospital CT with thicker slices sees it (--slice-mm, default 1.5: runs of
  round(1.5 / slice step) whole slices made one, bone where at least half the run is, i.e. 1.25–1.5 mm on the
  development scans; pcc.learning.slices), the
  truth the thick-slice complete skull minus the thick-slice defective one. Shape column: e.g. "z1.5".
- complete: the case's complete skull (no defect) as input: the implant should be empty or
  negligible, with pcc's "no defect found" warning. Prints the implant's volume and whether it warned.
- memory: peak resident memory (in a fresh child process, so nothing else is counted) of reading the
  model and running design_implant on a synthetic 512³ skull-like shell at 0.4 mm (SkullBreak's grid).

Issue 6's bars: varied mean DSC ≥ 0.87, bDSC ≥ 0.89, HD95 ≤ 2.5 mm, no case below DSC 0.6;
coarse mean DSC ≥ 0.85; complete skulls: negligible implant and a warning; 512³ peak memory < 4 GiB.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from pcc.challenge.metrics import score_case
from pcc.design import design_implant, load_model, no_defect_warning
from pcc.io import read_volume
from pcc.learning.defects import SHAPES
from pcc.learning.slices import thicker_slices
from pcc.shared_data import skullfix_training_set
from pcc.volume import Volume
from tools import REPO
from tools.benchmarks.cases import downsample_2x, select_cases, varied_defect

DEFAULT_ROOT = skullfix_training_set()
PARTS = ("varied", "coarse", "slices", "complete", "memory")
CSV_HEADER = ["part", "case", "shape", "dsc", "bdsc", "hd95", "implant_cm3", "seconds", "peak_gib"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(DEFAULT_ROOT), help="folder with complete_skull/, defective_skull/, implant/")
    parser.add_argument("--model", default=None, help="checkpoint (.ckpt) or exported weights (default: shipped)")
    parser.add_argument("--cases", default="validation",
                        help="validation (default), N (the first N validation cases) or comma-separated names")
    parser.add_argument("--shapes", default="all", help=f"all or a comma-separated subset of {','.join(SHAPES)}")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--slice-mm", type=float, default=1.5, help="slice thickness of the slices part (mm)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--csv", default=None, help="write one row per scored case (and the memory figure)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a pcc.design.settings.DesignSettings field of the model, e.g. --set point_smoothing_mm=3")
    parser.add_argument("--memory-size", type=int, default=512, help=argparse.SUPPRESS)
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.memory_child:
        print(json.dumps(_memory_child(args.model, args.device, args.memory_size)))
        return
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    shapes = list(SHAPES) if args.shapes == "all" else [s.strip() for s in args.shapes.split(",")]
    if unknown or set(shapes) - set(SHAPES):
        parser.error(f"unknown part or shape: {sorted(unknown | (set(shapes) - set(SHAPES)))}")
    root = Path(args.root)
    scored = {"varied", "coarse", "slices", "complete"} & set(parts)
    names = select_cases(root, args.cases) if scored else []
    rows: list[list] = []
    if scored:
        start = time.perf_counter()
        model = load_model(args.model, device=args.device)
        model.settings = model.settings.with_overrides(args.set)
        print(f"model {model.source} on {model.device} ({time.perf_counter() - start:.1f} s); "
              f"cases: {' '.join(n[:-5] for n in names)}", flush=True)
        if "varied" in parts:
            rows += varied_defects(root, names, shapes, model, seed=args.seed)
        if "coarse" in parts:
            rows += coarse_grid(root, names, model)
        if "slices" in parts:
            rows += thick_slices(root, names, model, args.slice_mm)
        if "complete" in parts:
            rows += complete_skulls(root, names, model)
    if "memory" in parts:
        rows.append(memory_row(args.model, args.device, args.memory_size))
    if args.csv:
        with open(args.csv, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(CSV_HEADER)
            writer.writerows(row + [""] * (len(CSV_HEADER) - len(row)) for row in rows)
        print(f"wrote {args.csv}")


def _score(part: str, name: str, shape: str, defective: Volume, truth: np.ndarray, model) -> list:
    start = time.perf_counter()
    implant = design_implant(defective, model)
    seconds = time.perf_counter() - start
    scores = score_case(implant.mask(), truth, defective.mask(), defective.spacing)
    cm3 = implant.mask().sum() * implant.voxel_volume / 1000
    row = [part, name[:-5], shape, scores.dsc, scores.bdsc, scores.hd95, cm3, seconds]
    print(f"{part:>7} {name[:-5]:>5} {shape:>16}  DSC {scores.dsc:.3f}  bDSC {scores.bdsc:.3f}  "
          f"HD95 {scores.hd95:6.2f} mm  implant {cm3:5.1f} cm³  {seconds:5.1f} s", flush=True)
    return row


def varied_defects(root: Path, names: list[str], shapes: list[str], model, *, seed: int) -> list[list]:
    rows = []
    for name in names:
        complete = read_volume(root / "complete_skull" / name)
        for shape in shapes:
            defective, implant = varied_defect(complete, name, shape, seed)
            rows.append(_score("varied", name, shape, defective, implant, model))
    _summary(rows, key=lambda r: r[2], title="varied defects, per shape")
    return rows


def coarse_grid(root: Path, names: list[str], model) -> list[list]:
    rows = []
    for name in names:
        defective = read_volume(root / "defective_skull" / name)
        truth = read_volume(root / "implant" / name).mask()
        small, small_truth = downsample_2x(defective, truth)
        rows.append(_score("coarse", name, "2x", small, small_truth, model))
    _summary(rows, key=lambda r: r[2], title="2× coarser grid")
    return rows


def thick_slices(root: Path, names: list[str], model, slice_mm: float) -> list[list]:
    rows = []
    for name in names:
        defective = read_volume(root / "defective_skull" / name)
        complete = defective.with_array((defective.mask() | read_volume(root / "implant" / name).mask()).view(np.uint8))
        coarse = thicker_slices(defective, slice_mm)
        truth = thicker_slices(complete, slice_mm).mask() & ~coarse.mask()
        rows.append(_score("slices", name, f"z{slice_mm:g}", coarse, truth, model))
    _summary(rows, key=lambda r: r[2], title=f"slices {slice_mm:g} mm thick")
    return rows


def complete_skulls(root: Path, names: list[str], model) -> list[list]:
    """Complete skulls as input: rows with the implant's volume (cm³) and shape 'warned' or 'NOT warned'."""
    rows = []
    for name in names:
        complete = read_volume(root / "complete_skull" / name)
        start = time.perf_counter()
        implant = design_implant(complete, model)
        seconds = time.perf_counter() - start
        warned = no_defect_warning(implant, complete, model.settings) is not None
        cm3 = implant.mask().sum() * implant.voxel_volume / 1000
        print(f"complete {name[:-5]:>5}  implant {cm3:5.1f} cm³  {'warned' if warned else 'NOT warned'}  {seconds:5.1f} s", flush=True)
        rows.append(["complete", name[:-5], "warned" if warned else "NOT warned", "", "", "", cm3, seconds])
    warned_count = sum(row[2] == "warned" for row in rows)
    print(f"\ncomplete skulls: {warned_count} of {len(rows)} with a negligible implant and the warning; "
          f"largest implant {max(row[6] for row in rows):.1f} cm³\n", flush=True)
    return rows


def _summary(rows: list[list], *, key, title: str) -> None:
    if not rows:
        return
    # An empty implant has HD95 inf (pcc.challenge.metrics), which makes the mean inf: the median and the
    # count of empty implants say more then.
    print(f"\n{title}: {'':>10} mean DSC  min DSC  mean bDSC  mean HD95 (mm)  median HD95  empty  cases")
    groups: dict[str, list[list]] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    if len(groups) > 1:
        groups["overall"] = rows
    for group, members in groups.items():
        v = np.array([r[3:6] for r in members], dtype=float)
        print(f"{group:>28}  {v[:, 0].mean():8.3f} {v[:, 0].min():8.3f} {v[:, 1].mean():10.3f} "
              f"{v[:, 2].mean():15.2f} {np.median(v[:, 2]):12.2f} {int(np.isinf(v[:, 2]).sum()):6d}  {len(members):5d}")
    print(flush=True)


def synthetic_shell(size: int = 512, spacing_mm: float = 0.4) -> Volume:
    """A skull-sized hollow ellipsoid (6 mm bone) with a 50 mm hole on top, cut open by the array's bottom.

    Built slice by slice, so making it costs no more memory than the uint8 array itself.
    """
    centre = np.array([size / 2, size / 2, size * 0.4])
    radii = np.array([0.43, 0.37, 0.45]) * size  # ~88 × 76 mm semi-axes at 0.4 mm on 512³
    thickness = 6.0 / spacing_mm
    hole = 25.0 / spacing_mm
    array = np.zeros((size, size, size), np.uint8)
    x, y = np.meshgrid(np.arange(size) - centre[0], np.arange(size) - centre[1], indexing="ij")
    for k in range(size):
        z = k - centre[2]
        outer = (x / radii[0]) ** 2 + (y / radii[1]) ** 2 + (z / radii[2]) ** 2 <= 1
        inner = (x / (radii[0] - thickness)) ** 2 + (y / (radii[1] - thickness)) ** 2 + (z / (radii[2] - thickness)) ** 2 <= 1
        shell = outer & ~inner
        if z > 0:
            shell &= np.hypot(x, y) >= hole
        array[:, :, k] = shell
    origin = -centre * spacing_mm
    return Volume(array, np.eye(3) * spacing_mm, origin)


def _memory_child(model_path: str | None, device: str, size: int) -> dict:
    volume = synthetic_shell(size)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    model = load_model(model_path, device=device)
    start = time.perf_counter()
    implant = design_implant(volume, model)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return {"size": size, "peak_gib": peak, "before_model_gib": before, "seconds": seconds,
            "implant_cm3": float(implant.mask().sum() * implant.voxel_volume / 1000), "device": str(model.device)}


def memory_row(model_path: str | None, device: str, size: int) -> list:
    command = [sys.executable, "-m", "tools.benchmarks.bench_robustness", "--memory-child", "--device", device,
               "--memory-size", str(size)] + (["--model", model_path] if model_path else [])
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if result.returncode != 0:
        raise RuntimeError(f"memory run failed:\n{result.stderr[-3000:]}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"memory: design_implant on a synthetic {size}³ input ({figures['device']}): peak resident memory "
          f"{figures['peak_gib']:.2f} GiB (process with the input made, before the model: "
          f"{figures['before_model_gib']:.2f} GiB), "
          f"{figures['seconds']:.1f} s, implant {figures['implant_cm3']:.1f} cm³", flush=True)
    return ["memory", f"synthetic{size}", "", "", "", "", round(figures["implant_cm3"], 3), round(figures["seconds"], 3),
            round(figures["peak_gib"], 3)]

if __name__ == "__main__":
    main()
