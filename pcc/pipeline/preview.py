"""Step 6 of a case: the preview picture (pcc.outputs.preview) with the case's figures as captions."""

from __future__ import annotations

import time
from typing import Any

from pcc.pipeline.jobs import Job


def preview_case(job: Job, defective, implant, *, mesh, assessment, record: dict[str, Any], clearance_mm: float,
                 finish, timings: dict[str, float]) -> None:
    """Render job.preview: the implant over the skull, coloured by confidence, captioned with its volume,
    thickness, area, clearance, plate and holes (finish: FinishOptions), STL smoothing and expected DSC, and
    the reasons to review it."""
    from pcc.outputs.preview import render_preview

    start = time.perf_counter()
    figures = record["implant"]
    lines = [f"implant {figures['voxels'] * implant.voxel_volume / 1000:.1f} cm³"]
    if "thickness_mean_mm" in figures:
        lines.append(f"thickness mean {figures['thickness_mean_mm']:.1f} mm (5th percentile {figures['thickness_p05_mm']:.1f}, "
                     f"max {figures['thickness_max_mm']:.1f})")
        lines.append(f"area {figures['area_mm2'] / 100:.1f} cm²")
    if clearance_mm > 0:
        lines.append(f"clearance {clearance_mm:g} mm")
    plate = record.get("plate")
    if plate is not None and plate.get("thickness_mm") is not None:
        measured = plate.get("measured_mm")
        lines.append(f"plate {plate['thickness_mm']:g} mm" + (f" (measured median {measured['median']:.1f}, "
                                                             f"5-95 % {measured['p05']:.1f}-{measured['p95']:.1f})" if measured else ""))
    holes = record.get("holes")
    if holes is not None:
        lines.append(f"{holes['count']} holes of {holes['diameter_mm']:g} mm, {holes['spacing_mm']:g} mm apart")
    if not finish.smooth:
        lines.append("STL surface not smoothed")
    quality = assessment.quality
    lines.append(f"expected DSC {quality['expected_dsc']:.2f}" + ("  REVIEW" if quality["review"] else ""))
    render_preview(defective, implant, job.preview, title=job.name, implant_mesh=mesh, lines=lines,
                   notes=quality["reasons"], confidence=assessment.confidence)
    timings["preview"] = time.perf_counter() - start
