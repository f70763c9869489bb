"""Challenge metrics on binary implant masks, as the AutoImplant organizers define them.

All functions take boolean (x, y, z) arrays on one grid and ``spacing`` = mm per array axis
(``Volume.spacing``). Distances are in mm.

- DSC: 2|P∩G| / (|P| + |G|); 1.0 when both masks are empty.
- bDSC: every voxel of P and G farther than ``distance_mm`` (10 mm) from the defective skull is zeroed
  (Euclidean distance transform of ~defective with the voxel spacing), then DSC.
- Surfaces: mask XOR its 6-connected erosion (``scipy.ndimage.binary_erosion``, outside the array
  counts as background, so mask voxels on the array border are surface voxels).
- HD: max of the two directed surface-to-surface distances (distance transform of the other surface).
  HD95: 95th percentile (numpy's default linear interpolation) of both directions' distances pooled.
  Both are inf when exactly one mask is empty and 0 when both are.

Speed: everything is computed on the bounding box of P ∪ G with a margin (1 voxel for the surfaces,
``distance_mm`` + 1 voxel for bDSC so that every defective-skull voxel within reach lies inside the box).
The results are identical to the uncropped computation (tests check this on volumes touching the border).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

BOUNDARY_MM = 10.0
_SIX = ndimage.generate_binary_structure(3, 1)

__all__ = ["CaseScores", "boundary_dice", "dice", "hausdorff", "score_case", "surface", "surface_distances"]


@dataclass
class CaseScores:
    """Scores of one case: DSC and bDSC in [0, 1]; HD and HD95 in mm (inf when one mask is empty)."""

    dsc: float
    bdsc: float
    hd: float
    hd95: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice similarity coefficient 2|P∩G| / (|P|+|G|); 1.0 when both are empty."""
    pred, gt = _bool(pred), _bool(gt)
    _same_shape(pred, gt)
    total = int(np.count_nonzero(pred)) + int(np.count_nonzero(gt))
    if total == 0:
        return 1.0
    return 2.0 * int(np.count_nonzero(pred & gt)) / total


def surface(mask: np.ndarray) -> np.ndarray:
    """Surface voxels: mask XOR its 6-connected erosion (outside the array counts as background)."""
    mask = _bool(mask)
    return mask ^ ndimage.binary_erosion(mask, structure=_SIX, border_value=0)


def surface_distances(pred: np.ndarray, gt: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances in mm: (from each pred surface voxel to gt's surface, and back).

    Both masks must be non-empty.
    """
    pred, gt = _bool(pred), _bool(gt)
    _same_shape(pred, gt)
    spacing = _spacing(spacing)
    box = _union_box([pred, gt], np.ones(3, dtype=int))
    if box is None:
        raise ValueError("surface_distances needs two non-empty masks")
    return _directed(pred[box], gt[box], spacing)


def hausdorff(pred: np.ndarray, gt: np.ndarray, spacing) -> tuple[float, float]:
    """(HD, HD95) in mm between the surfaces of two masks; inf if exactly one is empty, 0 if both are."""
    pred, gt = _bool(pred), _bool(gt)
    _same_shape(pred, gt)
    has_pred, has_gt = bool(pred.any()), bool(gt.any())
    if not has_pred and not has_gt:
        return 0.0, 0.0
    if has_pred != has_gt:
        return float("inf"), float("inf")
    d_pg, d_gp = surface_distances(pred, gt, spacing)
    return _hd_pair(d_pg, d_gp)


def boundary_dice(pred: np.ndarray, gt: np.ndarray, defective: np.ndarray, spacing, *,
                  distance_mm: float = BOUNDARY_MM) -> float:
    """DSC after zeroing every voxel of pred and gt farther than distance_mm from the defective skull."""
    pred, gt, defective = _bool(pred), _bool(gt), _bool(defective)
    _same_shape(pred, gt)
    _same_shape(pred, defective)
    spacing = _spacing(spacing)
    box = _union_box([pred, gt], _boundary_margin(spacing, distance_mm))
    if box is None:
        return 1.0
    return _boundary_dice_cropped(pred[box], gt[box], defective[box], spacing, distance_mm)


def score_case(pred: np.ndarray, gt: np.ndarray, defective: np.ndarray, spacing) -> CaseScores:
    """All four challenge metrics of one case (one crop, shared by every metric)."""
    pred, gt, defective = _bool(pred), _bool(gt), _bool(defective)
    _same_shape(pred, gt)
    _same_shape(pred, defective)
    spacing = _spacing(spacing)
    margin = _boundary_margin(spacing, BOUNDARY_MM)
    wide = _union_box([pred, gt], margin)
    if wide is None:  # both empty
        return CaseScores(1.0, 1.0, 0.0, 0.0)
    p, g = pred[wide], gt[wide]
    dsc = dice(p, g)
    bdsc = _boundary_dice_cropped(p, g, defective[wide], spacing, BOUNDARY_MM)
    if p.any() and g.any():
        # the surfaces need only a one-voxel margin: shrink the wide box (cheaper distance transforms)
        tight = _union_box([p, g], np.ones(3, dtype=int))
        hd, hd95 = _hd_pair(*_directed(p[tight], g[tight], spacing))
    else:
        hd = hd95 = float("inf")
    return CaseScores(float(dsc), float(bdsc), hd, hd95)


# -- internals ---------------------------------------------------------------------------------------

def _bool(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    return array if array.dtype == bool else array != 0


def _same_shape(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")


def _spacing(spacing) -> np.ndarray:
    spacing = np.asarray(spacing, dtype=np.float64).reshape(-1)
    if spacing.shape != (3,) or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise ValueError(f"spacing must be three positive numbers (mm per axis), got {spacing}")
    return spacing


def _boundary_margin(spacing: np.ndarray, distance_mm: float) -> np.ndarray:
    """Voxels per axis that hold every point within distance_mm, plus one for the surfaces."""
    return np.ceil(distance_mm / spacing).astype(int) + 1


def _union_box(masks: list[np.ndarray], margin: np.ndarray) -> tuple[slice, ...] | None:
    """Bounding box of the union of masks, widened by margin voxels per axis (clipped to the array)."""
    from pcc.geometry.masks import bounding_box, box_slices

    boxes = [bounding_box(mask) for mask in masks if mask.any()]
    if not boxes:
        return None
    low = np.maximum(np.min([lo for lo, _ in boxes], axis=0) - margin, 0)
    high = np.minimum(np.max([hi for _, hi in boxes], axis=0) + margin, masks[0].shape)
    return box_slices(low, high)


def _directed(pred: np.ndarray, gt: np.ndarray, spacing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances on a crop whose margin keeps the array-border semantics."""
    s_pred, s_gt = surface(pred), surface(gt)
    to_gt = ndimage.distance_transform_edt(~s_gt, sampling=spacing)
    to_pred = ndimage.distance_transform_edt(~s_pred, sampling=spacing)
    return to_gt[s_pred], to_pred[s_gt]


def _hd_pair(d_pg: np.ndarray, d_gp: np.ndarray) -> tuple[float, float]:
    hd = max(float(d_pg.max()), float(d_gp.max()))
    hd95 = float(np.percentile(np.concatenate([d_pg, d_gp]), 95))
    return hd, hd95


def _boundary_dice_cropped(pred: np.ndarray, gt: np.ndarray, defective: np.ndarray, spacing: np.ndarray,
                           distance_mm: float) -> float:
    if not defective.any():  # no defective voxel within reach: everything is zeroed
        return 1.0
    near = ndimage.distance_transform_edt(~defective, sampling=spacing) <= distance_mm
    return dice(pred & near, gt & near)
