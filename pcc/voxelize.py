"""Point cloud → solid volume on a given grid.

Method: an implicit function from oriented points (IMLS, "implicit moving least squares"):

    f(x) = Σ_i w_i (x − p_i)·n_i / Σ_i w_i,   w_i = exp(−|x − p_i|² / h²)

over the k nearest points p_i with outward normals n_i; f < 0 inside. It is evaluated only at the
voxel centres of a narrow band around the points. Voxels beyond the band form connected regions
that lie wholly inside or outside; each takes the majority sign of the band voxels touching it.
Measured against screened Poisson in tools/bench_roundtrip.py.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from pcc.cloud import PointCloud
from pcc.errors import InputError
from pcc.volume import Volume


def points_to_volume(cloud: PointCloud, like: Volume, *, neighbours: int = 8) -> Volume:
    """The solid bounded by a closed, outward-oriented surface cloud, voxelized on like's grid.

    Args:
        cloud: points in world mm with outward normals (normals are estimated when missing).
        like: the reference volume whose grid (shape, directions, origin) the result uses.
        neighbours: points per voxel in the implicit function.

    Returns:
        A uint8 0/1 Volume on like's grid.
    """
    if len(cloud) < 4:
        raise InputError(f"the cloud has {len(cloud)} points; at least 4 are needed to bound a solid")
    normals = cloud.normals if cloud.normals is not None else estimate_outward_normals(cloud.points)
    tree = cKDTree(cloud.points)
    neighbour_mm = tree.query(cloud.points, k=min(5, len(cloud)))[0]
    spacing_mm = float(np.median(neighbour_mm[:, 1]))
    voxel_mm = float(like.spacing.min())
    # The band must close every gap between samples, or outside and inside regions would touch.
    band_voxels = int(np.ceil(max(2.0, neighbour_mm[:, -1].max() / voxel_mm + 1.0)))

    index = like.world_to_index(cloud.points)
    shape = np.asarray(like.shape)
    lower = np.clip(np.floor(index.min(axis=0)).astype(int) - band_voxels - 1, 0, shape)
    upper = np.clip(np.ceil(index.max(axis=0)).astype(int) + band_voxels + 2, 0, shape)
    result = np.zeros(like.shape, dtype=np.uint8)
    if np.any(upper <= lower):
        return like.with_array(result)
    box_shape = tuple(upper - lower)

    nearest = np.rint(index).astype(int) - lower
    keep = np.all((nearest >= 0) & (nearest < box_shape), axis=1)
    band = np.zeros(box_shape, dtype=bool)
    band[tuple(nearest[keep].T)] = True
    band = ndimage.binary_dilation(band, structure=np.ones((3, 3, 3), bool), iterations=band_voxels)

    band_index = np.argwhere(band)
    centres = like.index_to_world(band_index + lower)
    k = min(neighbours, len(cloud))
    distances, nearest_ids = tree.query(centres, k=k, workers=-1)
    distances, nearest_ids = distances.reshape(len(centres), k), nearest_ids.reshape(len(centres), k)
    h = max(spacing_mm, voxel_mm)
    weights = np.exp(-((distances / h) ** 2)) + 1e-12
    offsets = centres[:, None, :] - cloud.points[nearest_ids]
    signed = np.einsum("vkc,vkc->vk", offsets, normals[nearest_ids])
    inside_band = (weights * signed).sum(axis=1) < 0

    solid = np.zeros(box_shape, dtype=bool)
    solid[tuple(band_index.T)] = inside_band
    solid |= _inside_regions_beyond_band(band, solid)
    result[tuple(slice(lo, hi) for lo, hi in zip(lower, upper))] = solid
    return like.with_array(result)


def _inside_regions_beyond_band(band: np.ndarray, inside_band: np.ndarray) -> np.ndarray:
    """Voxels outside the band whose connected region touches mostly inside band voxels."""
    labels, count = ndimage.label(~band)
    if count == 0:
        return np.zeros_like(band)
    # Each band voxel next to a region sees that region's label through a 3×3×3 maximum filter.
    neighbour_label = ndimage.maximum_filter(labels, size=3)
    touching = band & (neighbour_label > 0)
    votes_inside = np.bincount(neighbour_label[touching & inside_band], minlength=count + 1)
    votes_all = np.bincount(neighbour_label[touching], minlength=count + 1)
    region_inside = votes_inside * 2 > votes_all
    region_inside[0] = False
    return region_inside[labels]


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
