"""Implant design over one case or a folder of cases: resume, splitting, progress, report.

    jobs = plan_jobs("defective_skull/", "implants/", stl="stl/", preview="png/")
    jobs = select_part(jobs, num_parts=4, part_id=0)
    report = run_jobs(jobs, model_path=None, device="auto")

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
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pcc.errors import InputError


@dataclass(frozen=True)
class CtInput:
    """How to read a job whose input is a head CT in Hounsfield units rather than a binary skull.

    series: the DICOM series to read (SeriesNumber or SeriesInstanceUID) when the source folder holds
        several; None when it holds one, or when the source is a .nrrd/.nii(.gz) CT.
    low_hu, high_hu: bone threshold of the segmentation (pcc.toolkit.segment.segment_skull).
    """

    series: str | None = None
    low_hu: float = 100.0
    high_hu: float = float("inf")


@dataclass(frozen=True)
class Job:
    """One case: its input and the outputs asked for (None: not asked for).

    ct: None when the source is a binary defective skull; otherwise the source is a head CT (a DICOM
        series folder or a .nrrd/.nii(.gz) volume in HU), segmented first, and every output lies on the
        CT's own grid and in its patient coordinates.
    """

    source: Path
    output: Path
    stl: Path | None = None
    preview: Path | None = None
    ct: CtInput | None = None
    confidence: Path | None = None

    @property
    def name(self) -> str:
        from pcc.io import volume_suffix

        return self.source.name[: -len(volume_suffix(self.source))] or self.source.name

    def outputs(self) -> list[Path]:
        return [p for p in (self.output, self.stl, self.preview, self.confidence) if p is not None]

    def finished(self) -> bool:
        return all(p.is_file() for p in self.outputs())


def folder_inputs(folder: Path) -> list[Path]:
    """The volumes (.nrrd, .nii, .nii.gz) of a folder, sorted by name; hidden files are ignored."""
    from pcc.io import is_volume_path

    return sorted(p for p in folder.iterdir() if p.is_file() and is_volume_path(p) and not p.name.startswith("."))


def plan_folder(source: Path, out_dir: Path, *, stl_dir: Path | None = None, preview_dir: Path | None = None,
                confidence_dir: Path | None = None) -> list[Job]:
    """Jobs for every volume of a folder: same file names in out_dir (and confidence_dir), <name>.stl /
    <name>.png beside."""
    inputs = folder_inputs(source)
    if not inputs:
        from pcc.io.dicom import list_series

        if list_series(source):
            raise InputError(f"{source} holds a DICOM series: add --ct to segment the CT and design its implant")
        raise InputError(f"{source} holds no .nrrd/.nii/.nii.gz volumes: give a folder of defective skulls")
    jobs = []
    for path in inputs:
        job = Job(path, out_dir / path.name)
        jobs.append(Job(path, out_dir / path.name,
                        stl_dir / f"{job.name}.stl" if stl_dir else None,
                        preview_dir / f"{job.name}.png" if preview_dir else None,
                        confidence=confidence_dir / path.name if confidence_dir else None))
    return jobs


def select_part(items: list, num_parts: int, part_id: int) -> list:
    """Part `part_id` (0-based) of `num_parts` contiguous, near-equal parts of a sorted list.

    Every item falls in exactly one part; the parts' sizes differ by at most one.
    """
    if num_parts < 1:
        raise InputError(f"--num-parts must be at least 1, got {num_parts}")
    if not 0 <= part_id < num_parts:
        raise InputError(f"--part-id must be between 0 and {num_parts - 1} for --num-parts {num_parts}, got {part_id}")
    count = len(items)
    start = part_id * count // num_parts
    stop = (part_id + 1) * count // num_parts
    return list(items[start:stop])


def run_jobs(
    jobs: list[Job],
    *,
    model_path: str | Path | None = None,
    device: str = "auto",
    clearance_mm: float = 0.0,
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
    options = {"clearance_mm": clearance_mm, "overwrite": overwrite, "cases": len(jobs)}
    previous = _previous_cases(report_path) if report_path is not None and not overwrite else {}
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
        _import_reader(single)
        importer = _in_thread(_import_design)
        try:
            start = time.perf_counter()
            checked[single.source] = (read_skull(single), time.perf_counter() - start)
        finally:
            importer.exception()  # waits; an import error is raised again, with its message, by the main thread's own import
    if needs_model:
        model()  # fail early (bad --model or --device) before any case
    if single is not None and _builds_mesh(single, with_thickness=report_path is not None):
        _in_thread(lambda: _import_mesh(picture=single.preview is not None))  # 0.4 s (+ 0.9 s) of imports beside the design
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
    options = dict(clearance_mm=clearance_mm, reuse_volume=resume and not overwrite, with_thickness=report_path is not None)
    if workers > 1 and len(to_design) > 1:
        results = _design_in_workers(to_design, workers, model_path, device, options)
    else:
        results = ((job, _design_or_error(job, model, options, checked.pop(job.source, None))) for job in to_design)
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
                tqdm.write(progress() + _case_line(outcome), file=log)
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
    if len(jobs) > 1:
        summary = report.summary()
        mean = f", {summary['mean_time_s']:.1f} s per case" if summary["mean_time_s"] is not None else ""
        print(f"done: {summary['done']} designed, {summary['skipped']} skipped (outputs existed), "
              f"{summary['failed']} failed, {_count(summary['warnings'], 'warning')}{mean}"
              + (f"; report {report_path}" if report_path else ""), file=log)
        flagged = [case["case"] for case in report.cases if case.get("quality", {}).get("review")]
        if flagged:
            print(f"review {_count(len(flagged), 'design')} before use: {', '.join(flagged)}", file=log)
    if failures:
        names = ", ".join(job.name for job, _ in failures)
        if any(not isinstance(error, InputError) for _, error in failures):
            raise RuntimeError(f"{len(failures)} case(s) failed: {names}")
        raise InputError(f"{len(failures)} case(s) had bad input and were not designed: {names} (see above)")
    return report


def _import_reader(job: Job) -> None:
    """Import the modules read_skull needs for this job."""
    import pcc.io  # noqa: F401
    import pcc.volume  # noqa: F401

    if job.ct is not None:
        import pcc.io.dicom  # noqa: F401
        import pcc.toolkit.segment  # noqa: F401


def _import_design() -> None:
    """Import design_implant's modules, torch included, and those it imports only when it first runs, so
    that during the design the main thread imports nothing the mesh's import thread could be importing."""
    import pcc.design  # noqa: F401
    import pcc.geometry.surface  # noqa: F401
    import pcc.geometry.voxelize  # noqa: F401
    from skimage.measure import marching_cubes  # noqa: F401  (scikit-image loads it on first use)


def _import_mesh(*, picture: bool = False) -> None:
    """Import the printable mesh's library (and, for a preview, matplotlib's pyplot with its Agg backend)."""
    import trimesh  # noqa: F401

    if picture:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot  # noqa: F401


def _in_thread(compute: Callable[[], Any]) -> Future:
    """compute() in a thread of its own; the Future gives (its result, its seconds) or raises its error
    (an import function's error stays in its Future: the main thread's own import raises it again)."""

    def timed() -> tuple[Any, float]:
        start = time.perf_counter()
        return compute(), time.perf_counter() - start

    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pcc")
    future = executor.submit(timed)
    executor.shutdown(wait=False)  # the thread ends when compute() returns
    return future


def _builds_mesh(job: Job, *, with_thickness: bool) -> bool:
    """Whether design_case builds the printable mesh for this job (for its STL, preview or thickness figure)."""
    return job.stl is not None or job.preview is not None or with_thickness


def _design_or_error(job: Job, model, options: dict[str, Any], defective=None) -> dict[str, Any] | BaseException:
    """design_case's record, or the exception it raised (KeyboardInterrupt and SystemExit propagate)."""
    try:
        return design_case(job, model, defective=defective, **options)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as error:
        return error


_WORKER_MODEL: dict[str, Any] = {}


def _load_worker_model(model_path: str | Path | None, device: str) -> None:
    """Worker process start: ignore Ctrl-C (the main process stops the workers: SIGTERM, which ends a worker at
    once), load the model once (torch on one thread)."""
    import signal

    import torch

    from pcc.design import load_model

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    _WORKER_MODEL["model"] = load_model(model_path, device=device)


def _design_in_worker(task: tuple[Job, dict[str, Any]]) -> tuple[Job, dict[str, Any] | BaseException]:
    job, options = task
    return job, _design_or_error(job, lambda: _WORKER_MODEL["model"], options)


def _design_in_workers(jobs: list[Job], workers: int, model_path, device: str, options: dict[str, Any]):
    """(job, record or exception) as the worker processes finish them (spawned: safe with CUDA).

    When the caller stops early (Ctrl-C, an error), leaving the `with` terminates the pool: every worker
    gets SIGTERM and ends at once (a Python handler would wait for the worker's main thread, which may be
    blocked in a lock); run_jobs then removes the files of the cases the report does not list."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with context.Pool(min(workers, len(jobs)), initializer=_load_worker_model, initargs=(model_path, device)) as pool:
        yield from pool.imap_unordered(_design_in_worker, [(job, options) for job in jobs])
        pool.close()  # every case done: the workers end on their own
        pool.join()


def read_skull(job: Job):
    """(the job's defective skull as a binary Volume, warnings about the input); InputError when the
    input cannot be one.

    A binary skull volume is read and checked; a CT (job.ct) is read (a DICOM series folder through
    pcc.io.dicom, or a volume file), checked (pcc.toolkit.segment.check_ct_grid) and segmented with
    pcc.toolkit.segment.segment_skull onto its own grid; the skull keeps the CT's header (for a DICOM series:
    its identifiers, never the patient's name), and pcc.toolkit.segment.scan_warnings gives the warnings.
    """
    from pcc.io import read_volume
    from pcc.volume import require_binary

    if job.ct is None:
        return require_binary(read_volume(job.source), job.source), []
    from pcc.toolkit.segment import check_ct_grid, scan_warnings, segment_skull

    if job.source.is_dir():
        from pcc.io.dicom import read_series

        ct = read_series(job.source, job.ct.series)
    else:
        if job.ct.series is not None:
            raise InputError("--series picks a series in a folder of DICOM files; the input is a volume file: drop --series")
        ct = read_volume(job.source)
    values = np.asarray(ct.array)
    if values.size and bool(((values == 0) | (values == 1)).all()):
        raise InputError(f"{job.source} holds only 0 and 1, a mask rather than a CT in Hounsfield units: "
                         "drop --ct to design from a binary skull")
    check_ct_grid(ct)
    skull = segment_skull(ct, low=job.ct.low_hu, high=job.ct.high_hu)
    return ct.with_array(skull.astype("uint8")), scan_warnings(ct, skull)


def design_case(job: Job, model, *, clearance_mm: float = 0.0, reuse_volume: bool = True,
                with_thickness: bool = True, defective: tuple[tuple[Any, list[str]], float] | None = None) -> dict[str, Any]:
    """Design one case and write its outputs; returns its report record (status 'done').

    `model` is a callable returning the loaded model (called when the case is designed or assessed).
    With reuse_volume, an existing implant volume is read instead of designed again.
    `defective`: (read_skull's result for the job, seconds it took), or None to read it here.
    An interrupted case's files are removed by run_jobs, which knows which cases the report lists.
    """
    import numpy as np

    from pcc.io import read_volume, write_volume
    from pcc.design import DesignSettings, design_implant, no_defect_warning

    settings = DesignSettings()  # a reused implant's no-defect check; a designed one uses the model's
    timings: dict[str, float] = {}
    warnings: list[str] = []
    total = time.perf_counter()
    start = time.perf_counter()
    if defective is None:
        defective, input_warnings = read_skull(job)
        timings["read"] = time.perf_counter() - start
    else:
        (defective, input_warnings), timings["read"] = defective
    warnings.extend(input_warnings)
    reused = reuse_volume and job.output.is_file()
    specks: dict[str, int] = {}
    if reused:
        start = time.perf_counter()
        implant = read_volume(job.output)
        if not implant.same_grid(defective):
            raise InputError(f"{job.output} exists but is not on {job.source}'s grid: remove it or use --overwrite")
        timings["read_existing_implant"] = time.perf_counter() - start
        warnings.append(f"implant volume {job.output} existed and was reused (use --overwrite to design it again)")
    else:
        stages: dict[str, float] = {}
        start = time.perf_counter()
        settings = model().settings
        implant = design_implant(defective, model(), settings=settings, timings=stages, specks=specks)
        timings["design"] = time.perf_counter() - start
        timings.update({f"design.{k}": v for k, v in stages.items()})
        start = time.perf_counter()
        write_volume(job.output, implant)
        timings["write_volume"] = time.perf_counter() - start
    from pcc.geometry.masks import bounding_box, box_slices

    voxels = int(np.count_nonzero(implant.array))
    # The implant's own box: the checks below need no grid-sized array.
    box = box_slices(*bounding_box(implant.array)) if voxels else (slice(0, 0),) * 3
    mask = implant.mask(box)
    record: dict[str, Any] = {
        "case": job.name,
        "input": str(job.source),
        **({"ct": _ct_record(job, defective)} if job.ct is not None else {}),
        "status": "done",
        "outputs": {"volume": str(job.output), "stl": _str(job.stl), "preview": _str(job.preview)},
        "grid": {"shape": list(implant.shape), "spacing_mm": implant.spacing.round(6).tolist(), "space": implant.space},
        "implant": {"voxels": voxels, "volume_mm3": voxels * implant.voxel_volume},
    }
    if specks:
        record["implant"]["specks_removed"] = specks  # stray parts below settings.speck_mm3, counted, not warned about
    start = time.perf_counter()
    from pcc.design.assessment import assess_design

    assessment = assess_design(defective, implant, model(), settings=model().settings, trust=getattr(model(), "trust", None))
    record["quality"] = assessment.quality
    record["trust_signals"] = {k: round(v, 4) for k, v in assessment.signals.items()}
    timings["assess"] = time.perf_counter() - start
    if job.confidence is not None:
        start = time.perf_counter()
        write_volume(job.confidence, assessment.confidence, binary=False)
        timings["write_confidence"] = time.perf_counter() - start
    negligible = no_defect_warning(implant, defective, settings)
    if negligible is not None:
        warnings.append(negligible + (" (the implant is empty: no STL written)" if voxels == 0 else ""))
    if voxels and np.any(mask & defective.mask(box)):
        warnings.append("the implant overlaps the defective skull")
    mesh = solid = measured = thickness = None
    plain = clearance_mm == 0  # then the printed solid and mesh are those the thickness figure measures
    if voxels and _builds_mesh(job, with_thickness=with_thickness):
        from pcc.geometry.masks import largest_component
        from pcc.outputs.printing import check_printable, printable_mesh, solid_mask, solid_thickness_mm, write_stl

        start = time.perf_counter()
        solid = solid_mask(implant, clearance_mm=clearance_mm, defective=defective)
        if with_thickness:  # the local thickness in a thread while the mesh is built, checked and written
            measured = solid if plain else solid_mask(implant)
            thickness = _in_thread(lambda: solid_thickness_mm(measured, implant.spacing))
        mesh = printable_mesh(implant, clearance_mm=clearance_mm, defective=defective, solid=solid)
        timings["mesh"] = time.perf_counter() - start
        checks = check_printable(mesh, implant, solid=solid)
        record["mesh"] = {"vertices": int(len(mesh.vertices)), "faces": int(len(mesh.faces)), "clearance_mm": clearance_mm, **checks}
        if not checks["ok"]:
            warnings.append(f"the printable mesh failed a check: {checks}")
        kept = int(largest_component(mask, connectivity=1).sum())
        if kept < voxels:  # the other parts are at least settings.speck_mm3 each (smaller ones were dropped)
            left = (voxels - kept) * implant.voxel_volume / 1000
            warnings.append(f"the implant has several parts: the STL holds the largest ({kept * implant.voxel_volume / 1000:.1f} cm³); "
                            f"{left:.2f} cm³ in other parts is in the volume only: check them in the preview")
        if clearance_mm > 0:
            record["mesh"]["clearance_removed_mm3"] = (voxels - int(solid.sum())) * implant.voxel_volume
        if job.stl is not None:
            start = time.perf_counter()
            write_stl(job.stl, mesh, space=implant.space)
            timings["write_stl"] = time.perf_counter() - start
    if voxels and with_thickness:
        from pcc.outputs.printing import thickness_report

        values, seconds = thickness.result()
        start = time.perf_counter()
        record["implant"].update(thickness_report(implant, mesh=mesh if plain else None, solid=measured, thickness=values))
        timings["thickness"] = seconds + time.perf_counter() - start  # (the thread's seconds overlap the mesh's)
        if record["implant"]["thickness_p05_mm"] < 1.0:
            warnings.append(f"5% of the implant is thinner than {record['implant']['thickness_p05_mm']:.2f} mm")
    if job.preview is not None:
        from pcc.outputs.preview import render_preview

        start = time.perf_counter()
        lines = [f"implant {voxels * implant.voxel_volume / 1000:.1f} cm³"]
        if "thickness_mean_mm" in record["implant"]:
            i = record["implant"]
            lines.append(f"thickness mean {i['thickness_mean_mm']:.1f} mm (5th percentile {i['thickness_p05_mm']:.1f}, "
                         f"max {i['thickness_max_mm']:.1f})")
            lines.append(f"area {i['area_mm2'] / 100:.1f} cm²")
        if clearance_mm > 0:
            lines.append(f"clearance {clearance_mm:g} mm")
        quality = assessment.quality
        lines.append(f"expected DSC {quality['expected_dsc']:.2f}" + ("  REVIEW" if quality["review"] else ""))
        render_preview(defective, implant, job.preview, title=job.name, implant_mesh=mesh, lines=lines,
                       notes=quality["reasons"], confidence=assessment.confidence)
        timings["preview"] = time.perf_counter() - start
    timings["total"] = time.perf_counter() - total
    record["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
    record["warnings"] = warnings
    return record


def _ct_record(job: Job, skull) -> dict[str, Any]:
    """What the report says about a CT input: its series' identifiers (DICOM) and the segmentation's settings."""
    series_keys = ("SeriesInstanceUID", "StudyInstanceUID", "SeriesNumber", "SeriesDescription", "Modality")
    from pcc.toolkit import segment

    record: dict[str, Any] = {"format": "DICOM series" if job.source.is_dir() else "volume",
                              "segmentation": {"low_hu": job.ct.low_hu,
                                               "high_hu": job.ct.high_hu if np.isfinite(job.ct.high_hu) else "none",
                                               "bridge_mm": segment.BRIDGE_MM, "table_min_ml": segment.TABLE_MIN_ML}}
    if job.source.is_dir():
        record["series"] = {key: skull.header.get(key) for key in series_keys}
    record["skull_voxels"] = int(skull.mask().sum())
    return record


def _case_line(record: dict[str, Any]) -> str:
    implant = record["implant"]
    timings = record["timings_s"]
    parts = [f"{record['case']}: {implant['volume_mm3'] / 1000:.1f} cm³"]
    if "thickness_mean_mm" in implant:
        parts.append(f"thickness {implant['thickness_mean_mm']:.1f} mm")
    if "mesh" in record:
        parts.append("STL ok" if record["mesh"]["ok"] else "STL CHECK FAILED")
    design = f"design {timings['design']:.1f} s, " if "design" in timings else "volume reused, "
    parts.append(f"{design}total {timings['total']:.1f} s → {record['outputs']['volume']}")
    line = "  ".join(parts)
    quality = record.get("quality")
    if quality is not None:
        if quality["review"]:
            reason = quality["reasons"][0] if quality["reasons"] else "check the design"
            line += f"\n{record['case']}: review: {reason}"
        else:
            line += f"  expected DSC {quality['expected_dsc']:.2f}"
    return line


def _previous_cases(path: Path) -> dict[str, Any]:
    import json

    try:
        data = json.loads(Path(path).read_text())
        cases = {}
        for case in data.get("cases", []):
            if case.get("status") == "done":
                cases[case["case"]] = case
            elif case.get("status") == "skipped" and isinstance(case.get("previous_run"), dict):
                cases[case["case"]] = case["previous_run"]
        return cases
    except Exception:  # no report yet, or not ours: nothing to carry over
        return {}


def _count(number: int, noun: str) -> str:
    """'1 warning', '2 warnings'."""
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)
