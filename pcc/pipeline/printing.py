"""Step 4 of a case: the printable mesh, its checks, the implant's thickness, and the STL."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from pcc.pipeline.jobs import Job
from pcc.pipeline.workers import in_thread


def builds_mesh(job: Job, *, with_thickness: bool) -> bool:
    """Whether design_case builds the printable mesh for this job (for its STL, preview, review page or
    thickness figure)."""
    return job.stl is not None or job.preview is not None or job.review is not None or with_thickness


def print_case(job: Job, implant, defective, *, mask: np.ndarray, clearance_mm: float, with_thickness: bool,
               record: dict[str, Any], warnings: list[str], timings: dict[str, float]):
    """The printable mesh (trimesh.Trimesh, world mm) of a non-empty implant, or None when the job needs none.

    mask: the implant's voxels in its bounding box. The mesh's checks go to record["mesh"], the thickness
    figures to record["implant"] (with_thickness), the STL to job.stl; warnings for a failed check, parts
    left out of the STL and thin bone.
    """
    from pcc.geometry.masks import largest_component
    from pcc.outputs.printing import check_printable, printable_mesh, solid_mask, solid_thickness_mm, thickness_report, write_stl

    voxels = record["implant"]["voxels"]
    mesh = measured = thickness = None
    plain = clearance_mm == 0  # then the printed solid and mesh are those the thickness figure measures
    if builds_mesh(job, with_thickness=with_thickness):
        start = time.perf_counter()
        solid = solid_mask(implant, clearance_mm=clearance_mm, defective=defective)
        if with_thickness:  # the local thickness in a thread while the mesh is built, checked and written
            measured = solid if plain else solid_mask(implant)
            thickness = in_thread(lambda: solid_thickness_mm(measured, implant.spacing))
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
    if with_thickness:
        values, seconds = thickness.result()
        start = time.perf_counter()
        record["implant"].update(thickness_report(implant, mesh=mesh if plain else None, solid=measured, thickness=values))
        timings["thickness"] = seconds + time.perf_counter() - start  # (the thread's seconds overlap the mesh's)
        if record["implant"]["thickness_p05_mm"] < 1.0:
            warnings.append(f"5% of the implant is thinner than {record['implant']['thickness_p05_mm']:.2f} mm")
    return mesh
