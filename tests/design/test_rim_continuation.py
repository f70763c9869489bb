"""pcc.design.rim (issue 30, route 3): the bone plate continued into the hole near the rim."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from pcc.challenge.metrics import dice
from pcc.design.rim import continue_rim

GRIDS = {
    "0.5 mm, axis-aligned": np.diag([0.5, 0.5, 0.5]),
    # unequal steps, the first two axes swapped and the third reversed: world z falls as the index rises
    "0.45 / 0.5 / 0.6 mm, permuted and flipped": np.array([[0.0, 0.45, 0.0], [0.5, 0.0, 0.0], [0.0, 0.0, -0.6]]),
}


def _plate_with_hole() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bone, truth, design) as (X, Y, Z) arrays: a plate 6 voxels thick across array axis 2 (indices 20–25) with a
    40 × 40 voxel hole; the truth fills the hole, the design fills it 2 voxels too low."""
    shape = (100, 100, 50)
    plate = np.zeros(shape, dtype=bool)
    plate[:, :, 20:26] = True
    hole = np.zeros(shape, dtype=bool)
    hole[30:70, 30:70, :] = True
    bone, truth = plate & ~hole, plate & hole
    design = np.roll(truth, -2, axis=2)
    return bone, truth, design


@pytest.mark.parametrize("grid", GRIDS, ids=list(GRIDS))
def test_the_continued_plate_moves_the_design_back_to_the_bone_near_the_rim(grid):
    directions = GRIDS[grid]
    bone, truth, design = _plate_with_hole()
    to_bone = ndimage.distance_transform_edt(~bone, sampling=np.linalg.norm(directions, axis=1))
    continued = {band: continue_rim(bone, design, directions, band) for band in (3.5, 7.0)}
    beside = (to_bone <= 0.5) & ~bone  # face neighbours of the bone across axes 0 and 1: mostly the plate there
    assert np.count_nonzero(design[beside] != truth[beside]) > 100
    assert np.array_equal(continued[7.0][beside], truth[beside])
    assert dice(design, truth) < dice(continued[3.5], truth) < dice(continued[7.0], truth)
    far = to_bone > 7.0  # beyond the widest band the design stays as it was
    assert np.array_equal(continued[7.0][far], design[far])
    assert not (continued[7.0] & bone).any()


def test_nothing_changes_when_off_or_with_nothing_to_continue():
    bone, _, design = _plate_with_hole()
    directions = GRIDS["0.5 mm, axis-aligned"]
    assert continue_rim(bone, design, directions, 0.0) is design  # 0: off
    empty = np.zeros_like(design)
    assert not continue_rim(bone, empty, directions, 3.5).any()  # no design: nothing is added near the bone
    assert np.array_equal(continue_rim(empty, design, directions, 3.5), design)  # no bone: no plate
