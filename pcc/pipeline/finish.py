"""Step 3 of a case: the plate a planner asks for (pcc.design.plate) — a uniform thickness under the designed
outer surface and perforations — applied to the designed implant before it is written, so the volume and
the STL agree."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class FinishOptions:
    """The planner's choices for a run (all lengths in mm); the defaults leave the design as it is.

    thickness_mm: a plate of this uniform thickness under the predicted outer surface (None: as designed).
    holes: (diameter, spacing) of round perforations on an even grid over the outer surface (None: none).
    hole_margin_mm: least distance from a hole's centre to the bone.
    smooth: smooth the STL's surface (Taubin); False writes the raw marching-cubes surface.
    """

    thickness_mm: float | None = None
    holes: tuple[float, float] | None = None
    hole_margin_mm: float = 5.0
    smooth: bool = True

    def check(self) -> None:
        """InputError (one line saying what to change) for a bad value. The defaults need no check (and no
        import of pcc.design, which brings torch: a single case imports it beside the reading instead)."""
        if not self.changes_volume:
            return
        from pcc.design.plate import check_plate_options

        check_plate_options(self.thickness_mm, self.holes, self.hole_margin_mm)

    @property
    def changes_volume(self) -> bool:
        return self.thickness_mm is not None or self.holes is not None

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def finish_implant(implant, defective, options: FinishOptions, *, record: dict[str, Any], timings: dict[str, float],
                   warnings: list[str]):
    """The implant with the asked thickness and holes (a Volume on its grid); what was applied and the measured
    plate thickness go to record["plate"], the holes to record["holes"]. Unchanged when nothing is asked.
    InputError when the plate cannot be made (e.g. no room for a hole); a plate too small to measure away
    from the rim gets a warning instead of its measured thickness."""
    if not options.changes_volume or not np.any(implant.array):
        return implant
    from pcc.design.plate import cut_holes, plan_holes, plate_thickness_mm, uniform_plate
    from pcc.errors import InputError

    start = time.perf_counter()
    plate: dict[str, Any] = {"thickness_mm": options.thickness_mm}
    if options.thickness_mm is not None:
        implant = uniform_plate(implant, defective, options.thickness_mm)
    if options.holes is not None:
        plan = plan_holes(implant, defective, *options.holes, margin_mm=options.hole_margin_mm)
        implant = cut_holes(implant, plan)
        record["holes"] = {**plan.report(), "margin_mm": float(options.hole_margin_mm)}
    try:  # the plate away from the rim (≥ 5 mm from bone), measured independently of the design
        measured = plate_thickness_mm(implant, defective)
    except InputError as error:
        measured = np.empty(0)
        warnings.append(f"the plate's thickness was not measured: {error}")
    if measured.size:
        p05, median, p95 = np.percentile(measured, [5, 50, 95])
        plate["measured_mm"] = {"p05": round(float(p05), 3), "median": round(float(median), 3), "p95": round(float(p95), 3)}
    record["plate"] = plate
    timings["finish"] = time.perf_counter() - start
    return implant
