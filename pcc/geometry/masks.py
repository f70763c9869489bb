"""Boxes, connected components and point neighbourhoods of 3-D boolean masks (array index order (X, Y, Z)).

One implementation of each, used by the pipeline's clean-up, the printable mesh, segmentation,
metrics and the training cache. Components are labelled within the mask's bounding box only: the
components are the same, and labelling is the costly step on a 512×512×Z volume.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

if TYPE_CHECKING:
    from pcc.volume import Volume


def bounding_box(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive-exclusive index bounds (lower, upper), each (3,) int, of the nonzero voxels of a 3-D mask.

    Raises:
        ValueError: the mask has no nonzero voxel (callers check `mask.any()` first).
    """
    lower, upper = [], []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        nonzero = np.flatnonzero(np.asarray(mask).any(axis=other))
        if nonzero.size == 0:
            raise ValueError("the mask is empty: it has no bounding box")
        lower.append(int(nonzero[0]))
        upper.append(int(nonzero[-1]) + 1)
    return np.array(lower), np.array(upper)


def widened_box(mask: np.ndarray, margin_voxels) -> tuple[np.ndarray, np.ndarray]:
    """bounding_box(mask) grown by margin_voxels (a number or one per axis), clipped to the array."""
    lower, upper = bounding_box(mask)
    margin = np.broadcast_to(np.asarray(margin_voxels, dtype=int), (3,))
    return np.maximum(lower - margin, 0), np.minimum(upper + margin, mask.shape)


def box_slices(lower, upper) -> tuple[slice, slice, slice]:
    """The index expression of the box [lower, upper)."""
    return tuple(slice(int(lo), int(hi)) for lo, hi in zip(lower, upper))  # type: ignore[return-value]


def _structure(connectivity: int) -> np.ndarray:
    """1: face (6-) connected; 3: face, edge or corner (26-) connected."""
    if connectivity not in (1, 3):
        raise ValueError(f"connectivity must be 1 (6-connected) or 3 (26-connected), got {connectivity}")
    return ndimage.generate_binary_structure(3, connectivity)


def label_components(mask: np.ndarray, *, connectivity: int) -> tuple[np.ndarray, np.ndarray, tuple[slice, ...]]:
    """(labels, sizes, box) of a non-empty bool mask's components, labelled within its bounding box:
    labels of mask[box] (0: background), sizes[k] the voxels of label k (sizes[0] = 0)."""
    box = box_slices(*bounding_box(mask))
    labels, _ = ndimage.label(mask[box], structure=_structure(connectivity))
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels, sizes, box


def keep_large_components(mask: np.ndarray, *, keep_fraction: float, connectivity: int) -> np.ndarray:
    """The components of a bool mask with at least keep_fraction of the largest one's voxels
    (keep_fraction 1.0: the largest alone; of equal largest ones, the first in label order)."""
    if not mask.any():
        return mask.copy()
    labels, sizes, box = label_components(mask, connectivity=connectivity)
    if len(sizes) <= 2:  # one component
        return mask.copy()
    if keep_fraction >= 1.0:
        kept = labels == int(np.argmax(sizes))
    else:
        keep = sizes >= keep_fraction * sizes.max()
        keep[0] = False
        kept = keep[labels]
    out = np.zeros(mask.shape, bool)
    out[box] = kept
    return out


def largest_component(mask: np.ndarray, *, connectivity: int) -> np.ndarray:
    """The largest component of a bool mask (connectivity 1: face-connected, so its surface is one
    piece; 3: 26-connected)."""
    return keep_large_components(mask, keep_fraction=1.0, connectivity=connectivity)


def radius_voxels(radius_mm: float, grid) -> int:
    """A radius in mm as a whole number of the grid's (a Volume's) finest voxels (at least 1)."""
    return max(1, int(round(radius_mm / float(grid.spacing.min()))))


def _check_radius(radius: int) -> None:
    """Repeated operations need radius ≥ 1 (scipy repeats an operation until nothing changes for iterations < 1)."""
    if radius < 1:
        raise ValueError(f"the ball's radius must be at least 1 voxel, got {radius}")


def diamond_closing(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary closing of a bool mask by the 6-connected ball (a diamond) of `radius` voxels.

    A diamond of radius r is r face-neighbour crosses added together, so r dilations by the cross then r
    erosions give the same voxels as one closing by the diamond, at a third of the cost for r = 3."""
    _check_radius(radius)
    return ndimage.binary_closing(mask, structure=_structure(1), iterations=radius)


def drop_slivers(mask: np.ndarray, radius: int) -> np.ndarray:
    """The voxels of mask within 2·radius voxels of its opening by a 6-connected ball (a diamond) of `radius`
    voxels: parts thinner than the ball are kept only next to the thicker body (where an implant thins out at
    the rim). The diamond's opening and dilations are done as repeated ones by the face-neighbour cross."""
    _check_radius(radius)
    body = ndimage.binary_opening(mask, structure=_structure(1), iterations=radius)
    return mask & ndimage.binary_dilation(body, structure=_structure(1), iterations=2 * radius)


def drop_specks(mask: np.ndarray, min_voxels: int) -> tuple[np.ndarray, int, int]:
    """(mask without its face-connected parts of fewer than min_voxels voxels, parts dropped, voxels dropped)."""
    if not mask.any():
        return mask, 0, 0
    labels, sizes, box = label_components(mask, connectivity=1)
    small = (sizes < min_voxels) & (sizes > 0)
    if not small.any():
        return mask, 0, 0
    out = mask.copy()
    out[box] &= ~small[labels]
    return out, int(small.sum()), int(sizes[small].sum())


def drop_fragments(mask: np.ndarray) -> np.ndarray:
    """Keep the 26-connected components with at least a tenth of the largest one's voxels."""
    return keep_large_components(mask, keep_fraction=0.1, connectivity=3)


def near_mask(points: np.ndarray, grid: Volume, distance_mm: float) -> np.ndarray:
    """(N,) bool: whether each world-mm point (N, 3) lies within distance_mm (> 0) of the centre of a nonzero
    voxel of grid (voxels off the grid are not nonzero). The same answer as a search among all nonzero
    voxel centres, up to rounding of distances equal to distance_mm.

    On a grid with orthogonal axes, a point's nearest voxel centre of all is that of the voxel whose cell
    holds it, and its nearest nonzero voxel centre is a boundary voxel (one with a zero face neighbour)
    unless the point lies in that voxel's own cell (else the neighbour towards the point would be nearer).
    So a point in a nonzero voxel's cell is decided by the distance to that centre, and the others by a
    search among the boundary voxels of the points' box widened by distance_mm (voxels on the box's faces
    count as boundary: their outer neighbours are not looked at); on a sheared grid, among all its nonzero
    voxels. The search stops at 2·distance_mm (any bound above distance_mm gives the same answer).
    """
    if not distance_mm > 0:
        raise ValueError(f"distance_mm must be positive, got {distance_mm}")
    points = np.asarray(points, dtype=np.float64)
    near = np.zeros(len(points), dtype=bool)
    if not len(points):
        return near
    lower, upper = grid.index_box(points.min(axis=0) - distance_mm, points.max(axis=0) + distance_mm)
    if np.any(upper <= lower):
        return near
    box = np.asarray(grid.array)[box_slices(lower, upper)] != 0
    gram = grid.directions @ grid.directions.T
    if np.allclose(gram, np.diag(np.diag(gram)), rtol=0.0, atol=1e-9 * float(np.diag(gram).max())):
        index = np.rint(grid.world_to_index(points)).astype(np.int64)
        in_cell = np.all((index >= lower) & (index < upper), axis=1)
        in_cell[in_cell] = box[tuple((index[in_cell] - lower).T)]
        offset = points[in_cell] - grid.index_to_world(index[in_cell])
        near[in_cell] = np.einsum("ij,ij->i", offset, offset) <= distance_mm * distance_mm
        interior = ndimage.binary_erosion(box, structure=_structure(1))  # all six face neighbours in the box's mask
        candidates = np.argwhere(box & ~interior) + lower
        searched = ~in_cell
    else:
        candidates, searched = np.argwhere(box) + lower, np.ones(len(points), dtype=bool)
    if len(candidates) and searched.any():
        distance, _ = cKDTree(grid.index_to_world(candidates)).query(points[searched], distance_upper_bound=2 * distance_mm)
        near[searched] = distance <= distance_mm
    return near


__all__ = ["bounding_box", "box_slices", "diamond_closing", "drop_fragments", "drop_slivers",
           "keep_large_components", "label_components", "largest_component", "near_mask", "radius_voxels", "widened_box"]
