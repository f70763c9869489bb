"""Step 4 of a case: how far to trust the design (pcc.design.assessment), and its confidence map."""

from __future__ import annotations

import time
from typing import Any

from pcc.pipeline.jobs import Job


def assess_case(job: Job, defective, implant, model, *, record: dict[str, Any], timings: dict[str, float]):
    """The design's Assessment; its quality and signals go into the case's record, and its confidence
    map (uint8 percent on the input's grid) to job.confidence when asked for. model: a callable returning
    the loaded model."""
    from pcc.design.assessment import assess_design

    start = time.perf_counter()
    assessment = assess_design(defective, implant, model(), settings=model().settings, trust=getattr(model(), "trust", None))
    record["quality"] = assessment.quality
    record["trust_signals"] = {k: round(v, 4) for k, v in assessment.signals.items()}
    timings["assess"] = time.perf_counter() - start
    if job.confidence is not None:
        from pcc.io import write_volume

        start = time.perf_counter()
        write_volume(job.confidence, assessment.confidence, binary=False)
        timings["write_confidence"] = time.perf_counter() - start
    return assessment
