"""The mirror prior (pcc.geometry.symmetry) and the networks' second input set that carries it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import hollow_skull

from pcc.challenge.metrics import dice
from pcc.geometry import symmetry
from pcc.geometry.surface import volume_to_points
from pcc.learning.cache import CachedCase
from pcc.learning.pairs import WarpField, Warps, make_pair
from pcc.models import PointCompletionNet
from pcc.models.inputs import SampleSizes
from pcc.volume import Volume


def rotation_z(degrees: float) -> np.ndarray:
    angle = np.deg2rad(degrees)
    return np.array([[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0], [0.0, 0.0, 1.0]])


def lopsided_skull(yaw_degrees: float = 0.0, shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> Volume:
    """A left-right symmetric shell with an asymmetric front-back profile (so a wrong plane would not fit),
    turned about z by yaw_degrees and shifted, on a 2 mm grid: its plane of symmetry is not the grid's."""
    base = hollow_skull(spacing=(2.0, 2.0, 2.0), semi=(100.0, 120.0, 90.0))  # only its grid is used
    world = base.index_to_world(np.indices(base.shape).reshape(3, -1).T)
    # Undo the pose, then test the symmetric shape: x² terms only, so mirror(x) = −x is exact.
    local = (world - np.asarray(shift_mm)) @ rotation_z(yaw_degrees)
    semi = np.array([72.0, 92.0, 80.0]) * (1.0 + 0.15 * (local[:, 1:2] > 0))  # longer at the back
    r = np.sqrt(((local / semi) ** 2).sum(axis=1))
    shell = (r <= 1.0) & (r >= 1.0 - 9.0 / 72.0) & (local[:, 2] > -40.0)
    return base.with_array(shell.reshape(base.shape).astype(np.uint8))


@pytest.mark.parametrize("yaw, shift", [(0.0, (0.0, 0.0, 0.0)), (6.0, (7.0, -4.0, 3.0))])
def test_whole_skull_mirror_maps_a_symmetric_shell_onto_itself(yaw, shift):
    skull = lopsided_skull(yaw, shift)
    cloud = volume_to_points(skull, 8000, seed=0, smoothing_voxels=0.0)
    fit = symmetry.whole_skull_mirror(cloud.points, cloud.normals)
    assert np.linalg.det(fit.transform[:3, :3]) == pytest.approx(-1.0, abs=1e-6)
    # The true mirror: reflect the shell's own x about its plane (turned by yaw, through `shift`).
    turn = rotation_z(yaw)
    true = np.eye(4)
    true[:3, :3] = turn @ np.diag([-1.0, 1.0, 1.0]) @ turn.T
    true[:3, 3] = np.asarray(shift) - true[:3, :3] @ np.asarray(shift)
    probe = cloud.points[::50]
    error = np.linalg.norm(symmetry.apply(fit.transform, probe) - symmetry.apply(true, probe), axis=1)
    assert np.median(error) < 1.0 and error.max() < 3.0, (np.median(error), error.max())
    assert fit.fitness > 0.8  # the 2 mm staircase of each side differs a little
    # The same cloud gives the same transform, to the bit (the pipeline's outputs are bit-identical on the CPU).
    assert all(np.array_equal(symmetry.whole_skull_mirror(cloud.points, cloud.normals).transform, fit.transform)
               for _ in range(3))


def test_mirror_implant_fills_a_one_sided_hole_from_the_other_side():
    skull = lopsided_skull(4.0, (3.0, 0.0, 0.0))
    bone = skull.mask()
    world = skull.index_to_world(np.indices(skull.shape).reshape(3, -1).T).reshape(*skull.shape, 3)
    centre = np.array([np.cos(np.deg2rad(4.0)) * 68.0 + 3.0, np.sin(np.deg2rad(4.0)) * 68.0, 20.0])
    hole = bone & (np.linalg.norm(world - centre, axis=-1) < 22.0)
    defective = skull.with_array((bone & ~hole).astype(np.uint8))
    cloud = volume_to_points(defective, 16000, seed=0, smoothing_voxels=0.0)
    whole = symmetry.whole_skull_mirror(cloud.points, cloud.normals)
    local = symmetry.local_mirror(cloud.points, cloud.normals, whole, centre, 22.0)
    implant = symmetry.mirror_implant(defective, local, centre, 26.0)
    assert not (implant & defective.mask()).any()
    assert dice(implant, hole) > 0.85, dice(implant, hole)
    # Nothing is taken from a mirror image that has no bone there (a hole on both sides).
    opposite = symmetry.apply(local.transform, centre[None])[0]
    both = hole | (bone & (np.linalg.norm(world - opposite, axis=-1) < 22.0))
    assert symmetry.mirror_implant(skull.with_array((bone & ~both).astype(np.uint8)), local, centre, 26.0).sum() < 0.1 * hole.sum()


def test_warp_field_moves_points_smoothly_and_turns_normals_with_the_surface():
    rng = np.random.default_rng(0)
    theta, phi = rng.uniform(0, np.pi, 4000), rng.uniform(0, 2 * np.pi, 4000)
    normals = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], axis=1)
    points = 80.0 * normals
    field = WarpField.random(np.random.default_rng(1), amplitude_mm=2.0, wavelength_mm=(80.0, 200.0), waves=4)
    moved, turned = field.move(points), field.turn(points, normals)
    shift = np.linalg.norm(moved - points, axis=1)
    assert 0.3 < np.median(shift) < 8.0
    # A warped sphere's normal stays orthogonal to the warped surface: check against finite differences.
    step = 1e-3
    tangent = np.cross(normals, [0.0, 0.0, 1.0])
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    ahead = field.move(points + step * tangent)
    direction = (ahead.astype(np.float64) - moved) / step
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    assert np.abs(np.einsum("ij,ij->i", direction, turned)).max() < 0.02
    assert np.allclose(np.linalg.norm(turned, axis=1), 1.0, atol=1e-5)


def test_a_network_with_the_prior_starts_as_the_one_without_it():
    torch.manual_seed(0)
    plain = PointCompletionNet(width=16, feature_dim=32, coarse_points=16, children=4, neighbours=4)
    with_prior = PointCompletionNet(width=16, feature_dim=32, coarse_points=16, children=4, neighbours=4, prior=True)
    missing, unexpected = with_prior.load_state_dict(plain.state_dict(), strict=False)
    assert unexpected == [] and missing and all(key.startswith("prior_") for key in missing)
    points, prior = torch.randn(2, 64, 6), torch.randn(2, 32, 6)
    for a, b in zip(plain(points), with_prior(points, prior)):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="prior"):
        with_prior(points)
    with pytest.raises(ValueError, match="prior"):
        plain(points, prior)
    # Once trained, the prior changes the output (its layers are live).
    torch.nn.init.normal_(with_prior.prior_fine.weight)
    assert not torch.equal(plain(points)[1], with_prior(points, prior)[1])


def test_pairs_carry_the_mirror_image_cropped_in_the_defect_frame():
    skull = lopsided_skull()
    cloud = volume_to_points(skull, 6000, seed=0, smoothing_voxels=0.0)
    implant = cloud.points[:, 0] > 60.0
    mirror = symmetry.mirrored_points(cloud.points, cloud.normals, symmetry.whole_skull_mirror(cloud.points, cloud.normals))
    case = CachedCase("x", cloud.points[~implant], cloud.normals[~implant], cloud.points[implant], cloud.normals[implant],
                      mirror_points=mirror[0].astype(np.float32), mirror_normals=mirror[1].astype(np.float32))
    sizes = SampleSizes(global_input=256, global_target=128, local_input=256, local_target=256, prior_input=256)
    warps = Warps(shape_mm=1.5, prior_mm=1.0)
    a = make_pair(case, sizes, np.random.default_rng(3), augment=True, warps=warps)
    b = make_pair(case, sizes, np.random.default_rng(3), augment=True, warps=warps)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["local_prior"].shape == (256, 6)
    # The mirror image of the left side lies where the right side's hole is: near the target.
    plain = make_pair(case, sizes, np.random.default_rng(3), augment=False)
    target = plain["local_target"].numpy()
    def gap(cloud: torch.Tensor) -> float:
        """Median distance from a target point to the nearest point of the cloud (normalised units)."""
        return float(np.median(np.linalg.norm(cloud[:, None, :3].numpy() - target[None], axis=-1).min(axis=0)))

    assert gap(plain["local_prior"]) < 0.6 * gap(plain["local_input"])  # the skull itself has a hole there
    with pytest.raises(ValueError, match="rebuild"):
        make_pair(CachedCase("y", case.skull_points, case.skull_normals, case.implant_points, case.implant_normals),
                  sizes, np.random.default_rng(0), augment=False)
