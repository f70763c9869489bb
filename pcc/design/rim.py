"""Continuity with the rim: near the bone, the implant follows the bone plate continued into the hole.

The network places the implant's surfaces about a voxel off where they meet the bone (issue 30). The bone
around the hole shows where its outer and inner surfaces run; continued into the hole they say, for each
voxel near the rim, whether it lies inside the plate. Near the bone that answer is blended with the
design's own (both as signed distances in mm, negative inside):

    phi = w · plate + (1 − w) · design,   w = 1 − (distance from the bone) / band_mm, clipped to [0, 1],

where distances are between voxel centres (so w is at most 1 − one voxel / band_mm next to the bone). A voxel
within band_mm of the bone and NEAR_DESIGN_MM of the design is implant when phi < 0, where both surfaces of
the plate were found; every other voxel keeps the design's answer. The plate at a voxel: the bone's surface
points FIT_MIN_MM to FIT_MAX_MM from the design (neither the cut face, where the bone meets the implant, nor
the smoothing of the normals around it), normals out of the bone from its Gaussian-smoothed mask (sigma
1 mm), each point moved out from its voxel centre by half the length of the voxel steps projected on its
normal (the Euclidean norm of the projections: exactly half a voxel for a normal along an array axis). Of the
NEIGHBOURS nearest such points (Gaussian weights, WEIGHT_MM), those whose normal lies within 45° of the main
axis of their normals form one surface, those within 45° of its opposite the other; each surface is the
weighted mean of its points' tangent planes, and the voxel is inside when under both. The plate uses world
coordinates (tilted grids included); the distance maps use the voxel spacing as if the axes were square
(exact on the usual grids, an approximation under a gantry tilt). Measured on the development split:
docs/experiments.md, "Continuing the rim bone's plate into the hole" (tools/analysis/rim_continuation.py).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

NEAR_DESIGN_MM = 2.0
FIT_MIN_MM = 2.5
FIT_MAX_MM = 14.0
NEIGHBOURS = 200
POINT_SHARE = 3  # one surface voxel in POINT_SHARE is a point (a fixed draw)
WEIGHT_MM = 4.0
SIDE_COSINE = float(np.cos(np.radians(45.0)))
CHUNK = 5_000  # voxels fitted at a time (memory only: each (CHUNK, NEIGHBOURS, 3) array is 24 MB; same answer)


def plate_near_rim(bone: np.ndarray, design: np.ndarray, directions: np.ndarray, reach_mm: float,
                   *, near_mm: float = NEAR_DESIGN_MM) -> dict[str, np.ndarray]:
    """The two signed distances (mm, negative inside) at the voxels that rim continuation may change.

    bone, design: (X, Y, Z) bool arrays on one grid; directions (3, 3), row a the world step (mm) of array axis a;
    reach_mm: the widest band to be blended. Returns {"voxels": (V, 3) int indices of the non-bone voxels
    within reach_mm of the bone and near_mm of the design where both surfaces of the plate were found,
    "plate": (V,), "design": (V,), "to_bone": (V,) distance from the bone, mm}; no voxels when the design or
    the bone is empty, or fewer than NEIGHBOURS surface points were found.
    """
    empty = {"voxels": np.zeros((0, 3), dtype=int), "plate": np.zeros(0), "design": np.zeros(0), "to_bone": np.zeros(0)}
    if not design.any() or not bone.any():  # a distance map needs a voxel to measure from
        return empty
    spacing = np.linalg.norm(directions, axis=1)
    outside = ndimage.distance_transform_edt(~design, sampling=spacing)
    to_bone = ndimage.distance_transform_edt(~bone, sampling=spacing)
    points, normals = _bone_surface(bone, directions, spacing, (outside <= FIT_MAX_MM) & (outside > FIT_MIN_MM))
    voxels = np.argwhere(~bone & (to_bone <= reach_mm) & (outside <= near_mm))
    if len(voxels) == 0 or len(points) < NEIGHBOURS:
        return empty
    tree = cKDTree(points)
    plate, found = np.empty(len(voxels)), np.empty(len(voxels), dtype=bool)
    for start in range(0, len(voxels), CHUNK):
        part = slice(start, start + CHUNK)
        plate[part], found[part] = _plate(tree, points, normals, voxels[part] @ directions)
    voxels = voxels[found]
    index = tuple(voxels.T)
    inside = ndimage.distance_transform_edt(design, sampling=spacing)
    signed_design = np.where(design[index], -inside[index], outside[index])
    return {"voxels": voxels, "plate": plate[found], "design": signed_design, "to_bone": to_bone[index]}


def _plate(tree: cKDTree, points: np.ndarray, normals: np.ndarray, world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(signed distance (V,) mm from the continued plate, negative inside; whether both its surfaces were found
    (V,)) at world points (V, 3), from the bone's surface points and normals (and their KD-tree)."""
    distance, nearest = tree.query(world, k=NEIGHBOURS, workers=2)
    weight = np.exp(-((distance / WEIGHT_MM) ** 2))  # (V, k)
    near_normals = normals[nearest]  # (V, k, 3)
    _, vectors = np.linalg.eigh(np.einsum("vk,vki,vkj->vij", weight, near_normals, near_normals))
    facing = np.einsum("vki,vi->vk", near_normals, vectors[:, :, 2])  # against the plate's axis (either sign)
    height = np.einsum("vki,vki->vk", world[:, None, :] - points[nearest], near_normals)  # above each tangent plane
    sides, found = [], np.ones(len(world), dtype=bool)
    for sign in (1.0, -1.0):
        side_weight = weight * (sign * facing >= SIDE_COSINE)
        total = side_weight.sum(axis=1)
        found &= total > 1e-3 * weight.sum(axis=1)
        sides.append((side_weight * height).sum(axis=1) / np.maximum(total, 1e-12))
    return np.maximum(sides[0], sides[1]), found


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


def _bone_surface(bone: np.ndarray, directions: np.ndarray, spacing: np.ndarray,
                  where: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(points (N, 3) world mm, unit normals out of the bone (N, 3)) of one in POINT_SHARE of the bone's surface
    voxels in `where`, each moved out along its normal as the module docstring says (spacing: the norms of the
    direction rows, mm)."""
    surface = bone & ~ndimage.binary_erosion(bone) & where
    index = np.argwhere(surface)
    index = index[np.random.default_rng(0).permutation(len(index))[: len(index) // POINT_SHARE]]
    if len(index) == 0:
        return np.zeros((0, 3)), np.zeros((0, 3))
    smooth = ndimage.gaussian_filter(bone.astype(np.float32), 1.0 / spacing)  # sigma 1 mm
    gradient = np.stack([g[tuple(index.T)] for g in np.gradient(smooth)], axis=1)
    world_gradient = np.linalg.solve(directions, gradient.T).T  # per mm: directions @ it = the array-axis gradient
    normals = -world_gradient / np.maximum(np.linalg.norm(world_gradient, axis=1, keepdims=True), 1e-12)
    half_voxel = 0.5 * np.linalg.norm(normals @ directions.T, axis=1)
    return index @ directions + half_voxel[:, None] * normals, normals


__all__ = ["continue_rim", "plate_near_rim", "blend"]
