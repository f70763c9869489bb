"""Challenge toolkit commands: defect, segment, evaluate, rank."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from pcc.cli import add_command
from pcc.errors import InputError


def register(commands: argparse._SubParsersAction) -> None:
    p = add_command(
        commands, "defect",
        help="Inject artificial defects into complete skulls: writes OUT_DIR/defective_skull and OUT_DIR/implant.",
        example="pcc defect training_set/complete_skull -o synthetic --shape random --seed 1 --per-skull 3",
    )
    p.add_argument("complete", help="complete skull (.nrrd, .nii, .nii.gz) or a folder of them")
    p.add_argument("-o", "--output", required=True, help="output folder (created if absent)")
    p.add_argument("--shape", required=True, help="craniotomy, cube, sphere, random, frontoorbital, "
                   "parietotemporal, bilateral, temporal or irregular")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0); the same seed gives the same defects")
    p.add_argument("--per-skull", type=int, default=1, metavar="K",
                   help="defects per skull (default 1); K > 1 adds the suffix _kK to the file names")
    p.set_defaults(run=_defect)

    p = add_command(
        commands, "segment",
        help="Binary skull from a head CT: bone threshold in HU, largest component, island and table removal.",
        example=("pcc segment head_ct.nii.gz -o skull.nrrd",
                 "pcc segment dicom/series_folder/ -o skull.nrrd --series 3"),
    )
    p.add_argument("ct", help="head CT in Hounsfield units: .nrrd, .nii, .nii.gz, or a folder of one DICOM series")
    p.add_argument("--series", default=None, metavar="N|UID",
                   help="the series to read when the DICOM folder holds several (SeriesNumber or SeriesInstanceUID)")
    p.add_argument("-o", "--output", required=True, help="output skull mask (.nrrd, .nii, .nii.gz)")
    p.add_argument("--low", type=float, default=None, help="lower bone threshold in HU (default: the organizers' 100)")
    p.add_argument("--high", type=float, default=None, help="upper bone threshold in HU (default: no upper limit)")
    p.set_defaults(run=_segment)

    p = add_command(
        commands, "evaluate",
        help="Score predicted implants against the ground truth: DSC, boundary DSC (10 mm), HD and HD95 in mm.",
        example="pcc evaluate predictions/ --gt test_set/implant --defective test_set/defective_skull "
                "--csv scores.csv --json scores.json",
    )
    p.add_argument("pred_dir", help="folder of predicted implants, named like the ground truth")
    p.add_argument("--gt", required=True, help="folder of ground-truth implants (one row per case)")
    p.add_argument("--defective", required=True, help="folder of the defective skulls (same names)")
    p.add_argument("--csv", help="write per-case scores here (header case,dsc,bdsc,hd,hd95)")
    p.add_argument("--json", help="write per-case scores, summary statistics and missing cases here")
    p.set_defaults(run=_evaluate)

    p = add_command(
        commands, "rank",
        help="Rank submissions from their 'pcc evaluate --json' files (mean rank of the metric means, t-tests).",
        example="pcc rank teamA.json teamB.json teamC.json --names A B C",
    )
    p.add_argument("summaries", nargs="+", help="JSON files written by 'pcc evaluate --json'")
    p.add_argument("--names", nargs="+", help="one display name per file (default: the file names)")
    p.add_argument("--json", help="also write the ranking and t-tests here")
    p.set_defaults(run=_rank)


def _defect(args: argparse.Namespace) -> None:
    from pcc.learning.defects import ALL_SHAPES, write_defects

    if args.shape not in ALL_SHAPES:
        raise InputError(f"unknown --shape {args.shape!r}: choose one of {', '.join(ALL_SHAPES)}")
    if args.per_skull < 1:
        raise InputError("--per-skull must be at least 1")
    start = time.perf_counter()
    written = write_defects(args.complete, args.output, shape=args.shape, seed=args.seed, per_skull=args.per_skull,
                            progress=lambda name: print(f"  {name}", file=sys.stderr, flush=True))
    print(f"wrote {len(written)} defective skull(s) and implant(s) under {args.output} "
          f"in {time.perf_counter() - start:.1f} s")


def _segment(args: argparse.Namespace) -> None:
    from pcc.cli.paths import check_output
    from pcc.io import is_volume_path, read_volume, write_volume
    from pcc.io.segment import check_ct_grid, scan_warnings, segment_skull

    output = check_output(args.output, args.ct)
    if not is_volume_path(output):
        raise InputError(f"{output}: output must end in .nrrd, .nii or .nii.gz")
    if Path(args.ct).is_dir():
        from pcc.io.dicom import read_series

        ct = read_series(args.ct, args.series)
    elif args.series is not None:
        raise InputError("--series applies to a folder of DICOM files; give the folder, or drop --series")
    else:
        ct = read_volume(args.ct)
    check_ct_grid(ct)
    kwargs = {k: v for k, v in (("low", args.low), ("high", args.high)) if v is not None}
    skull = segment_skull(ct, **kwargs)
    write_volume(output, ct.with_array(skull.astype("uint8")))
    print(f"wrote {output}: {int(skull.sum())} skull voxels")
    for warning in scan_warnings(ct, skull):
        print(f"warning: {warning}", file=sys.stderr)


def _evaluate(args: argparse.Namespace) -> None:
    from pcc.challenge.evaluation import evaluate_folders
    from pcc.cli.paths import check_output

    for path in (args.csv, args.json):
        if path is not None:
            check_output(path)
            if not Path(path).parent.is_dir():
                raise InputError(f"output folder {Path(path).parent} does not exist: create it or choose another path")
    start = time.perf_counter()

    def progress(i, n, result):
        s = result.scores
        note = f"  (counted as empty: {result.missing})" if result.missing else ""
        print(f"[{i}/{n}] {result.case}: DSC {s.dsc:.4f}  bDSC {s.bdsc:.4f}  HD {_mm(s.hd)}  HD95 {_mm(s.hd95)}{note}",
              file=sys.stderr, flush=True)

    evaluation = evaluate_folders(args.pred_dir, args.gt, args.defective, progress=progress)
    if args.csv:
        evaluation.write_csv(args.csv)
    if args.json:
        evaluation.write_json(args.json)
    summary = evaluation.summary()
    print(f"{len(evaluation.cases)} case(s) in {time.perf_counter() - start:.1f} s")
    print(f"{'metric':<6} {'mean':>9} {'std':>9} {'median':>9} {'IQR':>9}  n_inf")
    for metric, label in (("dsc", "DSC"), ("bdsc", "bDSC"), ("hd", "HD mm"), ("hd95", "HD95")):
        s = summary[metric]
        print(f"{label:<6} {_mm(s['mean']):>9} {_mm(s['std']):>9} {_mm(s['median']):>9} {_mm(s['iqr']):>9}  {s['n_inf']}")
    if evaluation.missing:
        print(f"{len(evaluation.missing)} case(s) scored as empty implants: "
              + ", ".join(m["case"] for m in evaluation.missing))


def _rank(args: argparse.Namespace) -> None:
    import json

    from pcc.challenge.evaluation import to_json_safe
    from pcc.challenge.ranking import format_ranking, rank_files

    ranking = rank_files(args.summaries, args.names)
    print(format_ranking(ranking))
    if args.json:
        from pcc.io import atomic_path

        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps(to_json_safe(ranking.to_dict()), indent=1) + "\n")


def _mm(value: float) -> str:
    return "inf" if math.isinf(value) else ("nan" if math.isnan(value) else f"{value:.4f}")
