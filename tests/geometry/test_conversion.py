"""Volume ↔ point cloud ↔ volume on small synthetic shapes."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ellipsoid_cavity
from scipy import ndimage

import pcc.geometry.voxelize as voxelize
from pcc.errors import InputError
from pcc.geometry.cloud import PointCloud
from pcc.geometry.surface import volume_to_mesh, volume_to_points
from pcc.geometry.voxelize import points_to_volume
from pcc.io import read_cloud, write_cloud, write_mesh
from pcc.volume import Volume


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a != 0, b != 0
    return 2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def ball(shape=(40, 40, 40), radius=14.0) -> np.ndarray:
    centre = (np.asarray(shape) - 1) / 2.0
    grid = np.stack(np.meshgrid(*(np.arange(s) for s in shape), indexing="ij"), axis=-1) - centre
    return (np.linalg.norm(grid, axis=-1) <= radius).astype(np.uint8)


@pytest.mark.parametrize("mirror", [1.0, -1.0], ids=["right-handed", "mirrored"])
def test_points_count_normals_outward_and_on_the_surface(mirror):
    spacing = np.array([0.5, 0.6, 0.7])
    volume = Volume(ball(), np.diag(spacing * [1.0, 1.0, mirror]), np.array([5.0, -3.0, 2.0]))
    cloud = volume_to_points(volume, 3000, seed=1)
    assert len(cloud) == 3000 and cloud.normals is not None
    assert np.allclose(np.linalg.norm(cloud.normals, axis=1), 1.0)
    centre_world = volume.index_to_world([(np.asarray(volume.shape) - 1) / 2.0])[0]
    radial = cloud.points - centre_world
    radial /= np.linalg.norm(radial, axis=1, keepdims=True)
    assert np.all(np.einsum("ij,ij->i", radial, cloud.normals) > 0)
    # On the 0.5 iso-surface: within one voxel of the ideal sphere of radius 14.5 voxels.
    radius_voxels = np.linalg.norm(volume.world_to_index(cloud.points) - (np.asarray(volume.shape) - 1) / 2.0, axis=1)
    assert np.all(np.abs(radius_voxels - 14.5) < 1.0)
    # Same seed, same points; another seed, other points.
    assert np.array_equal(volume_to_points(volume, 3000, seed=1).points, cloud.points)
    assert not np.array_equal(volume_to_points(volume, 3000, seed=2).points, cloud.points)


def test_points_spread_evenly():
    volume = Volume(ball(), np.eye(3), np.zeros(3))
    cloud = volume_to_points(volume, 4000)
    from scipy.spatial import cKDTree

    gap = cKDTree(cloud.points).query(volume_to_mesh(volume).vertices)[0]
    area = 4 * np.pi * 14.5**2
    mean_spacing = np.sqrt(area / len(cloud))
    assert gap.max() < 2.0 * mean_spacing  # no holes much larger than the mean spacing


@pytest.mark.parametrize("step", [1, 2, 3])
@pytest.mark.parametrize("shape", [(29, 30, 31), (30, 31, 29)])
def test_surface_at_a_step_is_skimages_marching_cubes_at_that_step(step, shape):
    """The network's surface (no smoothing) marches over every step-th sample of the padded box only; its
    vertices and faces are those of scikit-image's marching cubes at that step over the whole padded box."""
    from skimage.measure import marching_cubes

    from pcc.geometry.surface import _index_space_surface

    mask = ball(shape, radius=11.0) & ~ball(shape, radius=7.5).astype(bool)
    mask[:, :, :12] = 0  # a rim where the step's samples cut across it
    mask[:4, 10:20, 20:] = 1  # a block on the array's border
    volume = Volume(mask.astype(np.uint8), np.diag([0.5, 0.5, 0.6]), np.zeros(3))
    vertices, faces = _index_space_surface(volume, step)
    lower = np.argwhere(mask).min(axis=0)
    upper = np.argwhere(mask).max(axis=0) + 1
    padded = np.pad(mask[tuple(slice(lo, hi) for lo, hi in zip(lower, upper))].astype(np.float32), 1)
    expected, expected_faces, _, _ = marching_cubes(padded, level=0.5, step_size=step, allow_degenerate=True)
    assert np.array_equal(vertices, expected + (lower - 1).astype(np.float32))
    assert np.array_equal(faces, np.ascontiguousarray(expected_faces[:, ::-1]))


def test_surface_at_a_step_that_misses_a_thin_plate_is_refused():
    """A one-voxel plate that every second sample misses has no surface at step 2: a clear error, not an empty sample."""
    mask = np.zeros((20, 20, 20), dtype=np.uint8)
    mask[4:16, 4:16, 7] = 1
    volume = Volume(mask, np.eye(3), np.zeros(3))
    with pytest.raises(InputError, match="too small or too thin"):
        volume_to_points(volume, 100, step=2, smoothing_voxels=0.0)
    with pytest.raises(InputError, match="at least 1 voxel"):
        volume_to_points(volume, 100, step=0, smoothing_voxels=0.0)


def test_points_rejects_bad_count(shell):
    with pytest.raises(InputError):
        volume_to_points(shell, 0)


@pytest.mark.parametrize("grid", ["shell", "tilted_shell"])
def test_round_trip_dice(grid, request):
    volume = request.getfixturevalue(grid)
    cloud = volume_to_points(volume, 8000)
    result = points_to_volume(cloud, volume)
    assert result.same_grid(volume)
    assert result.array.dtype == np.uint8 and set(np.unique(result.array)) <= {0, 1}
    assert dice(result.array, volume.array) > 0.95
    # The shell's cavity stays empty: no voxel deeper than one voxel inside it is filled.
    deep_cavity = ndimage.binary_erosion(ellipsoid_cavity(), iterations=2)
    assert deep_cavity.sum() > 1000 and not result.mask()[deep_cavity].any()


def test_splatting_batches_do_not_change_the_solid(shell, monkeypatch):
    cloud = volume_to_points(shell, 8000)
    whole = points_to_volume(cloud, shell).array
    monkeypatch.setattr(voxelize, "_CONTRIBUTIONS_PER_BATCH", 5_000)  # about 50 points per batch, against one batch of all
    assert np.array_equal(points_to_volume(cloud, shell).array, whole)


@pytest.mark.parametrize("start", [4, 5])
def test_round_trip_of_flat_faces_on_half_voxels(start):
    """Unsmoothed surface samples of a box lie exactly on half-voxel positions; with voxels narrower along x than
    half their diagonal the kernel's ball reaches its full index extent, so a point rounded to the wrong side of
    a half used to reach past the splatting box (a crash in pcc.geometry.voxelize._splat)."""
    box = np.zeros((24, 24, 12), dtype=np.uint8)
    box[start:start + 12, start:start + 12, 3:9] = 1
    volume = Volume(box, np.diag([0.4, 0.4, 1.0]), np.zeros(3))
    radius = 1.5  # the kernel's smallest radius here (1.5 of the largest spacing); this dense cloud gets it
    assert voxelize._ball_offsets(volume.directions, radius)[:, 0].max() == voxelize._index_reach(volume.directions, radius)[0]
    result = points_to_volume(volume_to_points(volume, 4000, smoothing_voxels=0.0), volume)
    assert dice(result.array, box) > 0.95


def test_round_trip_without_normals_estimates_them(shell):
    cloud = volume_to_points(shell, 8000)
    result = points_to_volume(PointCloud(cloud.points), shell)
    assert dice(result.array, shell.array) > 0.9


def test_gaps_in_a_sparse_cloud_do_not_leak():
    """A sparse cloud leaves gaps in the band, joining the solid's core to the outside; the core
    must still come out solid (without the leak guard this case loses about half the ball)."""
    volume = Volume(ball(), np.eye(3), np.zeros(3))
    for n_points in (300, 500):
        result = points_to_volume(volume_to_points(volume, n_points), volume, neighbours=2)
        assert dice(result.array, volume.array) > 0.95


def test_cloud_outside_the_grid_gives_empty_volume(shell):
    cloud = volume_to_points(shell, 500)
    far = PointCloud(cloud.points + 1000.0, cloud.normals)
    assert points_to_volume(far, shell).array.sum() == 0
    with pytest.raises(InputError):
        points_to_volume(PointCloud(cloud.points[:3], cloud.normals[:3]), shell)


@pytest.mark.parametrize("mirror", [1.0, -1.0], ids=["right-handed", "mirrored"])
def test_mesh_is_closed_and_outward(tmp_path, tilted_shell, mirror):
    import trimesh

    tilted_shell = Volume(tilted_shell.array, tilted_shell.directions * [[1.0], [mirror], [1.0]], tilted_shell.origin)
    mesh = volume_to_mesh(tilted_shell)
    tri = trimesh.Trimesh(mesh.vertices, mesh.faces, process=True)
    assert tri.is_watertight
    assert tri.volume > 0  # outward winding: positive enclosed volume
    voxels = tilted_shell.array.sum() * tilted_shell.voxel_volume
    assert abs(tri.volume - voxels) / voxels < 0.1
    write_mesh(tmp_path / "m.stl", mesh)
    write_mesh(tmp_path / "m.ply", mesh)
    assert np.allclose(trimesh.load(tmp_path / "m.stl").bounds, tri.bounds, atol=1e-3)


@pytest.mark.parametrize("suffix", [".ply", ".npz", ".xyz"])
def test_cloud_formats_round_trip(tmp_path, suffix):
    rng = np.random.default_rng(0)
    points = rng.normal(size=(50, 3)) * 40 + [-100.0, 20.0, 5.0]
    normals = rng.normal(size=(50, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    for cloud in (PointCloud(points, normals), PointCloud(points)):
        write_cloud(tmp_path / f"c{suffix}", cloud)
        again = read_cloud(tmp_path / f"c{suffix}")
        tolerance = 1e-6 if suffix != ".npz" else 0.0
        assert np.allclose(again.points, cloud.points, atol=tolerance, rtol=0)
        if cloud.normals is None:
            assert again.normals is None
        else:
            assert np.allclose(again.normals, cloud.normals, atol=tolerance, rtol=0)
