"""Step 5 of a case: the printable mesh, its checks, the implant's thickness, and the STL
(pcc.outputs.printing.print_implant)."""

from __future__ import annotations

from typing import Any

import numpy as np

from pcc.pipeline.jobs import Job


def builds_mesh(job: Job, *, with_thickness: bool) -> bool:
    """Whether design_case builds the printable mesh for this job (for its STL, preview, review page or
    thickness figure)."""
    return job.stl is not None or job.preview is not None or job.review is not None or with_thickness


def print_case(job: Job, implant, defective, *, mask: np.ndarray, clearance_mm: float, smooth: bool,
               with_thickness: bool, record: dict[str, Any], warnings: list[str], timings: dict[str, float]):
    """The printable mesh (trimesh.Trimesh, world mm) of a non-empty implant, or None when the job needs none.

    mask: the implant's voxels in its bounding box. The mesh's checks go to record["mesh"], the thickness
    figures to record["implant"] (with_thickness), the STL to job.stl; warnings for a failed check, parts
    left out of the STL and thin bone.
    """
    from pcc.geometry.masks import largest_component
    from pcc.outputs.printing import print_implant

    if not builds_mesh(job, with_thickness=with_thickness):
        return None
    voxels = record["implant"]["voxels"]  # (the thickness figures below count the printed solid's voxels)
    printed = print_implant(implant, defective=defective, clearance_mm=clearance_mm, smooth=smooth,
                            with_thickness=with_thickness, stl=job.stl)
    timings.update(printed.timings)
    record["mesh"] = printed.record
    record["implant"].update(printed.figures)
    warnings.extend(printed.warnings)
    kept = int(largest_component(mask, connectivity=1).sum())
    if kept < voxels:  # the other parts are at least settings.speck_mm3 each (smaller ones were dropped)
        left = (voxels - kept) * implant.voxel_volume / 1000
        warnings.append(f"the implant has several parts: the STL holds the largest ({kept * implant.voxel_volume / 1000:.1f} "
                        f"cm³); {left:.2f} cm³ in other parts is in the volume only: check them in the preview")
    return printed.mesh
