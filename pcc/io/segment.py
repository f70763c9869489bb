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

from pcc.geometry.masks import label_components
from pcc.volume import Volume

BONE_LOW_HU = 100.0
BONE_HIGH_HU = float("inf")
# Table removal: an opening of this radius separates skull and head holder; bodies it separates that
# are at least TABLE_MIN_ML are the table (segment_skull's defaults).
BRIDGE_MM = 1.5
TABLE_MIN_ML = 5.0
# Metal (clips, plates, screws, dental fillings) lies far above bone, whose cortex reaches about
# 2000 HU at 120 kVp; an attenuation above METAL_HU inside the segmented skull is reported.
METAL_HU = 3000.0
METAL_MIN_MM3 = 20.0
# Slices farther apart than this are refused: the skull's inner and outer surfaces, a few mm apart,
# would blur into each other. pcc's network sees clouds sampled from the surface, so 2× coarser grids
# than SkullFix's (about 0.45 × 0.45 × 1.25 mm at most) still work; a real CT at 0.96 × 0.96 × 1.5 mm
# gave DSC 0.913.
MAX_SLICE_SPACING_MM = 3.0
# Skull bone over more than this area in the slice at the scan's superior end: the scan cuts the vault.
CUT_MIN_MM2 = 100.0


def segment_skull(ct: Volume, *, low: float = BONE_LOW_HU, high: float = BONE_HIGH_HU,
                  bridge_mm: float = BRIDGE_MM, table_min_ml: float = TABLE_MIN_ML) -> np.ndarray:
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
                         "adjust the bone threshold (pcc segment --low/--high)")
    spacing = ct.spacing
    radius = np.floor(bridge_mm / spacing + 1e-9).astype(int) if bridge_mm > 0 else np.zeros(3, int)
    candidate = bone
    if radius.max() > 0:
        ball = _ellipsoid_structure(radius, spacing, bridge_mm)
        core = ndimage.binary_opening(bone, structure=ball)
        if core.any():
            labels, sizes, box = label_components(core, connectivity=3)
            skull_id = _skull_label(labels, sizes, spacing)
            min_voxels = table_min_ml * 1000 / ct.voxel_volume
            table_ids = [i for i in np.flatnonzero(sizes >= min_voxels) if i != skull_id]
            if table_ids:
                table = np.zeros(bone.shape, bool)
                table[box] = np.isin(labels, table_ids)
                candidate = bone & ~ndimage.binary_dilation(table, structure=ball)
    return _skull_component(candidate, spacing)


def _skull_label(labels: np.ndarray, sizes: np.ndarray, spacing: np.ndarray) -> int:
    """The skull's label among labelled bone components (sizes: voxels per label, 0 for the background):
    of the components with at least a tenth of the largest one's voxels, the one whose bounding box is
    largest in mm³. A skull encloses the head, so its box is far larger than that of a flat CT table or
    head holder (which can hold more voxels than a skull with a large defect) or of the spine."""
    best, best_box_mm3 = int(np.argmax(sizes)), -1.0
    for label, extent in enumerate(ndimage.find_objects(labels), start=1):
        if extent is None or sizes[label] < 0.1 * sizes.max():
            continue
        box_mm3 = float(np.prod([(part.stop - part.start) * step for part, step in zip(extent, spacing)]))
        if box_mm3 > best_box_mm3:
            best, best_box_mm3 = label, box_mm3
    return best


def _skull_component(mask: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """The skull's 26-connected component of the thresholded bone (_skull_label)."""
    if not mask.any():
        return mask.copy()
    labels, sizes, box = label_components(mask, connectivity=3)
    if len(sizes) <= 2:  # one component
        return mask.copy()
    out = np.zeros(mask.shape, bool)
    out[box] = labels == _skull_label(labels, sizes, spacing)
    return out


def check_ct_grid(ct: Volume) -> None:
    """Refuse (InputError) a CT whose voxels are too coarse to segment a skull from (MAX_SLICE_SPACING_MM)."""
    from pcc.errors import InputError

    spacing = ct.spacing
    if float(spacing.max()) > MAX_SLICE_SPACING_MM:
        raise InputError(
            f"the CT's voxels are {' × '.join(f'{s:.2f}' for s in spacing)} mm: more than {MAX_SLICE_SPACING_MM:g} mm "
            "between slices blurs the skull's two surfaces together; export a thin-slice reconstruction "
            "(≤ 1.5 mm, bone or standard kernel) of the same scan"
        )


def scan_warnings(ct: Volume, skull: np.ndarray) -> list[str]:
    """What a user should know about a segmented head CT (the skull as from segment_skull):
    metal in the skull (it counts as bone), and a scan that ends inside the skull's vault
    (the cut looks like a defect, so pcc would design an implant for it)."""
    warnings = []
    data = np.asarray(ct.array)
    metal_mm3 = float(np.count_nonzero(skull & (data > METAL_HU))) * ct.voxel_volume
    if metal_mm3 >= METAL_MIN_MM3:
        warnings.append(
            f"metal in or on the skull ({metal_mm3 / 1000:.2f} cm³ above {METAL_HU:g} HU: clips, plates or screws); "
            "it counts as bone, so the implant is shaped around it: check the implant near it"
        )
    # the array axis whose direction points most superior (+z in LPS and RAS), and the end at the top
    axis = int(np.argmax(np.abs(ct.directions[:, 2])))
    top = -1 if ct.directions[axis, 2] > 0 else 0
    face_mm2 = ct.voxel_volume / float(ct.spacing[axis])
    bone_at_top_mm2 = float(np.count_nonzero(np.take(skull, top, axis=axis))) * face_mm2
    if bone_at_top_mm2 > CUT_MIN_MM2:
        warnings.append(
            f"the scan ends inside the skull at its top ({bone_at_top_mm2 / 100:.1f} cm² of bone in the last slice): "
            "the cut looks like a defect to pcc, so an implant may be designed for it; scan the whole vault"
        )
    return warnings


def _ellipsoid_structure(radius: np.ndarray, spacing: np.ndarray, radius_mm: float) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(-r, r + 1) * s for r, s in zip(radius, spacing)], indexing="ij")
    ball = sum(g ** 2 for g in grids) <= radius_mm ** 2 + 1e-9
    return ball


__all__ = ["BONE_HIGH_HU", "BONE_LOW_HU", "check_ct_grid", "scan_warnings", "segment_skull"]
