"""Point cloud → solid volume on a given grid.

Method: an implicit function from oriented points (IMLS, "implicit moving least squares"),

    f(x) = Σ_i w_i (x − p_i)·n_i / Σ_i w_i,   w_i = exp(−|x − p_i|² / h²) for |x − p_i| < R, else 0 (h = R/3),

where p_i are the points, n_i their outward normals; f < 0 inside. The kernel has compact support,
so f is *splatted*: each point adds its terms to the voxel centres within R of it (no per-voxel
nearest-neighbour search). The voxels that receive any weight form a band around the surface.
Voxels beyond the band form connected regions that lie wholly inside or wholly outside; each region
takes the majority sign of the band voxels that touch it.

Cost is O(points × voxels per kernel ball) for the band plus one connected-component labelling of
the cloud's bounding box: ~1–2 s for an implant, a few seconds for a 512×512×Z skull on 2 CPU cores
(tools/benchmarks/bench_roundtrip.py measures it).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from pcc.errors import InputError
from pcc.geometry.cloud import PointCloud
from pcc.geometry.masks import box_slices
from pcc.volume import Volume

# (point, voxel) pairs per splatting batch. Each batch's temporary arrays (about 30 bytes per pair) stay
# below glibc malloc's mmap threshold (at most 32 MiB), so later batches reuse the heap's pages; at
# 8,000,000 pairs the largest were fresh pages every batch, and on the example case the splat took about
# twice as long. Batching changes only the order of the float64 additions.
_CONTRIBUTIONS_PER_BATCH = 1_000_000
# A region beyond the band whose minority share of votes exceeds this is treated as leaking.
_MIXED = 0.02


def points_to_volume(cloud: PointCloud, like: Volume, *, neighbours: int = 8) -> Volume:
    """The solid bounded by a closed, outward-oriented surface cloud, voxelized on like's grid.

    Args:
        cloud: points in world mm with outward normals (normals are estimated when missing).
        like: the reference volume whose grid (shape, directions, origin) the result uses.
        neighbours: about how many points the kernel of each surface voxel reaches. The kernel
            radius R is the 90th percentile of the distance from a point to its `neighbours`-th
            nearest neighbour (at least 1.5 voxels), so it adapts to the cloud's density.

    Returns:
        A uint8 0/1 Volume on like's grid.
    """
    solid, lower = points_to_solid_box(cloud, like, neighbours=neighbours)
    result = np.zeros(like.shape, dtype=np.uint8, order="F")  # NRRD's order: written without a copy
    result[box_slices(lower, lower + solid.shape)] = solid
    return like.with_array(result)


def points_to_solid_box(cloud: PointCloud, like: Volume, *, neighbours: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """points_to_volume's solid on the part of like's grid that the cloud's kernels reach, without a
    grid-sized array: (solid, lower), solid a bool (X, Y, Z) array of that box, lower its first voxel's
    (3,) int index. Every solid voxel of points_to_volume lies in the box; the box may be empty."""
    if len(cloud) < 4:
        raise InputError(f"the cloud has {len(cloud)} points; at least 4 are needed to bound a solid")
    if not np.all(np.isfinite(cloud.points)):
        raise InputError("the cloud has NaN or infinite coordinates; remove them first")
    points = np.asarray(cloud.points, dtype=np.float64)
    normals = cloud.normals if cloud.normals is not None else estimate_outward_normals(points)
    normals = np.asarray(normals, dtype=np.float64)
    normals = normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)

    radius = _kernel_radius(points, neighbours, min_mm=1.5 * float(like.spacing.max()))
    h = radius / 3.0  # measured: R/3 beats R/2 and R/4 at 1k–16k points (tools/benchmarks/bench_roundtrip.py)

    reach = _index_reach(like.directions, radius)
    index = like.world_to_index(points)
    shape = np.asarray(like.shape)
    # Points beyond the grid (by more than the kernel) cannot change it; the splatting box holds every
    # ball of the rest, so no bounds check is needed per contribution.
    on_grid = np.all((index > -reach - 0.5) & (index < shape + reach - 0.5), axis=1)
    if not on_grid.any():
        return np.zeros((0, 0, 0), dtype=bool), np.zeros(3, dtype=int)
    points, normals, index = points[on_grid], normals[on_grid], index[on_grid]
    # Each point's nearest voxel, rounded once: rounding after the shift into the box could differ by one at or
    # within float rounding of a half (numpy rounds halves to even; surface samples of flat voxel faces lie on
    # halves), and a ball then reaches past the box.
    nearest = np.rint(index).astype(np.int64)
    lower = nearest.min(axis=0) - reach
    upper = nearest.max(axis=0) + reach + 1
    box_shape = tuple(int(s) for s in upper - lower)

    value, weight = _splat(points, normals, index - lower, nearest - lower, like.directions, box_shape, radius, h)
    band = weight > 0
    solid = band & (value < 0)
    solid |= _inside_regions_beyond_band(band, solid, like.spacing)
    # The part of the splatting box that lies on the grid (they overlap: every point left is near the grid).
    grid_lower, grid_upper = np.maximum(lower, 0), np.minimum(upper, shape)
    return solid[box_slices(grid_lower - lower, grid_upper - lower)], grid_lower


def _kernel_radius(points: np.ndarray, neighbours: int, *, min_mm: float) -> float:
    """90th percentile of the distance to the neighbours-th nearest point (on ≤ 20000 points), ≥ min_mm."""
    k = int(min(max(neighbours, 1), len(points) - 1))
    probe = points
    if len(points) > 20000:
        probe = points[np.random.default_rng(0).choice(len(points), 20000, replace=False)]
    kth_mm = cKDTree(points).query(probe, k=k + 1)[0][:, -1]
    return max(float(np.quantile(kth_mm, 0.9)), min_mm)


def _index_reach(directions: np.ndarray, radius_mm: float) -> np.ndarray:
    """(3,) index-space half extents (+1) of a world ball of radius_mm; directions: the grid's (3, 3) direction
    rows in mm (row a of inv(Dᵀ) maps mm to index a)."""
    return np.ceil(radius_mm * np.linalg.norm(np.linalg.inv(directions.T), axis=1)).astype(int) + 1


def _ball_offsets(directions: np.ndarray, radius_mm: float) -> np.ndarray:
    """(K, 3) integer index offsets, around a point's nearest voxel, of every voxel whose centre can lie
    within radius_mm of the point (radius_mm plus half a voxel diagonal: the point may sit anywhere in
    its voxel). directions: the grid's (3, 3) direction rows in mm."""
    reach = _index_reach(directions, radius_mm)
    grids = np.meshgrid(*(np.arange(-r, r + 1) for r in reach), indexing="ij")
    offsets = np.stack([g.ravel() for g in grids], axis=1)
    corners = np.stack(np.meshgrid(*[[-0.5, 0.5]] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    half_diagonal = float(np.linalg.norm(corners @ directions, axis=1).max())
    return offsets[np.linalg.norm(offsets @ directions, axis=1) <= radius_mm + half_diagonal]


def _splat(
    points: np.ndarray,
    normals: np.ndarray,
    index: np.ndarray,
    nearest: np.ndarray,
    directions: np.ndarray,
    box_shape: tuple[int, int, int],
    radius: float,
    h: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Σ w (x−p)·n and Σ w at every voxel of the box (index: the points' continuous box indices (N, 3);
    nearest: their nearest voxels (N, 3) int, each at least the ball's reach inside the box)."""
    offsets = _ball_offsets(directions, radius)
    offsets_mm = (offsets @ directions).astype(np.float32)
    strides = np.array([box_shape[1] * box_shape[2], box_shape[2], 1], dtype=np.int64)
    offsets_flat = offsets @ strides

    # Sort points along the slowest axis so each batch touches a short run of the flat box.
    nearest_flat = nearest @ strides
    order = np.argsort(nearest_flat, kind="stable")
    size = int(np.prod(box_shape))
    value = np.zeros(size, dtype=np.float64)
    weight = np.zeros(size, dtype=np.float64)
    offsets_norm2 = np.einsum("vc,vc->v", offsets_mm, offsets_mm)
    batch = max(1, _CONTRIBUTIONS_PER_BATCH // len(offsets))
    for start in range(0, len(order), batch):
        ids = order[start : start + batch]
        # (voxel centre − point) in mm = base + offset, base = (nearest − index) @ D; the squared
        # distance and the signed distance along the normal expand into small matrix products.
        base = ((nearest[ids] - index[ids]) @ directions).astype(np.float32)
        normal = normals[ids].astype(np.float32)
        distance2 = base @ (2.0 * offsets_mm.T)
        distance2 += np.einsum("pc,pc->p", base, base)[:, None]
        distance2 += offsets_norm2[None, :]
        # Dense (point, offset) pairs, weight 0 beyond the radius: adding exact zeros leaves every sum as
        # it is, and it is cheaper than selecting the pairs within the radius.
        w = np.exp(distance2 * np.float32(-1.0 / (h * h)))
        w[distance2 >= radius * radius] = 0.0
        signed = normal @ offsets_mm.T
        signed += np.einsum("pc,pc->p", base, normal)[:, None]
        signed *= w
        centres = nearest_flat[ids]
        lo, hi = int(centres.min() + offsets_flat.min()), int(centres.max() + offsets_flat.max()) + 1
        flat = (centres - lo)[:, None] + offsets_flat[None, :]
        weight[lo:hi] += np.bincount(flat.ravel(), weights=w.ravel(), minlength=hi - lo)
        value[lo:hi] += np.bincount(flat.ravel(), weights=signed.ravel(), minlength=hi - lo)
    return value.reshape(box_shape), weight.reshape(box_shape)


def _inside_regions_beyond_band(band: np.ndarray, inside_band: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Inside voxels among those outside the band.

    Each 6-connected region beyond the band takes the majority sign of the band voxels that touch it.
    A region whose votes are mixed (more than _MIXED of the minority sign) leaks through a gap in the
    band, e.g. where the cloud is sparse; its voxels take the sign of their nearest band voxel instead.
    """
    labels, count = ndimage.label(~band)
    if count == 0:
        return np.zeros_like(band)
    votes_inside = np.zeros(count + 1, dtype=np.int64)
    votes_all = np.zeros(count + 1, dtype=np.int64)
    # Every (band voxel, region voxel) face-neighbour pair is one vote for that region.
    for axis in range(3):
        for a, b in ((slice(None, -1), slice(1, None)), (slice(1, None), slice(None, -1))):
            here = [slice(None)] * 3
            there = [slice(None)] * 3
            here[axis], there[axis] = a, b
            region = labels[tuple(there)]
            touching = band[tuple(here)] & (region > 0)
            votes_all += np.bincount(region[touching], minlength=count + 1)
            votes_inside += np.bincount(region[touching & inside_band[tuple(here)]], minlength=count + 1)
    share = votes_inside / np.maximum(votes_all, 1)
    region_inside = share > 0.5
    region_inside[0] = False
    result = region_inside[labels]

    mixed = np.flatnonzero((share > _MIXED) & (share < 1.0 - _MIXED))
    mixed = mixed[mixed > 0]
    boxes = ndimage.find_objects(labels) if len(mixed) else []
    for label in mixed:
        box = tuple(
            slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(boxes[label - 1], labels.shape)
        )
        voxels = labels[box] == label
        nearest = ndimage.distance_transform_edt(
            ~band[box], sampling=spacing, return_distances=False, return_indices=True
        )
        result[box][voxels] = inside_band[box][tuple(nearest[:, voxels])]
    return result


def estimate_outward_normals(points: np.ndarray, *, neighbours: int = 16) -> np.ndarray:
    """(N, 3) unit normals of an unoriented closed surface cloud, oriented consistently outward."""
    import open3d

    cloud = open3d.geometry.PointCloud(open3d.utility.Vector3dVector(points))
    cloud.estimate_normals(open3d.geometry.KDTreeSearchParamKNN(neighbours))
    cloud.orient_normals_consistent_tangent_plane(neighbours)
    normals = np.asarray(cloud.normals).copy()
    if np.einsum("ij,ij->", points - points.mean(axis=0), normals) < 0:
        normals = -normals
    return normals
