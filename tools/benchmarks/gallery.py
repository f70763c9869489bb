"""The README's gallery: design the implants of the 10 SkullFix additional test cases and the
SkullBreak sample, write their previews to docs/images/gallery/, and check every STL as printed.

    python -m tools.benchmarks.gallery                       # shipped weights, previews → docs/images/gallery/
    python -m tools.benchmarks.gallery --model run.ckpt --device cuda
    python -m tools.benchmarks.gallery --truth 000 011 043   # no network: ground-truth implants of training cases

Each STL is read back from disk and checked against its voxel implant: trimesh watertight and
winding-consistent, one component, volume within ±2 % of voxel count × voxel volume, world bounding
box within one voxel. Prints a table; exit status 1 when any check fails. Data: ../shared/data
(SkullFix and SkullBreak, CC BY-NC-SA 4.0; the pictures derived from them carry that licence).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from pcc.io import read_volume
from pcc.outputs.printing import check_printable, solid_mask
from pcc.pipeline import Job, run_jobs
from pcc.shared_data import data_root
from tools import REPO


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=data_root())
    parser.add_argument("--model", help="checkpoint (default: the shipped weights)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "gallery", help="folder for the previews")
    parser.add_argument("--work", type=Path, help="folder for the implant volumes and STLs (default: a temporary one)")
    parser.add_argument("--truth", nargs="+", metavar="CASE",
                        help="use the ground-truth implants of these training cases instead of the network")
    parser.add_argument("--overwrite", action="store_true", help="redo cases whose outputs exist in --work")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="pcc_gallery_"))
    for folder in (work / "implants", work / "stl", args.out):
        folder.mkdir(parents=True, exist_ok=True)
    if args.truth:
        root = args.data / "skullfix" / "training_set"
        sources = [root / "defective_skull" / f"{case}.nrrd" for case in args.truth]
        for case, source in zip(args.truth, sources):
            # the implant volume is in place, so run_jobs reuses it and only meshes and pictures it
            shutil.copy(root / "implant" / f"{case}.nrrd", work / "implants" / source.name)
        prefix = "truth_"
    else:
        sources = sorted((args.data / "skullfix" / "additional_test_set").glob("*.nrrd"))
        sources += sorted((args.data / "skullbreak").glob("*.nii.gz"))
        prefix = ""
    missing = [s for s in sources if not s.is_file()]
    if not sources or missing:
        print(f"data not found under {args.data}: {missing or 'no cases'}", file=sys.stderr)
        return 2
    jobs = []
    for source in sources:
        name = Job(source, source).name
        jobs.append(Job(source, work / "implants" / source.name, work / "stl" / f"{name}.stl", args.out / f"{prefix}{name}.png"))

    start = time.perf_counter()
    try:
        run_jobs(jobs, model_path=args.model, device=args.device, overwrite=args.overwrite,
                 report_path=work / "gallery_report.json", command=sys.argv, keep_going=True)
    except Exception as error:  # some case failed: it is listed in the table below
        print(f"gallery: {error}", file=sys.stderr)
    import json

    records = {case["case"]: case for case in json.loads((work / "gallery_report.json").read_text())["cases"]}

    import trimesh

    header = f"{'case':<22} {'cm³':>6} {'vol err':>8} {'bbox mm':>8} {'voxel':>6} {'tight':>5} {'wind':>5} {'parts':>5} " \
             f"{'thick':>6} {'design s':>8} {'mesh s':>6} {'png s':>6}  ok"
    print(header)
    print("-" * len(header))
    failures = 0
    for job in jobs:
        record = records.get(job.name, {})
        implant = read_volume(job.output) if job.output.is_file() else None
        if implant is None or not implant.mask().any() or not job.stl.is_file():
            failures += 1
            print(f"{job.name:<22} no implant or no STL ({record.get('error', 'empty implant')})")
            continue
        mesh = trimesh.load(job.stl, force="mesh")
        checks = check_printable(mesh, implant, solid=solid_mask(implant))
        failures += not checks["ok"]
        timings = record.get("timings_s", {}) or record.get("previous_run", {}).get("timings_s", {})
        thickness = record.get("implant", {}).get("thickness_mean_mm", float("nan"))
        print(f"{job.name:<22} {checks['voxel_volume_mm3'] / 1000:>6.1f} {100 * checks['volume_error']:>7.2f}% "
              f"{checks['bbox_error_mm']:>8.3f} {checks['voxel_mm']:>6.3f} {str(checks['watertight']):>5} "
              f"{str(checks['winding_consistent']):>5} {checks['components']:>5} {thickness:>6.2f} "
              f"{timings.get('design', float('nan')):>8.1f} {timings.get('mesh', float('nan')):>6.1f} "
              f"{timings.get('preview', float('nan')):>6.1f}  {'yes' if checks['ok'] else 'NO'}")
    print(f"{len(jobs) - failures}/{len(jobs)} STLs pass; {time.perf_counter() - start:.0f} s; previews in {args.out}; "
          f"volumes and STLs in {work}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
