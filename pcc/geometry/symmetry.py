"""The skull's own mirror image as a prior for the missing bone.

A skull is nearly symmetric about its mid-sagittal plane, so the bone opposite a one-sided defect,
mirrored, is a first guess of the missing bone (the clinical mirroring technique). Real skulls are
asymmetric by millimetres, so the mirror is aligned twice:

1. whole skull: the surface cloud is reflected through a plane through its bounding-box centre (two
   guesses: across world x, the L of LPS, and across the principal axis nearest to x, for a head
   turned in the scanner) and registered rigidly to the original by open3d's point-to-plane ICP with
   a Tukey kernel, coarse to fine, so that the hole (and its mirror image) does not pull it; the
   guess whose fit pairs up more of the skull is kept;
2. around the defect: the same ICP on the bone within a few defect radii of the defect's centre
   only (its rim), so the mirror fits the bone that surrounds the hole.

The result is a 4×4 world-mm transform `mirror` (a reflection followed by a rigid motion, det −1):
`apply(mirror, p)` is the mirror image of skull point p placed where the opposite side's bone would
be. Points are (N, 3) world mm; normals (N, 3) unit vectors in the same axes.

The aligned mirror goes into the local network as a second input set (pcc.models), which learns
where to trust it (one-sided defects) and where not (midline, bilateral, asymmetric skulls).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Coarse-to-fine ICP of the whole mirrored skull: (largest correspondence distance mm, Tukey k mm).
WHOLE_SKULL_STEPS = ((12.0, 6.0), (6.0, 3.0), (3.0, 1.5))
# Local ICP around the defect: bone within LOCAL_RADII defect radii of its centre, then these steps.
LOCAL_RADII = 2.0
LOCAL_STEPS = ((4.0, 2.0), (2.0, 1.0))
ICP_ITERATIONS = 30
TRANSFORM_DECIMALS = 6
# Whole-skull alignment uses a subset of the surface points (deterministic, every k-th point).
WHOLE_SKULL_POINTS = 8192


@dataclass(frozen=True)
class MirrorFit:
    """A mirror transform and how well it fits.

    transform: (4, 4) world mm → world mm, acting on column vectors (x, y, z, 1); det of its 3×3 is −1.
    inlier_rmse_mm: root-mean-square distance of the matched pairs of the last ICP step.
    fitness: share of the mirrored points that found a partner within the last step's distance.
    """

    transform: np.ndarray
    inlier_rmse_mm: float
    fitness: float


def apply(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 3) world-mm points moved by a (4, 4) transform."""
    return points @ transform[:3, :3].T + transform[:3, 3]


def apply_to_normals(transform: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """(N, 3) unit normals under a (4, 4) transform whose 3×3 part is orthogonal (a mirror or a rotation).

    A reflection turns a surface's orientation over, but a normal that points out of the bone still
    points out of the mirrored bone: the orthogonal part alone maps it."""
    return normals @ transform[:3, :3].T


def reflection(normal: np.ndarray, point: np.ndarray) -> np.ndarray:
    """(4, 4) reflection through the plane with unit `normal` that passes through `point` (world mm)."""
    normal = np.asarray(normal, float) / np.linalg.norm(normal)
    matrix = np.eye(4)
    matrix[:3, :3] -= 2.0 * np.outer(normal, normal)
    matrix[:3, 3] = 2.0 * float(normal @ np.asarray(point, float)) * normal
    return matrix


def plane_guesses(points: np.ndarray) -> list[np.ndarray]:
    """Starting reflections for the whole-skull fit: through the bounding-box centre, across world x (the
    patient's left-right, right for a head placed straight in the scanner) and across the principal axis
    of the points nearest to x (right for a head turned or tilted in the scanner)."""
    centre = (points.min(axis=0) + points.max(axis=0)) / 2.0
    _, _, axes = np.linalg.svd(points - points.mean(axis=0), full_matrices=False)
    lateral = axes[np.argmax(np.abs(axes[:, 0]))]
    return [reflection(np.array([1.0, 0.0, 0.0]), centre), reflection(lateral * np.sign(lateral[0]), centre)]


def _cloud(points: np.ndarray, normals: np.ndarray):
    import open3d as o3d

    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.ascontiguousarray(points, dtype=np.float64)))
    cloud.normals = o3d.utility.Vector3dVector(np.ascontiguousarray(normals, dtype=np.float64))
    return cloud


def _icp(source_points: np.ndarray, source_normals: np.ndarray, target_points: np.ndarray, target_normals: np.ndarray,
         start: np.ndarray, steps: tuple[tuple[float, float], ...]) -> MirrorFit:
    """Rigid point-to-plane ICP (Tukey kernel) of world-mm source points, pre-moved by `start`, onto the target.

    `start` may be a reflection; the rigid correction found by ICP is composed after it."""
    import open3d as o3d

    registration = o3d.pipelines.registration
    source = _cloud(apply(start, source_points), apply_to_normals(start, source_normals))
    target = _cloud(target_points, target_normals)
    rigid = np.eye(4)
    result = None
    for distance, tukey in steps:
        estimation = registration.TransformationEstimationPointToPlane(registration.TukeyLoss(k=tukey))
        result = registration.registration_icp(
            source, target, distance, rigid, estimation,
            registration.ICPConvergenceCriteria(max_iteration=ICP_ITERATIONS))
        rigid = np.asarray(result.transformation)
    assert result is not None
    # open3d sums its ICP equations over threads in varying order (runs differ by ~1e-14); rounding to
    # 1e-6 (a micrometre, a microradian) makes the result the same on every run.
    return MirrorFit(np.round(rigid @ start, TRANSFORM_DECIMALS), float(result.inlier_rmse), float(result.fitness))


def whole_skull_mirror(points: np.ndarray, normals: np.ndarray) -> MirrorFit:
    """The skull's mirror image registered to the skull (module docstring, step 1).

    points, normals: (N, 3) surface samples of the (defective) skull, world mm and unit outward normals.
    """
    step = max(1, len(points) // WHOLE_SKULL_POINTS)
    points, normals = points[::step], normals[::step]
    fits = [_icp(points, normals, points, normals, start, WHOLE_SKULL_STEPS) for start in plane_guesses(points)]
    return max(fits, key=lambda fit: fit.fitness)  # the plane that pairs up more of the skull


def local_mirror(points: np.ndarray, normals: np.ndarray, whole: MirrorFit, centre: np.ndarray, radius_mm: float) -> MirrorFit:
    """The whole-skull mirror re-aligned on the bone within LOCAL_RADII·radius_mm of `centre` (step 2).

    centre: (3,) world mm, the defect's centre; radius_mm: the defect's radius. When too few points
    lie there (under 200 on either side), the whole-skull fit is returned unchanged.
    """
    reach = LOCAL_RADII * radius_mm
    near = np.linalg.norm(points - centre, axis=1) < reach
    mirrored_near = np.linalg.norm(apply(whole.transform, points) - centre, axis=1) < reach
    if near.sum() < 200 or mirrored_near.sum() < 200:
        return whole
    return _icp(points[mirrored_near], normals[mirrored_near], points[near], normals[near], whole.transform, LOCAL_STEPS)


def mirrored_points(points: np.ndarray, normals: np.ndarray, fit: MirrorFit) -> tuple[np.ndarray, np.ndarray]:
    """The skull's surface points and normals mirrored by a fit: (N, 3) world mm, (N, 3) unit normals."""
    return apply(fit.transform, points), apply_to_normals(fit.transform, normals)


def mirror_implant(defective, fit: MirrorFit, centre: np.ndarray, reach_mm: float) -> np.ndarray:
    """The prior alone as an implant: (X, Y, Z) bool on the defective skull's grid.

    The voxels within reach_mm of `centre` (world mm, the defect's centre) that are bone in the skull's
    mirror image (nearest-voxel resampling through `fit`) and not bone in the skull; parts thinner than
    2 mm (the rim's misalignment) and small fragments are dropped. defective: a binary pcc.volume.Volume.
    """
    from scipy import ndimage

    from pcc.geometry.masks import drop_fragments, drop_slivers, radius_voxels

    skull = defective.mask()
    lower, upper = defective.index_box(centre - reach_mm, centre + reach_mm)
    if np.any(upper <= lower):
        return np.zeros_like(skull)
    directions = defective.directions
    inverse = np.linalg.inv(fit.transform)
    rotation, translation = inverse[:3, :3], inverse[:3, 3]
    to_index = np.linalg.inv(directions).T  # world offset (column) → index (column)
    matrix = to_index @ rotation @ directions.T
    offset = matrix @ lower + to_index @ (rotation @ defective.origin + translation - defective.origin)
    shape = tuple(int(s) for s in upper - lower)
    mirrored = ndimage.affine_transform(skull.astype(np.uint8), matrix, offset, output_shape=shape, order=0) > 0
    box = tuple(slice(lo, hi) for lo, hi in zip(lower, upper))
    # world = origin + i·d0 + j·d1 + k·d2: the squared distance from centre summed axis by axis, broadcast
    steps = [((np.arange(lo, hi)[:, None] * directions[a]) + (defective.origin - centre if a == 0 else 0.0)).astype(np.float32)
             for a, (lo, hi) in enumerate(zip(lower, upper))]
    squared = sum((steps[0][:, None, None, m] + steps[1][None, :, None, m] + steps[2][None, None, :, m]) ** 2 for m in range(3))
    within = squared <= reach_mm**2
    candidate = mirrored & within & ~skull[box]
    candidate = drop_fragments(drop_slivers(candidate, radius_voxels(1.0, defective)))
    implant = np.zeros_like(skull)
    implant[box] = candidate
    return implant
