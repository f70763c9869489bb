"""Continuity with the rim: near the bone, the implant follows the bone plate continued into the hole.

The network places the implant's surfaces about a voxel off where they meet the bone (issue 30). The bone
around the hole shows where its outer and inner surfaces run; continued into the hole they say, for each
voxel near the rim, whether it lies inside the plate. Near the bone that answer is blended with the
design's own (both as signed distances in mm, negative inside):

    phi = w · plate + (1 − w) · design,   w = 1 − (distance from the bone) / band_mm, clipped to [0, 1].

A voxel that is not bone, within band_mm of the bone and within NEAR_DESIGN_MM of the design's surface (either
side) is implant when phi < 0, where both surfaces of the plate were found; every voxel farther from the bone
or the design's surface keeps the design's answer. The parts, each chosen for speed (about 0.8 s on the
example case on a 2-core CPU, against about 13 s for fits at every voxel with exact distance maps):

- design: the signed distance from the design's surface, read from its indicator smoothed with a Gaussian of
  DESIGN_SIGMA_MM (exact for a flat surface: d = sigma · Φ⁻¹(1 − smoothed), Φ the normal distribution,
  measured to the surface between voxels); beyond 4 sigma it is not used. Within the band the design's own
  answer is thus that of its smoothed form: parts thinner than about two voxels and sharp edges read as
  outside (the implant's plates are 5–8 mm thick).
- distance from the bone: between voxel centres, exact where it is under _slack (three voxel diagonals:
  there the weight is largest); farther, from a distance map on a grid COARSE times coarser (a cell is bone
  when one of its voxels is), read with trilinear interpolation, within about 2.5 voxel diagonals of the
  exact one, so the band's far edge is that fuzzy.
- plate: the bone's surface voxels FIT_MIN_MM to FIT_MAX_MM from the design (neither the cut face, where the
  bone meets the implant, nor the smoothing of the normals around it), one in POINT_SHARE (a fixed draw),
  normals out of the bone from the gradient of its mask smoothed with a Gaussian of NORMAL_SIGMA_MM, each
  point moved out from its voxel centre by half the length of the voxel steps projected on its normal. At a
  lattice node (every LATTICE-th voxel along each axis) the NEIGHBOURS nearest points, Gaussian-weighted
  (WEIGHT_MM), are split by their normals: those within 45° of the main axis of their normals form one
  surface, those within 45° of its opposite the other; each surface is the weighted mean of its points'
  tangent planes, and the plate's signed distance is the larger of the two heights (inside when under both).
  Between nodes it is interpolated trilinearly; a voxel is used when all eight of its nodes found both
  surfaces.

The plate uses world coordinates (tilted grids included); the distance maps and smoothing use the voxel
spacing as if the axes were square (exact on the usual grids, an approximation under a gantry tilt). Measured
on the development split: docs/experiments.md, "Continuing the rim bone's plate into the hole"
(tools/analysis/rim_continuation.py).
"""
from __future__ import annotations

from functools import reduce

import numpy as np
from scipy import ndimage, special
from scipy.spatial import cKDTree

from pcc.geometry.masks import box_slices, widened_box

NEAR_DESIGN_MM = 2.0
FIT_MIN_MM = 2.5
FIT_MAX_MM = 14.0
NEIGHBOURS = 50
POINT_SHARE = 12
WEIGHT_MM = 4.0
SIDE_COSINE = float(np.cos(np.radians(45.0)))
DESIGN_SIGMA_MM = 1.0
NORMAL_SIGMA_MM = 1.0
COARSE = 3
LATTICE = 3
CHUNK = 2_000  # points whose normals are computed at a time (memory only; same answer)

_CORNERS = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)])  # (8, 3): a lattice cell's nodes


def plate_near_rim(bone: np.ndarray, design: np.ndarray, directions: np.ndarray, reach_mm: float,
                   *, near_mm: float = NEAR_DESIGN_MM) -> dict[str, np.ndarray]:
    """The two signed distances (mm, negative inside) at the voxels that rim continuation may change.

    bone, design: (X, Y, Z) bool arrays on one grid; directions (3, 3), row a the world step (mm) of array axis a;
    reach_mm: the widest band to be blended; near_mm: at most 4 · DESIGN_SIGMA_MM. Returns {"voxels": (V, 3) int
    indices of the non-bone voxels within reach_mm of the bone and near_mm of the design's surface where both
    surfaces of the plate were found, "plate": (V,), "design": (V,), "to_bone": (V,) distance from the bone, mm};
    no voxels when the design or the bone is empty, or fewer than NEIGHBOURS surface points were found.
    """
    empty = {"voxels": np.zeros((0, 3), dtype=int), "plate": np.zeros(0), "design": np.zeros(0), "to_bone": np.zeros(0)}
    if not design.any() or not bone.any():
        return empty
    if not 0 < near_mm <= 4 * DESIGN_SIGMA_MM:
        raise ValueError(f"near_mm must lie in (0, {4 * DESIGN_SIGMA_MM:g}] mm, got {near_mm}")
    spacing = np.linalg.norm(directions, axis=1)
    slack = _slack(spacing)
    lower, upper = widened_box(design, np.ceil((near_mm + 4 * DESIGN_SIGMA_MM) / spacing).astype(int) + 1)
    box = box_slices(lower, upper)
    voxels, signed = _near_design_surface(design[box], bone[box], spacing, near_mm)
    voxels += lower
    design_surface = np.argwhere(design[box] & ~ndimage.binary_erosion(design[box])) + lower
    bone_surface = np.argwhere(bone & ~ndimage.binary_erosion(bone, border_value=1))  # the array's edge is none
    to_bone = _coarse_distance(bone, spacing, voxels)
    close = to_bone < slack  # exact there, where the weight is largest: the nearest bone voxel is a surface one
    if close.any():
        to_bone[close] = cKDTree(bone_surface @ directions).query(
            voxels[close] @ directions, distance_upper_bound=2 * slack, workers=2)[0]
    within = to_bone <= reach_mm
    voxels, signed, to_bone = voxels[within], signed[within], to_bone[within]
    points, normals = _bone_surface(bone, bone_surface, design, design_surface, directions, spacing)
    if len(voxels) == 0 or len(points) < NEIGHBOURS:
        return empty
    plate, found = _plate_at(voxels, points, normals, directions)
    return {"voxels": voxels[found], "plate": plate[found], "design": signed[found], "to_bone": to_bone[found]}


def blend(design: np.ndarray, near_rim: dict[str, np.ndarray], band_mm: float) -> np.ndarray:
    """design with the voxels of plate_near_rim re-decided by the blend of width band_mm (mm, > 0; at most the
    reach_mm the voxels were found with): (X, Y, Z) bool."""
    if band_mm <= 0:
        raise ValueError(f"the blend's band must be positive, got {band_mm} mm")
    weight = np.clip(1.0 - near_rim["to_bone"] / band_mm, 0.0, 1.0)
    result = design.copy()
    result[tuple(near_rim["voxels"].T)] = weight * near_rim["plate"] + (1.0 - weight) * near_rim["design"] < 0
    return result


def continue_rim(bone: np.ndarray, design: np.ndarray, directions: np.ndarray, band_mm: float) -> np.ndarray:
    """The design (X, Y, Z bool) continued from the rim over band_mm (module docstring; 0: unchanged), on the
    bone's grid (directions: row a the world step, mm, of array axis a). Never adds bone voxels."""
    if band_mm <= 0:
        return design
    return blend(design, plate_near_rim(bone, design, directions, band_mm), band_mm)


def _near_design_surface(design: np.ndarray, bone: np.ndarray, spacing: np.ndarray,
                         near_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """(indices (V, 3) of the non-bone voxels within near_mm of the design's surface, their signed distance
    from it (V,), mm, negative inside), from the design smoothed with a Gaussian of DESIGN_SIGMA_MM (the
    design at least near_mm + 4 sigma from the array's edge)."""
    smooth = ndimage.gaussian_filter(design.astype(np.float32), DESIGN_SIGMA_MM / spacing)
    limit = special.ndtr(near_mm / DESIGN_SIGMA_MM)  # the smoothed value at near_mm inside a flat surface
    voxels = np.argwhere((smooth > 1.0 - limit) & (smooth < limit) & ~bone)
    return voxels, DESIGN_SIGMA_MM * special.ndtri(1.0 - smooth[tuple(voxels.T)].astype(np.float64))


def _coarse_distance(mask: np.ndarray, spacing: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Distance (mm) from mask (X, Y, Z bool, not empty) at voxel indices at (N, 3): a distance map on a grid
    COARSE times coarser (a cell is in the mask when one of its voxels is), read trilinearly."""
    padded = np.zeros(-(-np.array(mask.shape) // COARSE) * COARSE, dtype=bool)
    padded[tuple(slice(0, n) for n in mask.shape)] = mask
    cells = padded
    for axis in range(3):
        cells = reduce(np.logical_or, (cells[(slice(None),) * axis + (slice(j, None, COARSE),)] for j in range(COARSE)))
    distance = ndimage.distance_transform_edt(~cells, sampling=COARSE * spacing)
    return ndimage.map_coordinates(distance, ((at - (COARSE - 1) / 2) / COARSE).T, order=1, mode="nearest")


def _slack(spacing: np.ndarray) -> float:
    """How far (mm) a distance of _coarse_distance may lie from the exact one."""
    return COARSE * float(np.linalg.norm(spacing))


def _bone_surface(bone: np.ndarray, surface: np.ndarray, design: np.ndarray, design_surface: np.ndarray,
                  directions: np.ndarray, spacing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(points (N, 3) world mm, unit normals out of the bone (N, 3)): one in POINT_SHARE of the bone's surface
    voxels (indices (S, 3)) FIT_MIN_MM to FIT_MAX_MM from the design, each moved out along its normal (module
    docstring). The distance from the design is the coarse one, made exact near FIT_MIN_MM: between voxel
    centres, to the design's surface voxels (indices (D, 3); the nearest design voxel is one of them)."""
    from_design = _coarse_distance(design, spacing, surface)
    slack = _slack(spacing)
    keep = (from_design > FIT_MIN_MM - slack) & (from_design <= FIT_MAX_MM)
    surface, from_design = surface[keep], from_design[keep]
    draw = np.random.default_rng(0).permutation(len(surface))[: len(surface) // POINT_SHARE]
    surface, from_design = surface[draw], from_design[draw]
    close = from_design < FIT_MIN_MM + slack
    if close.any():
        from_design[close] = cKDTree(design_surface @ directions).query(
            surface[close] @ directions, distance_upper_bound=FIT_MIN_MM + slack, workers=2)[0]
    surface = surface[from_design > FIT_MIN_MM]
    if len(surface) == 0:
        return np.zeros((0, 3)), np.zeros((0, 3))
    gradient = _smoothed_gradient(bone, surface, spacing)
    world_gradient = np.linalg.solve(directions, gradient.T).T  # per mm: directions @ it = the array-axis gradient
    normals = -world_gradient / np.maximum(np.linalg.norm(world_gradient, axis=1, keepdims=True), 1e-12)
    half_voxel = 0.5 * np.linalg.norm(normals @ directions.T, axis=1)
    return surface @ directions + half_voxel[:, None] * normals, normals


def _smoothed_gradient(mask: np.ndarray, at: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """The gradient (N, 3; per voxel step along each array axis) of mask smoothed with a Gaussian of
    NORMAL_SIGMA_MM (truncated at 3 sigma; nothing beyond the array's edge), at voxel indices at (N, 3)."""
    reach = np.ceil(3 * NORMAL_SIGMA_MM / spacing).astype(int)
    offsets = np.stack(np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij"), axis=-1).reshape(-1, 3)
    mm = offsets * spacing
    kernel = np.exp(-(mm ** 2).sum(axis=1) / (2 * NORMAL_SIGMA_MM ** 2))
    derivative = (mm / NORMAL_SIGMA_MM ** 2 * (kernel / kernel.sum())[:, None]) * spacing  # per index step
    padded = np.pad(mask, [(r, r) for r in reach]).ravel()
    strides = np.array([(mask.shape[1] + 2 * reach[1]) * (mask.shape[2] + 2 * reach[2]), mask.shape[2] + 2 * reach[2], 1])
    flat = (at + reach) @ strides  # (N,) positions in the padded array
    gradient = np.empty((len(at), 3), dtype=np.float32)
    for start in range(0, len(at), CHUNK):
        part = slice(start, start + CHUNK)
        values = padded[flat[part, None] + offsets @ strides].astype(np.float32)  # (chunk, offsets)
        gradient[part] = values @ derivative.astype(np.float32)
    return gradient


def _plate_at(voxels: np.ndarray, points: np.ndarray, normals: np.ndarray,
              directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the plate's signed distance (V,) mm, whether all eight lattice nodes around each voxel found both
    surfaces (V,)) at voxel indices (V, 3), from the bone's surface points and normals (N, 3), world mm:
    fitted at the nodes, interpolated trilinearly."""
    lower = voxels.min(axis=0) // LATTICE
    cell = voxels // LATTICE - lower  # (V, 3): each voxel's lattice cell, from the lattice box's corner
    needed = np.zeros(cell.max(axis=0) + 2, dtype=bool)
    for corner in _CORNERS:
        needed[tuple((cell + corner).T)] = True
    nodes = np.argwhere(needed)
    plate = np.zeros(needed.shape)
    found = np.zeros(needed.shape, dtype=np.float32)
    plate[tuple(nodes.T)], node_found = _plate(cKDTree(points), points, normals, ((nodes + lower) * LATTICE) @ directions)
    found[tuple(nodes.T)] = node_found
    at = (voxels / LATTICE - lower).T
    return (ndimage.map_coordinates(plate, at, order=1),
            ndimage.map_coordinates(found, at, order=1) > 1.0 - 1e-6)


def _plate(tree: cKDTree, points: np.ndarray, normals: np.ndarray, world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(signed distance (V,) mm from the continued plate, negative inside; whether both its surfaces were found
    (V,)) at world points (V, 3), from the bone's surface points and normals (and their KD-tree)."""
    distance, nearest = tree.query(world, k=NEIGHBOURS, workers=2)
    weight = np.exp(-((distance / WEIGHT_MM) ** 2))  # (V, k)
    near_normals = normals[nearest]  # (V, k, 3)
    moments = np.matmul(near_normals.transpose(0, 2, 1) * weight[:, None, :], near_normals)  # (V, 3, 3)
    axis = np.linalg.eigh(moments)[1][:, :, 2]  # the plate's axis (either sign)
    facing = np.matmul(near_normals, axis[:, :, None])[:, :, 0]  # (V, k)
    height = ((world[:, None, :] - points[nearest]) * near_normals).sum(axis=2)  # above each tangent plane
    sides, found = [], np.ones(len(world), dtype=bool)
    for sign in (1.0, -1.0):
        side_weight = weight * (sign * facing >= SIDE_COSINE)
        total = side_weight.sum(axis=1)
        found &= total > 1e-3 * weight.sum(axis=1)
        sides.append((side_weight * height).sum(axis=1) / np.maximum(total, 1e-12))
    return np.maximum(sides[0], sides[1]), found


__all__ = ["continue_rim", "plate_near_rim", "blend"]
