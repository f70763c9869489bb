"""One case through the pipeline's steps (read → design → finish → assess → print → preview → review page),
and its report record."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from pcc.pipeline.assess import assess_case
from pcc.pipeline.design import design_or_reuse, write_implant
from pcc.pipeline.finish import FinishOptions, finish_implant
from pcc.pipeline.jobs import Job
from pcc.pipeline.preview import preview_case
from pcc.pipeline.printing import builds_mesh, print_case
from pcc.pipeline.read import ct_record, read_skull
from pcc.pipeline.review import review_case

__all__ = ["builds_mesh", "design_case", "design_or_error"]


def design_case(job: Job, model, *, clearance_mm: float = 0.0, finish: FinishOptions = FinishOptions(),
                reuse_volume: bool = True, with_thickness: bool = True,
                defective: tuple[tuple[Any, list[str], Any], float] | None = None) -> dict[str, Any]:
    """Design one case and write its outputs; returns its report record (status 'done').

    `model` is a callable returning the loaded model (called when the case is designed or assessed).
    With reuse_volume, an existing implant volume is read instead of designed again (and not finished again).
    finish: the plate's thickness, holes and STL smoothing asked for (FinishOptions).
    `defective`: (read_skull's result for the job, seconds it took), or None to read it here.
    An interrupted case's files are removed by run_jobs, which knows which cases the report lists.
    """
    from pcc.design import no_defect_warning
    from pcc.geometry.masks import bounding_box, box_slices

    timings: dict[str, float] = {}
    warnings: list[str] = []
    total = time.perf_counter()
    start = time.perf_counter()
    if defective is None:
        defective, input_warnings, ct = read_skull(job)
        timings["read"] = time.perf_counter() - start
    else:
        (defective, input_warnings, ct), timings["read"] = defective
    warnings.extend(input_warnings)
    designed, settings, specks, reused = design_or_reuse(job, defective, model, reuse_volume=reuse_volume,
                                                         timings=timings, warnings=warnings)
    finished: dict[str, Any] = {}  # what the finishing step applied and measured (plate, holes)
    implant = designed if reused else finish_implant(designed, defective, finish, record=finished, timings=timings,
                                                     warnings=warnings)
    if not reused:
        write_implant(job, implant, timings=timings)
    voxels = int(np.count_nonzero(implant.array))
    # The implant's own box: the checks below need no grid-sized array.
    box = box_slices(*bounding_box(implant.array)) if voxels else (slice(0, 0),) * 3
    mask = implant.mask(box)
    record: dict[str, Any] = {
        "case": job.name,
        "input": str(job.source),
        **({"ct": ct_record(job, defective)} if job.ct is not None else {}),
        "status": "done",
        "outputs": {"volume": str(job.output), "stl": _str(job.stl), "preview": _str(job.preview)},
        "grid": {"shape": list(implant.shape), "spacing_mm": implant.spacing.round(6).tolist(), "space": implant.space},
        "implant": {"voxels": voxels, "volume_mm3": voxels * implant.voxel_volume},
    }
    if specks:
        record["implant"]["specks_removed"] = specks  # stray parts below settings.speck_mm3, counted, not warned about
    record.update(finished)
    # The assessment judges the design itself (a plate cut from it keeps its outer surface and its place).
    assessment = assess_case(job, defective, designed, model, record=record, timings=timings)
    negligible = no_defect_warning(implant, defective, settings)
    if negligible is not None:
        warnings.append(negligible + (" (the implant is empty: no STL written)" if voxels == 0 else ""))
    if voxels and np.any(mask & defective.mask(box)):
        warnings.append("the implant overlaps the defective skull")
    mesh = None
    if voxels:
        mesh = print_case(job, implant, defective, mask=mask, clearance_mm=clearance_mm, smooth=finish.smooth,
                          with_thickness=with_thickness, record=record, warnings=warnings, timings=timings)
    if job.preview is not None:
        preview_case(job, defective, implant, mesh=mesh, assessment=assessment, record=record,
                     clearance_mm=clearance_mm, finish=finish, timings=timings)
    record["warnings"] = warnings  # (the review page shows them)
    if job.review is not None:
        review_case(job, defective, implant, ct=ct, mesh=mesh, assessment=assessment, record=record, timings=timings)
    timings["total"] = time.perf_counter() - total
    record["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
    record["warnings"] = record.pop("warnings")  # after timings_s, as the report has always listed them
    return record


def design_or_error(job: Job, model, options: dict[str, Any], defective=None) -> dict[str, Any] | BaseException:
    """design_case's record, or the exception it raised (KeyboardInterrupt and SystemExit propagate)."""
    try:
        return design_case(job, model, defective=defective, **options)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as error:
        return error


def _str(path) -> str | None:
    return None if path is None else str(path)
