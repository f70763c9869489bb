"""Binary skull from a head CT, the way the AutoImplant organizers prepared SkullFix and SkullBreak.

Steps: bone threshold in Hounsfield units (the organizers used 100 HU to the maximum, see
github.com/Jianningli/autoimplant, skull-processing/src/segmentation.py); table removal: an opening of
radius ``bridge_mm`` cuts thin bridges (head rest, straps, wires) and every large body it separates from
the skull is removed with the bone next to it; finally the largest connected component is kept, which
also drops small islands (noise, calcifications).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from pcc.volume import Volume

BONE_LOW_HU = 100.0
BONE_HIGH_HU = float("inf")


def segment_skull(ct: Volume, *, low: float = BONE_LOW_HU, high: float = BONE_HIGH_HU,
                  bridge_mm: float = 1.5, table_min_ml: float = 5.0) -> np.ndarray:
    """Boolean (x, y, z) skull mask of a head CT in HU.

    Args:
        ct: the CT volume (values in Hounsfield units).
        low, high: bone threshold range in HU (inclusive); default 100 HU to the maximum.
        bridge_mm: radius (mm) of the opening that separates the skull from the table and head rest
            (structures thinner than about twice this are bridges); 0 turns table removal off.
        table_min_ml: bodies the opening separates from the skull that are at least this large (ml) are
            treated as table / head holder and removed with the bone within bridge_mm of them.

    The result is the largest 26-connected component of the thresholded bone after table removal, so
    small islands (noise, calcifications, wires) are gone. Thin skull parts are kept: the opening only
    decides what belongs to the table, it is not applied to the skull.

    Raises:
        pcc.errors.InputError: an empty threshold range or no voxel in it.
    """
    from pcc.errors import InputError

    if not low < high:
        raise InputError(f"the bone threshold range is empty (low {low} ≥ high {high}): give --low below --high")
    data = np.asarray(ct.array)
    if data.dtype.kind not in "biuf":
        raise InputError(f"the CT holds {data.dtype} values; pcc needs numbers in Hounsfield units")
    bone = (data >= low) & (data <= high)
    if not bone.any():
        raise InputError(f"no voxel lies between {low} and {high} HU: is this a CT in Hounsfield units? "
                         "adjust --low/--high")
    spacing = ct.spacing
    radius = np.floor(bridge_mm / spacing + 1e-9).astype(int) if bridge_mm > 0 else np.zeros(3, int)
    candidate = bone
    if radius.max() > 0:
        ball = _ellipsoid_structure(radius, spacing, bridge_mm)
        core = ndimage.binary_opening(bone, structure=ball)
        labels, count = ndimage.label(core, structure=ndimage.generate_binary_structure(3, 3))
        if count > 1:
            sizes = np.bincount(labels.ravel())
            sizes[0] = 0
            skull_id = int(np.argmax(sizes))
            min_voxels = table_min_ml * 1000 / ct.voxel_volume
            table_ids = [i for i in np.flatnonzero(sizes >= min_voxels) if i != skull_id]
            if table_ids:
                table = ndimage.binary_dilation(np.isin(labels, table_ids), structure=ball)
                candidate = bone & ~table
    return _largest_component(candidate)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, count = ndimage.label(mask, structure=ndimage.generate_binary_structure(3, 3))
    if count <= 1:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def _ellipsoid_structure(radius: np.ndarray, spacing: np.ndarray, radius_mm: float) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(-r, r + 1) * s for r, s in zip(radius, spacing)], indexing="ij")
    ball = sum(g ** 2 for g in grids) <= radius_mm ** 2 + 1e-9
    return ball


__all__ = ["BONE_HIGH_HU", "BONE_LOW_HU", "segment_skull"]
