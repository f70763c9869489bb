"""Step 2 of a case: design the implant (pcc.design), or reuse a volume written before; and write it."""

from __future__ import annotations

import time

from pcc.errors import InputError
from pcc.pipeline.jobs import Job


def design_or_reuse(job: Job, defective, model, *, reuse_volume: bool, timings: dict[str, float],
                    warnings: list[str]):
    """(implant Volume, the DesignSettings it was judged with, specks removed per kind, whether it was reused).

    model: a callable returning the loaded model. With reuse_volume an existing job.output is read
    (it must lie on the skull's grid) instead of designed again; otherwise the implant is designed
    with the model's settings. Seconds per stage go into timings.
    """
    from pcc.design import DesignSettings, design_implant
    from pcc.io import read_volume

    specks: dict[str, int] = {}
    if reuse_volume and job.output.is_file():
        start = time.perf_counter()
        implant = read_volume(job.output)
        if not implant.same_grid(defective):
            raise InputError(f"{job.output} exists but is not on {job.source}'s grid: remove it or use --overwrite")
        timings["read_existing_implant"] = time.perf_counter() - start
        warnings.append(f"implant volume {job.output} existed and was reused (use --overwrite to design it again)")
        return implant, DesignSettings(), specks, True  # a reused implant's no-defect check uses the default settings
    stages: dict[str, float] = {}
    start = time.perf_counter()
    settings = model().settings
    implant = design_implant(defective, model(), settings=settings, timings=stages, specks=specks)
    timings["design"] = time.perf_counter() - start
    timings.update({f"design.{k}": v for k, v in stages.items()})
    return implant, settings, specks, False


def write_implant(job: Job, implant, *, timings: dict[str, float]) -> None:
    """Write the implant volume to job.output (atomically)."""
    from pcc.io import write_volume

    start = time.perf_counter()
    write_volume(job.output, implant)
    timings["write_volume"] = time.perf_counter() - start
