"""run_jobs: every case of a run through the pipeline, with resume, progress, the run report and interrupts.

A case is finished when every output it asks for exists. Every file is written atomically (a
temporary file renamed into place), so an interrupted run leaves no half-written file and the next
run redoes only what is missing: cases whose implant volume exists but whose STL or preview does not
are completed from that volume without designing it again (its assessment, pcc.design.assessment,
still runs the extra design it compares the volume with). The model is loaded once, and
only if some case needs it.
"""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path
from typing import Any

from pcc.errors import InputError
from pcc.pipeline.case import builds_mesh, design_or_error
from pcc.pipeline.console import case_line, summary_lines
from pcc.pipeline.finish import FinishOptions
from pcc.pipeline.jobs import Job
from pcc.pipeline.read import read_skull
from pcc.pipeline.review import write_index
from pcc.pipeline.workers import design_in_workers, import_design, import_mesh, import_reader, in_thread


def run_jobs(
    jobs: list[Job],
    *,
    model_path: str | Path | None = None,
    device: str = "auto",
    clearance_mm: float = 0.0,
    finish: FinishOptions = FinishOptions(),
    review_index: bool = False,
    overwrite: bool = False,
    resume: bool = True,
    report_path: Path | None = None,
    command: list[str] | None = None,
    keep_going: bool = False,
    workers: int = 1,
    log=None,
):
    """Design the implant of every job (see the module's docstring); returns the RunReport.

    Args:
        jobs: from plan_folder, or one Job for one file.
        model_path: checkpoint, or None for the shipped weights.
        device: auto, cpu, cuda or cuda:N.
        clearance_mm: fitting gap opened at the rim of the STL (and the preview); the volume is unchanged.
        finish: the plate's thickness and holes (cut in the volume and the STL) and the STL's smoothing
            (pcc.pipeline.finish.FinishOptions; the defaults leave the design as it is).
        review_index: a folder run: write index.html beside the jobs' review pages, listing every case.
        overwrite: redo cases whose outputs exist.
        resume: skip finished cases (when not overwrite); False recomputes every case.
        report_path: JSON report, rewritten after each case.
        command: the command line, for the report.
        keep_going: record a failing case and go on to the next (folder runs); otherwise raise.
        workers: cases designed at once, each worker process with its own copy of the model (on the
            same GPU when there is one); the reading, surface and voxel stages run on CPU cores.
        log: stream for progress lines (default stderr).

    Raises:
        InputError: (after all cases, with keep_going) when some case had bad input.
        RuntimeError: (after all cases, with keep_going) when some case failed internally.
    """
    from tqdm import tqdm

    from pcc.outputs.report import RunReport

    log = log or sys.stderr
    state: dict[str, Any] = {"model": None}
    finish.check()
    options = {"clearance_mm": clearance_mm, "overwrite": overwrite, "cases": len(jobs)}
    if finish != FinishOptions():
        options["finish"] = finish.as_dict()
    earlier = _previous_report(report_path) if report_path is not None else None
    previous = _previous_cases(earlier) if earlier is not None and not overwrite else {}
    # Outputs written with other plate options (thickness, holes, smoothing) are not this run's: design again.
    # Without a previous report a volume's options are unknown, so plate options always design again.
    wanted = options.get("finish")  # None for the defaults
    earlier_options = earlier.get("options") if earlier is not None else None
    same_finish = (earlier_options.get("finish") == wanted if isinstance(earlier_options, dict)
                   else wanted is None)
    if resume and not overwrite and not same_finish:
        print("the plate options differ from those the existing outputs were made with (or are unknown): "
              "every case is designed again", file=log)
    resume = resume and same_finish
    report = None

    def model():
        if state["model"] is None:
            from pcc.design import load_model

            start = time.perf_counter()
            state["model"] = load_model(model_path, device=device)
            state["load_s"] = time.perf_counter() - start
            if report is not None:
                report.header["model_load_s"] = round(state["load_s"], 3)
        return state["model"]

    todo = [job for job in jobs if overwrite or not resume or not job.finished()]
    needs_model = todo  # every designed case is also assessed (pcc.design.assessment), which runs the networks
    checked: dict[Path, Any] = {}
    single = needs_model[0] if len(needs_model) == 1 and not keep_going else None
    if single is not None:
        # One case: check its input (cheap) before loading the model, so a bad file is reported as such.
        # Meanwhile a thread imports torch and the pipeline (most of the start-up), overlapping the file's
        # decompression (and a CT's segmentation); pcc's reader modules are imported first, here, so the
        # two threads share none of pcc's modules (the file formats' libraries load during the reading).
        import_reader(single)
        importer = in_thread(import_design)
        try:
            start = time.perf_counter()
            checked[single.source] = (read_skull(single), time.perf_counter() - start)
        finally:
            importer.exception()  # waits; an import error is raised again, with its message, by the main thread's own import
    if needs_model:
        model()  # fail early (bad --model or --device) before any case
    # The thickness figures go to the report and the review pages.
    with_thickness = report_path is not None or any(job.review is not None for job in jobs)
    if single is not None and builds_mesh(single, with_thickness=with_thickness):
        in_thread(lambda: import_mesh(picture=single.preview is not None))  # 0.4 s (+ 0.9 s) of imports beside the design
    report = RunReport.start(model=state["model"], device=device, command=command, options=options)
    if state["model"] is not None:
        report.header["model_load_s"] = round(state["load_s"], 3)
    failures: list[tuple[Job, BaseException]] = []
    bar = tqdm(total=len(jobs), desc="implants", unit="case", file=log, disable=None if len(jobs) > 1 else True, dynamic_ncols=True)

    finished = [0]  # cases done, skipped or failed so far (the bar does not count when it is off, as in a log)

    def progress() -> str:
        """Count one more finished case; '[i/N] ' to put before its line in a folder run, '' for one case."""
        finished[0] += 1
        return f"[{finished[0]}/{len(jobs)}] " if len(jobs) > 1 else ""

    to_design = []
    for job in jobs:
        if resume and not overwrite and job.finished():
            record = {"case": job.name, "input": str(job.source), "status": "skipped",
                      "reason": "all outputs exist (use --overwrite to redo)"}
            if job.name in previous:
                record["previous_run"] = previous[job.name]
            report.add_case(record)
            bar.update()
            tqdm.write(f"{progress()}{job.name}: skipped, outputs exist", file=log)
        else:
            to_design.append(job)
    options = dict(clearance_mm=clearance_mm, finish=finish, reuse_volume=resume and not overwrite,
                   with_thickness=with_thickness)
    if workers > 1 and len(to_design) > 1:
        results = design_in_workers(to_design, workers, model_path, device, options)
    else:
        results = ((job, design_or_error(job, model, options, checked.pop(job.source, None))) for job in to_design)
    existed = {path for job in to_design for path in job.outputs() if path.exists()}
    try:
        for job, outcome in results:
            bar.update()
            if isinstance(outcome, BaseException):
                if not keep_going:
                    raise outcome
                failures.append((job, outcome))
                kind = "bad input" if isinstance(outcome, InputError) else f"internal error {type(outcome).__name__}"
                report.add_case({"case": job.name, "input": str(job.source), "status": "failed", "error": f"{kind}: {outcome}",
                                 "traceback": None if isinstance(outcome, InputError) else
                                 "".join(traceback.format_exception(outcome, limit=5))})
                tqdm.write(f"{progress()}{job.name}: FAILED ({kind}: {outcome})", file=log)
            else:
                report.add_case(outcome)
                tqdm.write(progress() + case_line(outcome), file=log)
                for warning in outcome["warnings"]:
                    tqdm.write(f"{job.name}: warning: {warning}", file=log)
            if report_path is not None:
                report.write(report_path)
    except KeyboardInterrupt:
        # Stop the workers first (closing the generator terminates its pool), then remove the files of every case
        # the report does not list (a worker may have finished one that was never received), and save the report.
        if hasattr(results, "close"):
            results.close()
        from pcc.io import remove_partial

        done = {case["case"] for case in report.cases if case.get("status") == "done"}
        for job in to_design:
            if job.name not in done:
                for path in job.outputs():
                    remove_partial(path, keep_existing=path in existed)
        if report_path is not None:
            report.write(report_path)
        raise
    bar.close()
    if report_path is not None:
        report.write(report_path)
    index = write_index(jobs, report.cases) if review_index else None
    if len(jobs) > 1 or index:
        for line in summary_lines(report, report_path) + ([f"review pages: {index}"] if index else []):
            print(line, file=log)
    if failures:
        names = ", ".join(job.name for job, _ in failures)
        if any(not isinstance(error, InputError) for _, error in failures):
            raise RuntimeError(f"{len(failures)} case(s) failed: {names}")
        raise InputError(f"{len(failures)} case(s) had bad input and were not designed: {names} (see above)")
    return report


def _previous_report(path: Path) -> dict[str, Any] | None:
    """A previous run report at `path` (read once), or None when there is none (or it is not ours)."""
    import json

    try:
        data = json.loads(Path(path).read_text())
    except Exception:  # no report yet, or not ours
        return None
    return data if isinstance(data, dict) else None


def _previous_cases(report: dict[str, Any]) -> dict[str, Any]:
    """The finished cases of a previous report by name (a skipped case's earlier record)."""
    cases = {}
    for case in report.get("cases", []) if isinstance(report.get("cases"), list) else []:
        if not isinstance(case, dict) or "case" not in case:
            continue
        if case.get("status") == "done":
            cases[case["case"]] = case
        elif case.get("status") == "skipped" and isinstance(case.get("previous_run"), dict):
            cases[case["case"]] = case["previous_run"]
    return cases
