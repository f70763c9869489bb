"""pcc.design.rim (issue 30, route 3): the bone plate continued into the hole near the rim."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from pcc.design.rim import continue_rim


def _plate_with_hole() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bone, truth, design) on a 0.5 mm grid: a flat plate 6 voxels thick (z 20–25) with a 40 × 40 voxel hole; the
    truth fills the hole, the design fills it 2 voxels (1 mm) too deep."""
    shape = (100, 100, 50)
    plate = np.zeros(shape, dtype=bool)
    plate[:, :, 20:26] = True
    hole = np.zeros(shape, dtype=bool)
    hole[30:70, 30:70, :] = True
    bone, truth = plate & ~hole, plate & hole
    design = np.roll(truth, -2, axis=2)
    return bone, truth, design


def test_the_continued_plate_moves_the_design_back_to_the_bone_near_the_rim():
    bone, truth, design = _plate_with_hole()
    spacing = np.full(3, 0.5)
    to_bone = ndimage.distance_transform_edt(~bone, sampling=spacing)
    continued = {band: continue_rim(bone, design, spacing, np.diag(spacing), band) for band in (1.5, 3.5)}
    beside = (to_bone <= 0.5) & ~bone  # face neighbours of the bone: the blend is mostly the plate there
    assert np.count_nonzero(design[beside] != truth[beside]) > 100
    assert np.array_equal(continued[3.5][beside], truth[beside])
    assert dsc(design, truth) < dsc(continued[1.5], truth) < dsc(continued[3.5], truth)
    far = to_bone > 3.5  # beyond the widest band the design stays as it was
    assert np.array_equal(continued[3.5][far], design[far])
    assert not (continued[3.5] & bone).any()
    assert continue_rim(bone, design, spacing, np.diag(spacing), 0.0) is design  # 0: off


def dsc(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))
