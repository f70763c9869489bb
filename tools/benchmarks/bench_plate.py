"""Benchmark the plate options of `pcc implant` (issue 32) on cases designed with the shipped model.

    python -m tools.benchmarks.bench_plate [--root ../shared/data/skullfix/training_set] [--cases validation|N|NAMES]
                                           [--model PATH] [--device auto] [--csv out.csv]

Each case is designed once (pcc.design.design_implant); then, through the pipeline's own functions:
  (a) the default STL against the raw marching-cubes surface of the same implant
      (pcc.outputs.printing.printable_mesh with smoothing_iterations=0): the ratio of their mean dihedral
      angles, the Hausdorff distance (hausdorff_mm), the change of the mesh volume, the STL's checks;
  (b) --thickness 5 (pcc.pipeline.finish.finish_implant, then print_implant as `pcc implant --stl` does):
      the plate's thickness away from the rim (pcc.design.plate.plate_thickness_mm: p05, median, p95) and
      the STL's checks;
  (c) --thickness 5 --holes 2:10 (default margin 5 mm): the number of holes N, the STL's genus
      ((2 - Euler number) / 2), watertightness, bodies and checks, the face-connected parts of the holed
      volume, and the least distance from a hole's centre to the centre of a bone voxel (world mm);
and the seconds of each stage. One CSV row per case; a summary (means, worst, the acceptance checks of
issue 32) is printed and, with --csv, written beside it as .txt.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np

from pcc.design import design_implant, load_model
from pcc.io import read_volume
from pcc.pipeline.finish import FinishOptions, finish_implant
from pcc.shared_data import skullfix_training_set
from tools.benchmarks.cases import select_cases

THICKNESS_MM = 5.0
HOLES = (2.0, 10.0)
MARGIN_MM = 5.0

COLUMNS = (
    "case", "voxel_mm", "implant_cm3",
    # (a) the default STL against the raw surface
    "raw_dihedral_deg", "stl_dihedral_deg", "dihedral_ratio", "hausdorff_mm", "volume_change_pct", "stl_ok",
    # (b) --thickness 5
    "plate_p05_mm", "plate_median_mm", "plate_p95_mm", "plate_cm3", "plate_genus", "plate_dihedral_ratio", "plate_ok",
    # (c) --thickness 5 --holes 2:10
    "holes", "genus", "watertight", "bodies", "parts", "min_centre_bone_mm", "holes_dihedral_ratio",
    "holes_median_mm", "holes_ok", "warnings",
    # seconds
    "read_s", "design_s", "raw_mesh_s", "stl_s", "hausdorff_s", "plate_finish_s", "plate_stl_s",
    "holes_finish_s", "holes_stl_s",
)


def measure_case(defective, implant, timings: dict[str, float]) -> dict:
    """The figures (a)-(c) of one designed implant (see the module's docstring); seconds added to timings."""
    from scipy import ndimage

    from pcc.outputs.printing import check_printable, hausdorff_mm, mesh_smoothness, print_implant, printable_mesh

    def timed(name: str, compute):
        start = time.perf_counter()
        result = compute()
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start
        return result

    def dihedral(mesh) -> float:
        return mesh_smoothness(mesh)["mean_dihedral_deg"]

    row: dict = {"voxel_mm": float(defective.spacing.max()),
                 "implant_cm3": int(np.count_nonzero(implant.array)) * defective.voxel_volume / 1000}
    # (a) the default STL (as `pcc implant --stl` writes it) against the raw marching-cubes surface
    raw = timed("raw_mesh_s", lambda: printable_mesh(implant, smoothing_iterations=0))
    smooth = timed("stl_s", lambda: printable_mesh(implant))
    row.update(raw_dihedral_deg=dihedral(raw), stl_dihedral_deg=dihedral(smooth),
               dihedral_ratio=dihedral(smooth) / dihedral(raw),
               hausdorff_mm=timed("hausdorff_s", lambda: hausdorff_mm(smooth, raw)),
               volume_change_pct=100 * (smooth.volume / raw.volume - 1), stl_ok=check_printable(smooth, implant)["ok"])

    def finished(options: FinishOptions, stage: str):
        """(finished volume, its record, its printed STL, the raw surface's mean dihedral angle)."""
        record: dict = {}
        spent: dict[str, float] = {}
        warnings: list[str] = []
        volume = finish_implant(implant, defective, options, record=record, timings=spent, warnings=warnings)
        timings[f"{stage}_finish_s"] = spent["finish"]
        printed = timed(f"{stage}_stl_s", lambda: print_implant(volume, defective=defective, with_thickness=False))
        row["warnings"] = row.get("warnings", 0) + len(warnings) + len(printed.warnings)
        raw_angle = dihedral(printable_mesh(volume, smoothing_iterations=0))  # (not timed: not a stage of the command)
        return volume, record, printed, raw_angle

    # (b) --thickness 5
    plate, record, printed, raw_angle = finished(FinishOptions(thickness_mm=THICKNESS_MM), "plate")
    measured = record["plate"]["measured_mm"]
    row.update(plate_p05_mm=measured["p05"], plate_median_mm=measured["median"], plate_p95_mm=measured["p95"],
               plate_cm3=int(np.count_nonzero(plate.array)) * defective.voxel_volume / 1000,
               plate_genus=(2 - int(printed.mesh.euler_number)) / 2,
               plate_dihedral_ratio=printed.record["mean_dihedral_deg"] / raw_angle, plate_ok=printed.record["ok"])
    # (c) --thickness 5 --holes 2:10
    holed, record, printed, raw_angle = finished(FinishOptions(thickness_mm=THICKNESS_MM, holes=HOLES,
                                                               hole_margin_mm=MARGIN_MM), "holes")
    mesh = printed.mesh
    centres = np.asarray(record["holes"]["centres_mm"], dtype=np.float64).reshape(-1, 3)
    row.update(holes=record["holes"]["count"], genus=(2 - int(mesh.euler_number)) / 2, watertight=bool(mesh.is_watertight),
               bodies=int(mesh.body_count), parts=int(ndimage.label(holed.mask())[1]),
               min_centre_bone_mm=centre_to_bone_mm(defective, centres),
               holes_dihedral_ratio=printed.record["mean_dihedral_deg"] / raw_angle,
               holes_median_mm=record["plate"]["measured_mm"]["median"], holes_ok=printed.record["ok"])
    return row


def centre_to_bone_mm(defective, centres: np.ndarray, reach_mm: float = 40.0) -> float:
    """Least distance (mm) from the points (N, 3 world mm) to the centre of a bone voxel of the defective skull
    (bone searched within reach_mm of the points' box; inf when there is none there or no point)."""
    from scipy.spatial import cKDTree

    if len(centres) == 0:
        return float("inf")
    corners = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)])
    low, high = centres.min(axis=0) - reach_mm, centres.max(axis=0) + reach_mm
    index = defective.world_to_index(low + corners * (high - low))
    lower = np.clip(np.floor(index.min(axis=0)).astype(int), 0, defective.shape)
    upper = np.clip(np.ceil(index.max(axis=0)).astype(int) + 1, 0, defective.shape)
    box = tuple(slice(lo, hi) for lo, hi in zip(lower, upper))
    bone = np.argwhere(defective.mask(box)) + lower
    if len(bone) == 0:
        return float("inf")
    return float(cKDTree(defective.index_to_world(bone)).query(centres)[0].min())


def summary_lines(rows: list[dict]) -> list[str]:
    """Means and worst cases of the figures, and the acceptance checks of issue 32."""
    def column(name: str) -> np.ndarray:
        return np.array([r[name] for r in rows], dtype=float)

    def worst(name: str, pick=np.argmax, digits: int = 3) -> str:
        values = column(name)
        i = int(pick(values))
        return f"{values[i]:.{digits}f} ({rows[i]['case']})"

    n = len(rows)
    deviation = np.abs(column("plate_median_mm") - THICKNESS_MM)
    voxel = column("voxel_mm")
    lines = [
        f"{n} cases; --thickness {THICKNESS_MM:g}, --holes {HOLES[0]:g}:{HOLES[1]:g}, --hole-margin {MARGIN_MM:g}",
        "",
        "(a) default STL against the raw marching-cubes surface",
        f"  mean dihedral angle, raw       mean {column('raw_dihedral_deg').mean():.2f} deg",
        f"  mean dihedral angle, STL       mean {column('stl_dihedral_deg').mean():.2f} deg",
        f"  dihedral ratio STL / raw       mean {column('dihedral_ratio').mean():.3f}, worst {worst('dihedral_ratio')}",
        f"  Hausdorff STL-raw (mm)         mean {column('hausdorff_mm').mean():.3f}, worst {worst('hausdorff_mm')}; "
        f"largest voxel {voxel.min():.3f}-{voxel.max():.3f} mm",
        f"  volume change (%)              mean {column('volume_change_pct').mean():+.3f}, "
        f"largest |change| {np.abs(column('volume_change_pct')).max():.3f}",
        f"  STL checks ok                  {int(column('stl_ok').sum())}/{n}",
        f"(b) --thickness {THICKNESS_MM:g}",
        f"  measured median (mm)           mean {column('plate_median_mm').mean():.3f}, range "
        f"{column('plate_median_mm').min():.3f}-{column('plate_median_mm').max():.3f}, "
        f"worst |median - {THICKNESS_MM:g}| {deviation.max():.3f} ({rows[int(np.argmax(deviation))]['case']})",
        f"  measured p05 / p95 (mm)        mean {column('plate_p05_mm').mean():.3f} / {column('plate_p95_mm').mean():.3f}; "
        f"lowest p05 {worst('plate_p05_mm', np.argmin)}, highest p95 {worst('plate_p95_mm')}",
        f"  dihedral ratio STL / raw       mean {column('plate_dihedral_ratio').mean():.3f}, worst {worst('plate_dihedral_ratio')}",
        f"  STL checks ok                  {int(column('plate_ok').sum())}/{n}",
        f"(c) --thickness {THICKNESS_MM:g} --holes {HOLES[0]:g}:{HOLES[1]:g}",
        f"  holes N                        mean {column('holes').mean():.1f}, fewest {worst('holes', np.argmin, 0)}",
        f"  genus = N                      {int((column('genus') == column('holes')).sum())}/{n}",
        f"  genus of the plate without holes: 0 in {int((column('plate_genus') == 0).sum())}/{n}",
        f"  watertight, one body           {int(((column('watertight') == 1) & (column('bodies') == 1)).sum())}/{n}",
        f"  one face-connected part        {int((column('parts') == 1).sum())}/{n}",
        f"  centre to bone voxel (mm)      least {worst('min_centre_bone_mm', np.argmin)} (margin {MARGIN_MM:g})",
        f"  dihedral ratio STL / raw       mean {column('holes_dihedral_ratio').mean():.3f}, worst {worst('holes_dihedral_ratio')}",
        f"  measured median (mm)           mean {column('holes_median_mm').mean():.3f}",
        f"  STL checks ok                  {int(column('holes_ok').sum())}/{n}",
        f"warnings of (b) and (c) (finish_implant, print_implant): {int(column('warnings').sum())} in all",
        "",
        "seconds per case (mean, worst)",
    ]
    for name in COLUMNS:
        if name.endswith("_s"):
            lines.append(f"  {name[:-2]:<28} {column(name).mean():7.1f}  {worst(name)}")
    checks = [
        ("(b) median within 5 ± 0.3 mm", deviation <= 0.3),
        ("(b) STL checks ok", column("plate_ok") == 1),
        ("(c) N ≥ 5", column("holes") >= 5),
        ("(c) watertight, one body, genus N", (column("watertight") == 1) & (column("bodies") == 1)
         & (column("genus") == column("holes"))),
        (f"(c) every centre ≥ {MARGIN_MM - 1:g} mm from bone", column("min_centre_bone_mm") >= MARGIN_MM - 1),
        ("(a) dihedral ratio ≤ 0.5", column("dihedral_ratio") <= 0.5),
        ("(a) Hausdorff ≤ largest voxel", column("hausdorff_mm") <= voxel),
        ("(a) volume within 2 %", np.abs(column("volume_change_pct")) <= 2.0),
    ]
    lines += ["", "acceptance (issue 32): cases that pass"]
    for text, passed in checks:
        failed = [r["case"] for r, ok in zip(rows, passed) if not ok]
        lines.append(f"  {text:<36} {int(passed.sum())}/{n}" + (f"  failed: {', '.join(failed)}" if failed else ""))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(skullfix_training_set()), help="folder with defective_skull/")
    parser.add_argument("--cases", default="validation", help="validation, N (its first N), or comma-separated file names (e.g. 005.nrrd,018.nrrd)")
    parser.add_argument("--model", default=None, help="weights (default: the shipped model)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--csv", type=Path, default=None, help="one row per case; the summary goes beside it as .txt")
    args = parser.parse_args()

    root = Path(args.root)
    names = select_cases(root, args.cases)
    start = time.perf_counter()
    model = load_model(args.model, device=args.device)
    print(f"model {model.source} on {model.device}, loaded in {time.perf_counter() - start:.1f} s; {len(names)} cases",
          flush=True)
    shown = ("case", "dihedral_ratio", "hausdorff_mm", "volume_change_pct", "plate_median_mm", "plate_ok", "holes",
             "genus", "bodies", "min_centre_bone_mm", "holes_ok", "design_s")
    print(" ".join(f"{h[:12]:>12}" for h in shown), flush=True)
    rows = []
    for name in names:
        timings: dict[str, float] = {}
        t = time.perf_counter()
        defective = read_volume(root / "defective_skull" / name)
        timings["read_s"] = time.perf_counter() - t
        t = time.perf_counter()
        implant = design_implant(defective, model)
        timings["design_s"] = time.perf_counter() - t
        row = {"case": name, **measure_case(defective, implant, timings), **timings}
        rows.append(row)
        print(" ".join(f"{_cell(row[h]):>12}" for h in shown), flush=True)
    lines = summary_lines(rows)
    print("\n".join(lines))
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with open(args.csv, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            writer.writerows([[_cell(row[c]) for c in COLUMNS] for row in rows])
        args.csv.with_suffix(".txt").write_text("\n".join(lines) + "\n")
        print(f"wrote {args.csv} and {args.csv.with_suffix('.txt')}")


def _cell(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)):
        return f"{value:.3f}"
    return str(value)


if __name__ == "__main__":
    main()
