"""Local thickness of a voxel solid (mm): the diameter of the largest inscribed ball holding each voxel.

    from pcc.outputs.thickness import local_thickness, solid_thickness_mm
    values = solid_thickness_mm(solid, implant.spacing)   # (K,) mm, one per voxel of the solid
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from pcc.geometry.masks import bounding_box, box_slices


def solid_thickness_mm(solid: np.ndarray, spacing: Sequence[float] | np.ndarray) -> np.ndarray:
    """(K,) local thickness (mm, local_thickness) of the K voxels of a bool (X, Y, Z) solid, in the order of
    np.nonzero(solid); spacing: (3,) mm per voxel along X, Y, Z."""
    crop = solid[box_slices(*bounding_box(solid))]  # the same voxels in the same order
    return local_thickness(crop, spacing)[crop]


def local_thickness(mask: np.ndarray, spacing: Sequence[float] | np.ndarray, *, batch: int = 4_000_000) -> np.ndarray:
    """Local thickness (mm) of each voxel of an (X, Y, Z) mask with `spacing` mm per axis; 0 outside.

    Each voxel p is the centre of an inscribed ball of radius r(p) = d(p) − s/4, d being the
    distance to the nearest outside voxel centre and s the mean voxel size (so a slab of n voxels
    reads n·s ± s/2). A voxel's thickness is 2·max r(p) over the balls that contain it, computed
    exactly: a ball that lies inside a neighbour's ball (d(p) + |p − q| ≤ d(q)) can raise no voxel's
    figure and is skipped; the others are painted smallest first, so the largest ball covering a voxel
    writes it last. On a grid so anisotropic that r(p) ≤ 0 (the finest spacing below s/4), such a
    voxel reads 0 unless another ball covers it. batch: about how many (centre, offset) pairs are
    painted at once (at least one ball's).
    """
    mask = np.asarray(mask, dtype=bool)
    spacing = np.asarray(spacing, dtype=np.float64)
    s = float(np.cbrt(np.prod(spacing)))
    lower, upper = bounding_box(mask)
    box = box_slices(lower, upper)
    crop = np.pad(mask[box], 1)  # a rim of outside voxels: no ball reaches past it
    distance = ndimage.distance_transform_edt(crop, sampling=spacing)
    centre = crop & (distance > s / 4.0)  # a ball of radius ≤ 0 holds no voxel
    inner = (slice(1, -1),) * 3
    for step in itertools.product((-1, 0, 1), repeat=3):
        if not any(step):
            continue
        neighbour = tuple(slice(1 + a, n - 1 + a) for a, n in zip(step, crop.shape))
        contained = distance[inner] + float(np.linalg.norm(np.multiply(step, spacing))) <= distance[neighbour] + 1e-9
        centre[inner] &= ~contained
    radius = distance[centre] - s / 4.0
    order = np.argsort(radius, kind="stable")
    radius = radius[order]
    out = np.zeros(mask.shape, np.float32)
    if len(radius) == 0:
        return out
    flat_centre = np.ravel_multi_index(np.nonzero(centre), crop.shape)[order]
    # Offsets (flat, C order) of every voxel within the largest radius, nearest first: each ball takes a prefix.
    reach = np.floor(radius[-1] / spacing + 1e-9).astype(int)
    grid = np.stack(np.meshgrid(*(np.arange(-k, k + 1) for k in reach), indexing="ij"), axis=-1).reshape(-1, 3)
    length = np.sqrt(((grid * spacing) ** 2).sum(axis=1))
    nearest_first = np.argsort(length, kind="stable")
    length = length[nearest_first]
    offsets = (grid @ np.array([crop.shape[1] * crop.shape[2], crop.shape[2], 1]))[nearest_first]
    result = np.zeros(crop.size, np.float32)
    values, starts = np.unique(radius, return_index=True)
    for value, first, last in zip(values, starts, np.append(starts[1:], len(radius))):
        ball = offsets[: np.searchsorted(length, value + 1e-9, side="right")]
        per_batch = max(1, batch // len(ball))
        for chunk in range(first, last, per_batch):
            result[(flat_centre[chunk : min(chunk + per_batch, last), None] + ball).ravel()] = 2 * value
    out[box] = result.reshape(crop.shape)[inner]  # every ball lies inside (r < d): nothing painted outside
    return out
