"""Reconstruction of the implant volume from predicted points, on the defective skull's grid.

The points are voxelized (pcc.geometry.voxelize); clean-up smooths that solid (Gaussian,
settings.surface_smoothing_mm) after dropping what lies beyond settings.implant_reach_mm of the
points, joins it to the bone rim (closing of implant ∪ skull), subtracts the skull and drops thin
slivers away from the implant's body (settings.sliver_mm) and small fragments, continues the bone's plate
near the rim (settings.rim_band_mm, pcc.design.rim) and drops specks (settings.speck_mm3).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from pcc.design.rim import FIT_MAX_MM, continue_rim
from pcc.design.settings import DesignSettings
from pcc.geometry.cloud import PointCloud
from pcc.geometry.masks import diamond_closing, drop_fragments, drop_slivers, drop_specks, radius_voxels
from pcc.volume import Volume


def implant_from_points(
    cloud: PointCloud,
    defective: Volume,
    *,
    settings: DesignSettings = DesignSettings(),
    cleanup: bool = True,
    specks: dict[str, int] | None = None,
) -> np.ndarray:
    """Voxelize predicted implant points on the defective skull's grid and clean up: (X, Y, Z) bool.

    settings: point_smoothing_mm (the surface step, smooth_points), kernel_neighbours (the voxelizer),
    and the clean-up's implant_reach_mm, surface_smoothing_mm (Gaussian sigma of the solid),
    rim_closing_mm (closing radius), sliver_mm, rim_band_mm (pcc.design.rim: near the bone the implant follows
    the bone plate continued into the hole; 0: off) and speck_mm3 (face-connected parts smaller than this are
    dropped last; their count is added to `specks`, "parts" and "voxels", when given). With cleanup=False
    the result is the voxelized points minus the skull (for ablations).
    """
    from pcc.geometry.masks import bounding_box, box_slices
    from pcc.geometry.voxelize import points_to_solid_box

    implant = np.zeros_like(defective.array, dtype=bool)  # the input's memory order (NRRD's: x fastest)
    if len(cloud) == 0:  # every predicted defect was intact bone
        return implant
    if settings.point_smoothing_mm > 0:
        cloud = smooth_points(cloud, settings.point_smoothing_mm)
    # Everything below works on boxes of the grid: the voxelized points' box, then the clean-up's.
    solid, solid_origin = points_to_solid_box(cloud, defective, neighbours=settings.kernel_neighbours)
    if not cleanup or not solid.any():
        box = box_slices(solid_origin, solid_origin + solid.shape)
        implant[box] = solid & ~defective.mask(box)
        return implant
    radius = radius_voxels(settings.rim_closing_mm, defective)
    solid_lower, solid_upper = bounding_box(solid)
    lower = np.maximum(solid_origin + solid_lower - 2 * radius - 2, 0)
    upper = np.minimum(solid_origin + solid_upper + 2 * radius + 2, defective.shape)
    box = box_slices(lower, upper)
    skull = defective.mask(box)
    solid_box = np.zeros(skull.shape, dtype=bool)  # the voxelized solid's bounding box, moved into the clean-up's
    solid_box[box_slices(solid_origin + solid_lower - lower, solid_origin + solid_upper - lower)] = \
        solid[box_slices(solid_lower, solid_upper)]
    solid_box = within_reach(solid_box, cloud.points - lower @ defective.directions, defective, settings.implant_reach_mm)
    # The network's points are noisy at the sub-millimetre scale: smooth the solid before joining it to bone.
    sigma = settings.surface_smoothing_mm / np.asarray(defective.spacing)
    solid_box = ndimage.gaussian_filter(solid_box.astype(np.float32), sigma) > 0.5
    union = np.pad(solid_box | skull, radius)
    closed = diamond_closing(union, radius)[tuple(slice(radius, -radius) for _ in range(3))]
    implant_box = ndimage.binary_fill_holes(closed & ~skull) & ~skull
    implant_box = drop_fragments(drop_slivers(implant_box, radius_voxels(settings.sliver_mm, defective)))
    if settings.rim_band_mm > 0:  # the plate is fitted to bone up to FIT_MAX_MM beyond the implant: a wider box
        reach = int(np.ceil(max(FIT_MAX_MM, settings.rim_band_mm) / float(defective.spacing.min())))
        wide_lower, wide_upper = np.maximum(lower - reach, 0), np.minimum(upper + reach, defective.shape)
        inner = box_slices(lower - wide_lower, upper - wide_lower)
        design_wide = np.zeros(wide_upper - wide_lower, dtype=bool)
        design_wide[inner] = implant_box
        implant_box = continue_rim(defective.mask(box_slices(wide_lower, wide_upper)), design_wide,
                                   defective.directions, settings.rim_band_mm)[inner]
    implant_box, parts, voxels = drop_specks(implant_box, int(np.ceil(settings.speck_mm3 / defective.voxel_volume)))
    if specks is not None:
        specks["parts"] = specks.get("parts", 0) + parts
        specks["voxels"] = specks.get("voxels", 0) + voxels
    implant[box] = implant_box
    return implant


def smooth_points(cloud: PointCloud, radius_mm: float, *, max_neighbours: int = 48) -> PointCloud:
    """The surface step: each point moved along its own normal onto the least-squares plane of its
    nearest points (at most max_neighbours) within radius_mm (world mm); normals are kept. Points with
    fewer than 6 such neighbours, or whose normal lies nearly in the fitted plane (an edge or a fold),
    do not move.
    """
    points = np.asarray(cloud.points, dtype=np.float64)
    normals = np.asarray(cloud.normals, dtype=np.float64)
    k = min(max_neighbours, len(points))
    if k < 6:
        return cloud
    distance, index = cKDTree(points).query(points, k=k, distance_upper_bound=radius_mm)
    near = np.isfinite(distance)  # (N, k): a neighbour within radius_mm
    count = near.sum(axis=1)
    neighbours = points[np.where(near, index, 0)]  # (N, k, 3); missing ones are masked out below
    weights = near[..., None].astype(np.float64)
    centre = (neighbours * weights).sum(axis=1) / count[:, None]
    offsets = (neighbours - centre[:, None, :]) * weights
    covariance = np.einsum("nki,nkj->nij", offsets, offsets)
    _, vectors = np.linalg.eigh(covariance)
    plane_normal = vectors[:, :, 0]  # the eigenvector of the smallest eigenvalue
    along = np.einsum("ni,ni->n", normals, plane_normal)
    movable = (count >= 6) & (np.abs(along) >= 0.5)
    # p + t·n lies on the plane: (p + t·n − c)·m = 0
    step = np.einsum("ni,ni->n", points - centre, plane_normal) / np.where(movable, along, 1.0)
    moved = points - np.where(movable, step, 0.0)[:, None] * normals
    return PointCloud(moved, normals)


def within_reach(mask: np.ndarray, points: np.ndarray, grid: Volume, distance_mm: float) -> np.ndarray:
    """The voxels of mask (on grid's geometry, index 0 at grid's origin) whose centres lie within
    distance_mm of some world-mm point."""
    voxels = np.argwhere(mask)
    # Two threads: the query of every voxel of the solid is this function's cost (same answer on any count).
    distance, _ = cKDTree(points).query(grid.index_to_world(voxels), distance_upper_bound=distance_mm, workers=2)
    kept = np.zeros_like(mask)
    kept[tuple(voxels[np.isfinite(distance)].T)] = True
    return kept


def no_defect_warning(implant: Volume, defective: Volume, settings: DesignSettings = DesignSettings()) -> str | None:
    """A warning when the implant is negligible (below settings.no_defect_max_mm3 and
    settings.no_defect_max_fraction of the skull's bone), else None."""
    volume_mm3 = float(np.count_nonzero(implant.array)) * implant.voxel_volume
    skull_mm3 = float(np.count_nonzero(defective.array)) * defective.voxel_volume
    limit = max(settings.no_defect_max_mm3, settings.no_defect_max_fraction * skull_mm3)
    if volume_mm3 >= limit:
        return None
    return (f"no defect found: the implant is {volume_mm3 / 1000:.2f} cm³, below {limit / 1000:.2f} cm³ "
            f"({settings.no_defect_max_mm3 / 1000:g} cm³ or {100 * settings.no_defect_max_fraction:g}% of the skull's "
            "bone); check that the input is the skull with the defect")
