"""Step 7 of a case: the self-contained review page (pcc.outputs.review), and a folder run's index of pages."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pcc.pipeline.jobs import Job


def review_case(job: Job, defective, implant, *, ct, mesh, assessment, record: dict[str, Any],
                timings: dict[str, float]) -> None:
    """Write job.review: skull (and CT, when the input was one), implant coloured by confidence, its mesh,
    and the case's report record beside them."""
    from pcc import __version__
    from pcc.outputs.review import write_review_page

    start = time.perf_counter()
    write_review_page(job.review, case_name=job.name, defective=defective, implant=implant,
                      confidence=assessment.confidence, ct=ct, mesh=mesh, report=record, version=__version__)
    timings["review"] = time.perf_counter() - start


def write_index(jobs: list[Job], cases: list[dict[str, Any]]) -> Path | None:
    """A folder run's review index (index.html beside the pages) listing every case of the report, or None
    when no page was asked for. cases: the run report's records (a skipped case shows its earlier record)."""
    from pcc.outputs.review import write_review_index

    pages = {job.name: job.review for job in jobs if job.review is not None}
    if not pages:
        return None
    rows = []
    for case in cases:
        if case.get("case") not in pages:
            continue
        # a skipped case shows its earlier record when the report had one, else that it was skipped
        row = dict(case.get("previous_run") or case) if case.get("status") == "skipped" else dict(case)
        rows.append({**row, "page": pages[case["case"]].name})
    return write_review_index(next(iter(pages.values())).parent, rows)
