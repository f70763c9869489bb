"""Commands of the learned pipeline: implant and demo (`pcc train` goes to the Lightning CLI)."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from pcc.cli import add_command
from pcc.cli.paths import check_output, whole_number
from pcc.errors import InputError


def _non_negative_mm(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of mm, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of mm ≥ 0, got {text}")
    return value


def register(commands: argparse._SubParsersAction) -> None:
    p = add_command(
        commands, "implant", help="Design the implant for a defective skull (a .nrrd/.nii(.gz) file or a folder of them).",
        example=("pcc implant defective_skull/000.nrrd -o implant_000.nrrd --stl implant_000.stl --preview 000.png",
                 "pcc implant defective_skull/ -o implants/ --stl stl/ --preview png/ --report run.json --num-parts 2 --part-id 0",
                 "pcc implant defective_skull/ -o implants/ --workers 4 --device cuda",
                 "pcc implant dicom/head_ct/ --ct -o implant.nrrd --stl implant.stl --report run.json",
                 "pcc implant defective_skull/000.nrrd -o implant_000.nrrd --review 000.html",
                 "pcc implant defective_skull/000.nrrd -o plate_000.nrrd --stl plate_000.stl --thickness 5 --holes 2:10"),
    )
    p.add_argument("input", help="defective skull volume (.nrrd, .nii, .nii.gz) or a folder of them; with --ct, "
                                 "a head CT: a folder of one DICOM series, or a .nrrd/.nii/.nii.gz volume in HU")
    p.add_argument("--ct", action="store_true",
                   help="INPUT is a head CT in Hounsfield units: segment the skull first (as pcc segment does), then "
                        "design the implant on the CT's own grid and patient coordinates")
    p.add_argument("--series", default=None, metavar="N|UID",
                   help="with --ct: the series to read when the DICOM folder holds several (SeriesNumber or UID)")
    p.add_argument("-o", "--output", required=True, help="implant volume, or a folder when INPUT is a folder (same file names)")
    p.add_argument("--stl", help="also write the printable implant mesh (binary STL, world mm); a folder when INPUT is a folder")
    p.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda or cuda:N")
    p.add_argument("--model", help="checkpoint to use instead of the shipped weights")
    p.add_argument("--preview", help="also write a picture of skull and implant (.png); a folder when INPUT is a folder")
    p.add_argument("--report", help="write a JSON report (versions, model hash, device, timings, volume, thickness, "
                                    "quality: expected DSC, review flag and reasons, warnings)")
    p.add_argument("--confidence", metavar="CONF",
                   help="also write the per-voxel implant probability (uint8 percent 0-100, on the input's grid, "
                        ".nrrd/.nii/.nii.gz); a folder when INPUT is a folder (same file names)")
    p.add_argument("--review", metavar="PAGE.html",
                   help="also write a self-contained review page (the implant in 3-D on the skull or CT, slices, the "
                        "report's figures; opens offline in any browser); a folder when INPUT is a folder, with index.html")
    p.add_argument("--clearance", type=_non_negative_mm, default=0.0, metavar="MM",
                   help="fitting gap between the STL and the bone at the rim, mm (default 0; the volume is unchanged)")
    add_plate_options(p, thickness=True)
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing outputs (a single case refuses to, and a folder run skips cases whose "
                        "outputs exist, so a rerun resumes)")
    p.add_argument("--num-parts", type=whole_number, default=1, metavar="K", help="folder runs: split the sorted cases into K parts ...")
    p.add_argument("--part-id", type=whole_number, default=0, metavar="I", help="... and design part I (0 ≤ I < K)")
    p.add_argument("--workers", type=whole_number, default=1, metavar="N",
                   help="folder runs: design N cases at once in N processes (CPU stages run in parallel; default 1)")
    p.set_defaults(run=_implant)

    p = add_command(
        commands, "demo", help="Design the implant of the bundled example case and score it against its ground truth.",
        example="pcc demo --output demo_output",
    )
    p.add_argument("--output", default="demo_output", help="folder for the demo's implant, STL and preview (default demo_output)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.set_defaults(run=_demo)


def _implant(args: argparse.Namespace) -> None:
    from pcc.io import is_volume_path
    from pcc.pipeline import CtInput, Job, plan_folder, run_jobs, select_part

    source = Path(args.input)
    finish = finish_options(args)  # bad values exit before anything is read or written
    if args.series is not None and not args.ct:
        raise InputError("--series picks the DICOM series of a CT: add --ct (pcc implant SERIES_FOLDER --ct --series N)")
    ct = CtInput(series=args.series) if args.ct else None
    if args.report is not None:
        _check_not_under_a_file("--report", args.report)
        _make_folders([args.report])
        check_output(args.report, source)
        if not args.report.lower().endswith(".json"):
            raise InputError(f"{args.report}: the report must end in .json")
    if args.model is not None and not Path(args.model).is_file():
        raise InputError(f"model file {args.model} not found; give --model PATH of a pcc checkpoint")
    for option, path in (("-o", args.output), ("--stl", args.stl), ("--preview", args.preview), ("--report", args.report),
                         ("--confidence", args.confidence), ("--review", args.review)):
        _check_not_under_a_file(option, path)
    if source.is_dir() and not args.ct:
        out_dir = Path(args.output)
        if out_dir.exists() and not out_dir.is_dir():
            raise InputError(f"{out_dir} is a file, but INPUT is a folder: give an output folder")
        if out_dir.exists() and out_dir.resolve() == source.resolve():
            raise InputError("the output folder is the input folder: choose another output folder")
        folders = {"--stl": args.stl, "--preview": args.preview, "--confidence": args.confidence, "--review": args.review}
        for option, folder in folders.items():
            if folder is not None and Path(folder).exists() and not Path(folder).is_dir():
                raise InputError(f"{option} {folder} is a file, but INPUT is a folder: give a folder")
        jobs = plan_folder(source, out_dir, stl_dir=_path(args.stl), preview_dir=_path(args.preview),
                           confidence_dir=_path(args.confidence), review_dir=_path(args.review))
        jobs = select_part(jobs, args.num_parts, args.part_id)
        if args.workers < 1:
            raise InputError(f"--workers must be at least 1, got {args.workers}")
        from pcc.design import resolve_device

        resolve_device(args.device)  # a bad --device before any folder is made
        for folder in (out_dir, _path(args.stl), _path(args.preview), _path(args.confidence), _path(args.review)):
            if folder is not None:
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                except OSError as error:
                    raise InputError(f"cannot create the output folder {folder} ({error.strerror}); "
                                     f"choose another output folder") from None
        keep_going, resume, review_index = True, True, args.review is not None
    else:
        if not source.exists():
            raise InputError(f"{source} does not exist: give a .nrrd/.nii/.nii.gz file or a folder of them"
                             + (" (with --ct: a DICOM series folder or a CT volume)" if args.ct else ""))
        if args.workers != 1:
            raise InputError("--workers designs several cases of a folder at once; INPUT is a single case")
        if args.num_parts != 1 or args.part_id != 0:
            raise InputError("--num-parts and --part-id split a folder of cases; INPUT is a single case")
        if not is_volume_path(args.output):
            raise InputError(f"{args.output}: the implant output must end in .nrrd, .nii or .nii.gz")
        outputs = [p for p in (args.output, args.stl, args.preview, args.confidence, args.review) if p is not None]
        _make_folders(outputs)
        output = check_output(args.output, source)
        if args.confidence is not None:
            if not is_volume_path(args.confidence):
                raise InputError(f"{args.confidence}: the --confidence output must end in .nrrd, .nii or .nii.gz")
            check_output(args.confidence, source)
        for option, path, suffix in (("--stl", args.stl, ".stl"), ("--preview", args.preview, ".png"),
                                     ("--review", args.review, ".html")):
            if path is not None:
                check_output(path, source)
                if not path.lower().endswith(suffix):
                    raise InputError(f"{path}: the {option} output must end in {suffix}")
        existing = [p for p in outputs if Path(p).exists()]
        if existing and not args.overwrite:
            raise InputError(f"{', '.join(existing)} already exists: add --overwrite to replace it, or choose another path")
        # --device is checked when the model loads, after the input is read and before anything is written:
        # checking it here would import torch now instead of in run_jobs' thread beside the reading.
        jobs = [Job(source, output, _path(args.stl), _path(args.preview), ct=ct, confidence=_path(args.confidence),
                    review=_path(args.review))]
        keep_going, resume, review_index = False, False, False  # one file: always (re)design it, as asked
    run_jobs(
        jobs, model_path=args.model, device=args.device, clearance_mm=args.clearance, finish=finish, overwrite=args.overwrite,
        resume=resume, report_path=_path(args.report), command=["pcc", *sys.argv[1:]], keep_going=keep_going,
        workers=args.workers, review_index=review_index,
    )


def add_plate_options(p: argparse.ArgumentParser, *, thickness: bool) -> None:
    """The plate's options (pcc.design.plate), shared by pcc implant and pcc mesh."""
    from pcc.pipeline.finish import FinishOptions

    if thickness:
        p.add_argument("--thickness", type=float, metavar="MM",
                       help="a plate of uniform thickness MM under the predicted outer surface, still meeting the bone "
                            "at the rim (0 < MM ≤ 15; default: as designed)")
    p.add_argument("--holes", metavar="D:S",
                   help="round perforations of diameter D mm on an even grid S mm apart over the outer surface, through "
                        "the plate along its normal (e.g. 2:10); cut in the volume and the STL")
    p.add_argument("--hole-margin", type=float, metavar="MM",
                   help=f"with --holes: least distance from a hole's centre to the bone (default {FinishOptions.hole_margin_mm:g})")
    p.add_argument("--no-smooth", action="store_true",
                   help="write the STL's raw voxel surface instead of the smoothed one (Taubin, within a voxel of it)")


def finish_options(args: argparse.Namespace):
    """FinishOptions from the plate's options, checked (InputError: one line saying what to change)."""
    from pcc.pipeline.finish import FinishOptions

    if args.holes is None and args.hole_margin is not None:
        raise InputError("--hole-margin sets how far holes stay from the bone: add --holes D:S")
    margin = {} if args.hole_margin is None else {"hole_margin_mm": args.hole_margin}
    holes = None
    if args.holes is not None:
        from pcc.design.plate import parse_holes

        holes = parse_holes(args.holes)
    options = FinishOptions(thickness_mm=getattr(args, "thickness", None), holes=holes, smooth=not args.no_smooth, **margin)
    options.check()
    return options


def _make_folders(paths: list[str]) -> None:
    """Create the missing folders of output files (as a folder run creates its output folders)."""
    for path in paths:
        folder = Path(path).parent
        if not folder.is_dir():
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise InputError(f"cannot create the output folder {folder} ({error.strerror}); choose another path") from None


def _check_not_under_a_file(option: str, path: str | None) -> None:
    """An output path none of whose parent folders is a regular file (it could never be written)."""
    if path is None:
        return
    for parent in Path(path).parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{option} {path}: {parent} is a file, not a folder; choose another output path")
            return


def _path(text: str | None) -> Path | None:
    return None if text is None else Path(text)


def _demo(args: argparse.Namespace) -> None:
    from pcc.challenge.metrics import score_case
    from pcc.examples import EXAMPLE_DEFECTIVE, EXAMPLE_IMPLANT
    from pcc.io import read_volume
    from pcc.pipeline import Job, run_jobs

    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir} is a file: give a folder for the demo's outputs")
    out_dir.mkdir(parents=True, exist_ok=True)
    output, stl, preview = out_dir / "implant.nrrd", out_dir / "implant.stl", out_dir / "preview.png"
    run_jobs([Job(EXAMPLE_DEFECTIVE, output, stl, preview)], model_path=None, device=args.device, resume=False,
             report_path=out_dir / "report.json", command=["pcc", "demo", *sys.argv[2:]])
    predicted, truth, defective = read_volume(output), read_volume(EXAMPLE_IMPLANT), read_volume(EXAMPLE_DEFECTIVE)
    scores = score_case(predicted.mask(), truth.mask(), defective.mask(), defective.spacing)
    print(f"example case {EXAMPLE_DEFECTIVE.name} (SkullFix, held out from training; CC BY-NC-SA 4.0)")
    print(f"implant: {output}   mesh: {stl}   preview: {preview}   report: {out_dir / 'report.json'}")
    print(f"DSC {scores.dsc:.4f}   bDSC {scores.bdsc:.4f}   HD95 {scores.hd95:.2f} mm   "
          f"(seconds per stage: {out_dir / 'report.json'}, timings_s)")
