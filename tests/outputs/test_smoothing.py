"""The default STL is smooth (Taubin) yet keeps the fit: mean dihedral angle at most half the raw marching
cubes', within a voxel of the raw surface, volume within 2 %; smoothing_iterations=0 is the raw surface."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from conftest import TILTED_DIRECTIONS

from pcc.outputs.printing import SMOOTHING_ITERATIONS, check_printable, hausdorff_mm, mesh_smoothness, printable_mesh
from pcc.volume import Volume

RADIUS = 85.0


def skull_implant(directions) -> Volume:
    """A 7 mm thick, 50×50 mm implant at the top of a spherical skull (outer radius RADIUS mm)."""
    d = np.asarray(directions, float)
    lower, upper = np.array([-30.0, -30.0, RADIUS - 25.0]), np.array([30.0, 30.0, RADIUS + 3.0])
    shape = np.ceil(np.abs(np.linalg.solve(d.T, upper - lower))).astype(int) + 1
    origin = lower + np.array([0.137, -0.21, 0.05])
    i, j, k = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij", sparse=True)
    x, y, z = (origin[a] + i * d[0, a] + j * d[1, a] + k * d[2, a] for a in range(3))
    r = np.sqrt(x * x + y * y + z * z)
    implant = (r <= RADIUS) & (r >= RADIUS - 7.0) & (np.maximum(np.abs(x), np.abs(y)) < 25.0) & (z > 0)
    return Volume(implant.astype(np.uint8), d, origin)


def assert_smooth_and_fitting(implant: Volume) -> dict:
    smooth = printable_mesh(implant)
    raw = printable_mesh(implant, smoothing_iterations=0)
    ratio = mesh_smoothness(smooth)["mean_dihedral_deg"] / mesh_smoothness(raw)["mean_dihedral_deg"]
    distance = hausdorff_mm(smooth, raw)
    change = smooth.volume / raw.volume - 1
    assert ratio <= 0.5, ratio
    assert distance <= implant.spacing.max(), distance
    assert abs(change) <= 0.02, change
    assert check_printable(smooth, implant)["ok"]
    return {"ratio": ratio, "hausdorff_mm": distance, "volume_change": change}


@pytest.mark.parametrize("directions", [np.eye(3) * 0.6, np.eye(3) * 0.45, TILTED_DIRECTIONS], ids=["0.6", "0.45", "tilted"])
def test_default_stl_is_smooth_within_a_voxel_and_two_percent(directions):
    assert_smooth_and_fitting(skull_implant(directions))


@pytest.mark.slow
def test_bundled_example_stl_is_smooth_and_unchanged():
    from pathlib import Path

    from pcc.examples import __file__ as examples
    from pcc.io import read_volume

    implant = read_volume(Path(examples).parent / "implant_005.nrrd")
    assert_smooth_and_fitting(implant)
    # already smooth enough after the first SMOOTHING_ITERATIONS: the STL is exactly that surface
    raw = printable_mesh(implant, smoothing_iterations=0)
    trimesh.smoothing.filter_taubin(raw, lamb=0.5, nu=0.53, iterations=SMOOTHING_ITERATIONS)
    default = printable_mesh(implant)
    assert np.array_equal(default.vertices, raw.vertices) and np.array_equal(default.faces, raw.faces)


def test_no_smoothing_is_the_raw_staircase():
    array = np.zeros((12, 12, 12), np.uint8)
    array[3:9, 3:9, 3:9] = 1
    raw = printable_mesh(Volume(array, np.eye(3), np.zeros(3)), smoothing_iterations=0)
    assert set(np.unique(np.round(raw.vertices * 2) / 2 % 1)) <= {0.0, 0.5}  # marching cubes on voxel edges
    assert mesh_smoothness(raw)["mean_dihedral_deg"] > 0


def test_hausdorff_reads_a_shift():
    box = trimesh.creation.box(extents=(10.0, 10.0, 10.0))
    moved = box.copy()
    moved.apply_translation((0.3, 0.0, 0.0))
    assert hausdorff_mm(box, box) == pytest.approx(0.0, abs=0.05)
    assert hausdorff_mm(box, moved) == pytest.approx(0.3, abs=0.05)
