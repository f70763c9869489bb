"""Commands of the learned pipeline: implant and demo (`pcc train` goes to the Lightning CLI)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pcc.cli import add_command
from pcc.cli.paths import check_output
from pcc.errors import InputError


def register(commands: argparse._SubParsersAction) -> None:
    p = add_command(
        commands, "implant", help="Design the implant for a defective skull (a .nrrd file or a folder of them).",
        example="pcc implant defective_skull/000.nrrd -o implant_000.nrrd --stl implant_000.stl",
    )
    p.add_argument("input", help="defective skull volume (.nrrd, .nii, .nii.gz) or a folder of them")
    p.add_argument("-o", "--output", required=True, help="implant volume, or a folder when INPUT is a folder")
    p.add_argument("--stl", help="also write the implant's surface mesh (STL); a folder when INPUT is a folder")
    p.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda or cuda:N")
    p.add_argument("--model", help="checkpoint to use instead of the shipped weights")
    p.set_defaults(run=_implant)

    p = add_command(
        commands, "demo", help="Design the implant of the bundled example case and score it against its ground truth.",
        example="pcc demo --output demo_output",
    )
    p.add_argument("--output", default="demo_output", help="folder for the demo's implant and STL (default demo_output)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.set_defaults(run=_demo)


def _implant(args: argparse.Namespace) -> None:
    from pcc.io import is_volume_path, volume_suffix

    source = Path(args.input)
    if source.is_dir():
        inputs = sorted(p for p in source.iterdir() if p.is_file() and is_volume_path(p))
        if not inputs:
            raise InputError(f"{source} holds no .nrrd/.nii/.nii.gz volumes")
        out_dir = Path(args.output)
        if out_dir.exists() and out_dir.resolve() == source.resolve():
            raise InputError("the output folder is the input folder: choose another output folder")
        out_dir.mkdir(parents=True, exist_ok=True)
        stl_dir = Path(args.stl) if args.stl else None
        if stl_dir:
            stl_dir.mkdir(parents=True, exist_ok=True)
        jobs = [
            (p, out_dir / p.name, stl_dir / (p.name[: -len(volume_suffix(p))] + ".stl") if stl_dir else None)
            for p in inputs
        ]
    else:
        if not is_volume_path(args.output):
            raise InputError(f"{args.output}: the implant output must end in .nrrd, .nii or .nii.gz")
        output = check_output(args.output, source)
        if args.stl:
            check_output(args.stl, source)
            if not args.stl.lower().endswith(".stl"):
                raise InputError(f"{args.stl}: the STL output must end in .stl")
        jobs = [(source, output, Path(args.stl) if args.stl else None)]
    run_implant_jobs(jobs, model_path=args.model, device=args.device)


def run_implant_jobs(jobs: list[tuple[Path, Path, Path | None]], *, model_path: str | None, device: str) -> None:
    """Design each (input, output, stl) job with one model load, printing the time of each case."""
    from pcc.io import read_volume, write_mesh, write_volume
    from pcc.pipeline import design_implant, load_model
    from pcc.surface import volume_to_mesh

    model = load_model(model_path, device=device)
    for index, (source, output, stl) in enumerate(jobs, 1):
        start = time.perf_counter()
        defective = read_volume(source)
        implant = design_implant(defective, model)
        write_volume(output, implant)
        if stl is not None:
            if not implant.mask().any():
                raise InputError(f"{source}: the implant is empty, so there is no STL to write")
            write_mesh(stl, volume_to_mesh(implant), space=implant.space)
        voxels = int(implant.mask().sum())
        print(
            f"[{index}/{len(jobs)}] {source.name}: {voxels} implant voxels "
            f"({voxels * implant.voxel_volume / 1000:.1f} cm³) in {time.perf_counter() - start:.1f} s → {output}",
            file=sys.stderr,
        )


def _demo(args: argparse.Namespace) -> None:
    from pcc.examples import EXAMPLE_DEFECTIVE, EXAMPLE_IMPLANT
    from pcc.io import read_volume
    from pcc.metrics import score_case

    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    output, stl = out_dir / "implant.nrrd", out_dir / "implant.stl"
    start = time.perf_counter()
    run_implant_jobs([(EXAMPLE_DEFECTIVE, output, stl)], model_path=None, device=args.device)
    elapsed = time.perf_counter() - start
    predicted, truth, defective = read_volume(output), read_volume(EXAMPLE_IMPLANT), read_volume(EXAMPLE_DEFECTIVE)
    scores = score_case(predicted.mask(), truth.mask(), defective.mask(), defective.spacing)
    print(f"example case {EXAMPLE_DEFECTIVE.name} (SkullFix, held out from training; CC BY-NC-SA 4.0)")
    print(f"implant: {output}   mesh: {stl}")
    print(f"DSC {scores.dsc:.4f}   bDSC {scores.bdsc:.4f}   HD95 {scores.hd95:.2f} mm   time {elapsed:.1f} s")
