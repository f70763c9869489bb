"""Printable meshes (watertight, one outward solid, volume and box of the voxels), clearance, thickness."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from conftest import TILTED_DIRECTIONS, hollow_ellipsoid

from pcc.errors import InputError
from pcc.outputs.printing import check_printable, printable_mesh, solid_mask, thickness_report, voxel_world_box, write_stl
from pcc.outputs.thickness import local_thickness, solid_thickness_mm
from pcc.volume import Volume


def cap_case(directions=np.eye(3), origin=(-20.0, 10.5, 3.25)):
    """(defective, implant) on one grid: a shell with a hole on top, and the cap that fills it."""
    full = hollow_ellipsoid(hole_radius=0.0)
    defective = hollow_ellipsoid(hole_radius=8.0)
    implant = (full & ~defective).astype(np.uint8)
    origin = np.asarray(origin, float)
    return Volume(defective, np.asarray(directions, float), origin), Volume(implant, np.asarray(directions, float), origin)


@pytest.mark.parametrize("directions", [np.eye(3), TILTED_DIRECTIONS, np.diag([-0.8, -0.8, 1.2])], ids=["iso", "tilted", "flipped"])
def test_printable_mesh_passes_the_print_checks(directions):
    _, implant = cap_case(directions)
    mesh = printable_mesh(implant)
    checks = check_printable(mesh, implant)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.body_count == 1 and mesh.volume > 0
    assert abs(checks["volume_error"]) <= 0.02, checks
    assert checks["bbox_error_mm"] <= implant.spacing.max(), checks
    assert checks["ok"]


def test_cavities_filled_and_largest_part_kept():
    array = np.zeros((30, 30, 30), np.uint8)
    array[5:20, 5:20, 5:20] = 1
    array[10:14, 10:14, 10:14] = 0  # an inner cavity
    array[24:27, 24:27, 24:27] = 1  # a small fragment
    implant = Volume(array, np.eye(3) * 0.5, np.zeros(3))
    mesh = printable_mesh(implant, smoothing_iterations=0)
    assert mesh.body_count == 1 and mesh.is_watertight
    assert mesh.volume == pytest.approx(15**3 * 0.125, rel=0.02)  # cavity filled, fragment dropped
    assert solid_mask(implant).sum() == 15**3


def test_stl_is_binary_with_the_space_in_its_header(tmp_path):
    _, implant = cap_case()
    mesh = printable_mesh(implant)
    path = tmp_path / "cap.stl"
    write_stl(path, mesh, space=implant.space)
    data = path.read_bytes()
    assert b"left-posterior-superior" in data[:80]
    assert len(data) == 84 + 50 * len(mesh.faces)
    loaded = trimesh.load(path)
    assert loaded.is_watertight and np.allclose(loaded.bounds, mesh.bounds, atol=1e-4)
    with pytest.raises(InputError):
        write_stl(tmp_path / "cap.ply", mesh)


def test_clearance_shrinks_the_rim_only_where_it_meets_bone():
    defective, implant = cap_case(np.eye(3) * 0.5)
    plain = printable_mesh(implant)
    gap = printable_mesh(implant, clearance_mm=1.0, defective=defective)
    everywhere = printable_mesh(implant, clearance_mm=1.0)
    assert gap.is_watertight and gap.body_count == 1 and everywhere.is_watertight
    assert gap.volume < plain.volume and everywhere.volume < gap.volume
    # with the skull given, the gap opens at the rim: every remaining voxel is ≥ ~1 mm from bone
    from scipy import ndimage

    solid = solid_mask(implant, clearance_mm=1.0, defective=defective)
    distance = ndimage.distance_transform_edt(~defective.mask(), sampling=implant.spacing)
    assert distance[solid].min() >= 1.0 + 0.5 - 1e-6
    with pytest.raises(InputError, match="removes the whole implant"):
        printable_mesh(implant, clearance_mm=50.0)


@pytest.mark.parametrize("layers", [6, 7])
def test_thickness_of_a_slab_is_known_within_a_voxel(layers):
    spacing = np.array([0.5, 0.5, 0.7])
    array = np.zeros((40, 40, 16), np.uint8)
    array[5:35, 5:35, 4 : 4 + layers] = 1
    slab = Volume(array, np.diag(spacing), np.zeros(3))
    report = thickness_report(slab)
    truth = layers * 0.7
    assert abs(report["thickness_mean_mm"] - truth) <= 0.7, report
    assert abs(np.median(local_thickness(array != 0, spacing)[array != 0]) - truth) <= 0.7
    assert report["thickness_max_mm"] <= truth + 0.7
    assert report["volume_mm3"] == pytest.approx(30 * 30 * layers * 0.5 * 0.5 * 0.7)
    # area of a 15 × 15 mm slab: two faces plus the four sides (the mesh bevels its 12 edges a little)
    assert report["area_mm2"] == pytest.approx(2 * 15 * 15 + 4 * 15 * truth, rel=0.06)
    # the thickness measured beforehand (pcc implant measures it in a thread beside the mesh) gives the same report
    assert thickness_report(slab, thickness=solid_thickness_mm(solid_mask(slab), spacing)) == report
    assert np.array_equal(solid_thickness_mm(array != 0, spacing), local_thickness(array != 0, spacing)[array != 0])


def _local_thickness_by_every_ball(mask: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """The definition, by brute force: at each voxel, twice the largest r(c) = d(c) − s/4 over every
    voxel centre c whose ball (|x − c| ≤ r(c)) holds it."""
    from scipy import ndimage

    s = float(np.cbrt(np.prod(spacing)))
    radius = (ndimage.distance_transform_edt(np.pad(mask, 1), sampling=spacing) - s / 4.0)[1:-1, 1:-1, 1:-1][mask]
    points = np.argwhere(mask) * spacing
    apart = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(axis=-1))  # (voxel, centre) mm
    result = np.zeros(mask.shape, np.float32)
    result[mask] = np.where(apart <= radius[None, :] + 1e-9, 2 * radius[None, :], 0.0).max(axis=1)
    return result


def test_local_thickness_equals_the_largest_ball_of_every_voxel():
    # A plate thickening from 2 to 6 voxels with a knob on it, on an anisotropic grid, touching the
    # array's border: balls of many sizes, the knob's reaching over the plate.
    spacing = np.array([0.45, 0.5, 0.7])
    mask = np.zeros((26, 14, 14), bool)
    for x in range(0, 24):
        mask[x, 0:12, 2 : 4 + x // 5] = True
    grid = np.stack(np.meshgrid(*(np.arange(n) for n in mask.shape), indexing="ij"), axis=-1)
    mask |= np.linalg.norm((grid - [18, 7, 7]) * spacing, axis=-1) <= 2.4
    reference = _local_thickness_by_every_ball(mask, spacing)
    assert np.allclose(local_thickness(mask, spacing), reference, atol=1e-5)
    assert np.allclose(local_thickness(mask, spacing, batch=50), reference, atol=1e-5)  # many small batches
    assert len(np.unique(reference[mask])) > 5


def test_local_thickness_on_a_grid_finer_than_a_quarter_voxel_along_one_axis():
    # spacing (0.1, 1, 1): s/4 = 0.25 mm > 0.1 mm, so voxels one step from the outside along x have
    # r = d - s/4 < 0 and hold no ball; they read 0 unless a deeper ball covers them.
    spacing = np.array([0.1, 1.0, 1.0])
    mask = np.zeros((12, 8, 8), bool)
    mask[2:4, 1:7, 1:7] = True  # two voxels thin along x: every ball has radius below 0
    mask[5:11, 2:6, 2:6] = True  # six voxels along x: some balls of positive radius
    reference = _local_thickness_by_every_ball(mask, spacing)
    assert np.allclose(local_thickness(mask, spacing), reference, atol=1e-5)
    assert (reference[2:4] == 0).all() and reference[5:11].max() > 0


def test_voxel_world_box_of_one_voxel():
    array = np.zeros((5, 5, 5), np.uint8)
    array[2, 2, 2] = 1
    box = voxel_world_box(Volume(array, np.diag([1.0, 2.0, 3.0]), np.array([10.0, 0.0, 0.0])))
    assert np.allclose(box[0], [11.5, 3.0, 4.5]) and np.allclose(box[1], [12.5, 5.0, 7.5])


def test_empty_implant_is_an_input_error():
    with pytest.raises(InputError, match="empty"):
        printable_mesh(Volume(np.zeros((4, 4, 4), np.uint8), np.eye(3), np.zeros(3)))


# A 4×4×4 piece of a real predicted implant (gallery case 106) on which marching cubes alone gives
# edges shared by more than two faces.
EDGE_CONTACTS = np.array(
    [[[0, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0]], [[1, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0]],
     [[0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0]], [[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1]]],
    dtype=bool,
)


def _non_manifold_edges(mask: np.ndarray) -> int:
    from skimage.measure import marching_cubes

    vertices, faces, _, _ = marching_cubes(np.pad(mask, 1).astype(np.float32), 0.5, allow_degenerate=False)
    mesh = trimesh.Trimesh(vertices, faces, process=True)
    _, counts = np.unique(mesh.edges_sorted, axis=0, return_counts=True)
    return int((counts > 2).sum())


def test_voxels_touching_along_an_edge_are_bridged_before_meshing():
    from pcc.outputs.printing import _bridge_edge_contacts

    assert _non_manifold_edges(EDGE_CONTACTS) > 0  # the problem is real
    bridged = _bridge_edge_contacts(EDGE_CONTACTS)
    assert _non_manifold_edges(bridged) == 0
    assert (bridged | ~EDGE_CONTACTS).all()  # keeps every voxel
    assert bridged.sum() < 2 * EDGE_CONTACTS.sum()  # a diagonal staircase gets one bridge per step
