"""Plates for the printer (pcc.design.plate): uniform thickness under the outer surface, perforations,
the independent thickness estimate and the option checks, on synthetic spherical skulls."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TILTED_DIRECTIONS
from scipy import ndimage
from scipy.spatial import cKDTree

from pcc.design.plate import (
    HOLE_MIN_VOXELS,
    check_plate_options,
    cut_holes,
    parse_holes,
    plan_holes,
    plate_thickness_mm,
    uniform_plate,
)
from pcc.errors import InputError
from pcc.outputs.printing import check_printable, printable_mesh, solid_mask
from pcc.volume import Volume

RADIUS = 85.0  # outer radius (mm) of the synthetic skull, centred at the world origin


def skull_cap(voxel: float = 0.6, *, directions=None, thickness: float = 7.0, half_defect: float = 25.0,
              half_box: float = 35.0, gap: float = 0.0) -> tuple[Volume, Volume]:
    """(defective, implant) on one grid: the top of a spherical skull (outer radius RADIUS, `thickness` mm of
    bone) with a square defect of side 2·half_defect mm, and the implant that fills it (`gap` mm short of
    the bone all round). World mm, the sphere's centre at the origin."""
    d = np.eye(3) * voxel if directions is None else np.asarray(directions, float)
    lower = np.array([-half_box, -half_box, RADIUS - thickness - 28.0])
    upper = np.array([half_box, half_box, RADIUS + 3.0])
    shape = np.ceil(np.abs(np.linalg.solve(d.T, upper - lower))).astype(int) + 1
    origin = lower + np.array([0.137, -0.21, 0.05])
    i, j, k = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij", sparse=True)
    x, y, z = (origin[a] + i * d[0, a] + j * d[1, a] + k * d[2, a] for a in range(3))
    r = np.sqrt(x * x + y * y + z * z)
    shell = (r <= RADIUS) & (r >= RADIUS - thickness)
    side = np.maximum(np.abs(x), np.abs(y))
    defect = (side < half_defect) & (z > 0)
    implant = shell & (side < half_defect - gap) & (z > 0)
    return Volume((shell & ~defect).astype(np.uint8), d, origin), Volume(implant.astype(np.uint8), d, origin)


def radii(volume: Volume, mask: np.ndarray) -> np.ndarray:
    """Distance (mm) of the mask's voxel centres from the skull's centre."""
    return np.linalg.norm(volume.index_to_world(np.argwhere(mask)), axis=1)


def spherical_shell(voxel: float, thickness: float, inner: float = 10.0) -> Volume:
    outer = inner + thickness
    n = int(np.ceil(2 * (outer + 2) / voxel))
    centre = (n - 1) / 2 + 0.3
    grid = np.ogrid[:n, :n, :n]
    r = np.sqrt(sum(((g - centre) * voxel) ** 2 for g in grid))
    return Volume(((r >= inner) & (r <= outer)).astype(np.uint8), np.eye(3) * voxel, np.zeros(3))


@pytest.mark.parametrize("voxel", [0.4, 0.63])
@pytest.mark.parametrize("thickness", [3.0, 5.0, 7.0])
def test_thickness_estimate_reads_spherical_shells_within_a_tenth_of_a_mm(voxel, thickness):
    values = plate_thickness_mm(spherical_shell(voxel, thickness))
    assert abs(np.median(values) - thickness) <= 0.1, (voxel, thickness, np.median(values))


@pytest.mark.parametrize("directions", [np.eye(3) * 0.6, TILTED_DIRECTIONS], ids=["iso", "tilted"])
def test_uniform_plate_is_the_thickness_under_the_outer_surface(directions):
    defective, implant = skull_cap(directions=directions)
    plate = uniform_plate(implant, defective, 5.0)
    mask, bone, voxel = plate.mask(), defective.mask(), float(implant.spacing.max())
    # independent figure, away from the rim
    values = plate_thickness_mm(plate, defective, min_rim_distance_mm=5.0)
    assert abs(np.median(values) - 5.0) <= 0.3, np.median(values)
    # the truth: the sphere's outer 5 mm of the implant, no more, no less
    depth = RADIUS - radii(plate, mask)
    assert depth.max() <= 5.0 + voxel and np.percentile(depth, 99) <= 5.0 + voxel / 2
    removed = RADIUS - radii(implant, implant.mask() & ~mask)
    assert removed.min() >= 5.0 - voxel
    assert not (mask & bone).any()  # clear of the skull
    assert (ndimage.binary_dilation(mask) & bone).sum() > 100  # still meets the bone at the rim
    mesh = printable_mesh(plate)
    assert check_printable(mesh, plate, solid=solid_mask(plate))["ok"]


def test_a_thicker_plate_grows_inward_only_under_the_defect():
    defective, implant = skull_cap()  # 7 mm
    plate = uniform_plate(implant, defective, 9.0)
    mask = plate.mask()
    assert abs(np.median(plate_thickness_mm(plate, defective)) - 9.0) <= 0.3
    assert not (mask & defective.mask()).any()
    world = plate.index_to_world(np.argwhere(mask))
    assert np.abs(world[:, :2]).max() <= 25.0 + 1.0  # no lip under the bone beside the defect
    assert (RADIUS - np.linalg.norm(world, axis=1)).max() <= 9.0 + 0.6


def test_outer_side_is_found_when_the_implant_leaks_round_the_rim():
    """A 1 mm gap between implant and bone joins the outside and the cranial cavity into one background."""
    defective, implant = skull_cap(gap=1.0)
    plate = uniform_plate(implant, defective, 4.0)
    depth = RADIUS - radii(plate, plate.mask())
    assert depth.max() <= 4.0 + 0.6 and depth.min() <= 0.6  # the outer 4 mm, not the inner
    assert abs(np.median(plate_thickness_mm(plate, defective)) - 4.0) <= 0.3


def genus(mesh) -> float:
    return (2 - mesh.euler_number) / 2


def test_holes_on_a_skullfix_sized_defect_are_clean_tunnels():
    """An 80×80 mm defect in a skull at 0.45 mm voxels, a 7 mm plate: holes 2:10, margin 5."""
    defective, implant = skull_cap(0.45, half_defect=40.0, half_box=52.0)
    plan = plan_holes(implant, defective, 2.0, 10.0, 5.0)
    assert plan.count >= 5
    holed = cut_holes(implant, plan)
    mesh = printable_mesh(holed)
    assert mesh.is_watertight and len(mesh.split(only_watertight=False)) == 1
    assert genus(mesh) == plan.count
    assert check_printable(mesh, holed, solid=solid_mask(holed))["ok"]
    bone = defective.mask()
    surface = bone & ~ndimage.binary_erosion(bone)
    to_bone = cKDTree(defective.index_to_world(np.argwhere(surface))).query(plan.centres_mm)[0]
    assert to_bone.min() >= 5.0 - 1.0
    # an even grid: nearest neighbours about one spacing apart (never closer), on the outer surface
    gaps = cKDTree(plan.centres_mm).query(plan.centres_mm, k=2)[0][:, 1]
    assert gaps.min() >= 10.0 - 0.5 and np.median(gaps) <= 10.0 * 1.1
    assert np.abs(np.linalg.norm(plan.centres_mm, axis=1) - RADIUS).max() <= 0.6
    radial = plan.centres_mm / np.linalg.norm(plan.centres_mm, axis=1, keepdims=True)
    assert np.einsum("ij,ij->i", plan.normals, radial).min() >= 0.98  # drilled along the outward normal
    report = plan.report()
    assert report["count"] == plan.count and report["diameter_mm"] == 2.0 and report["spacing_mm"] == 10.0
    assert np.shape(report["centres_mm"]) == (plan.count, 3)
    # nothing is left inside a hole: voxel centres within the radius of an axis are all gone
    left = holed.index_to_world(np.argwhere(holed.mask()))
    near = cKDTree(left).query_ball_point(plan.centres_mm - 3.5 * plan.normals, 0.99)
    assert all(len(found) == 0 for found in near)


def test_holes_through_a_thinned_plate_on_a_tilted_grid():
    defective, implant = skull_cap(directions=TILTED_DIRECTIONS)
    plate = uniform_plate(implant, defective, 5.0)
    plan = plan_holes(plate, defective, 2.0, 8.0, 4.0)
    holed = cut_holes(plate, plan)
    mesh = printable_mesh(holed)
    assert plan.count >= 9 and mesh.is_watertight and mesh.body_count == 1 and genus(mesh) == plan.count
    assert not (holed.mask() & defective.mask()).any()


def test_holes_too_fine_for_the_grid_or_without_room_are_refused():
    defective, implant = skull_cap(1.0, half_box=32.0)
    with pytest.raises(InputError, match="voxels"):
        plan_holes(implant, defective, HOLE_MIN_VOXELS * 1.0 - 0.2, 10.0, 5.0)
    with pytest.raises(InputError, match="hole-margin"):
        plan_holes(implant, defective, 3.0, 10.0, 40.0)


@pytest.mark.parametrize(
    "thickness, holes, margin, words",
    [
        (0.0, None, 5.0, "--thickness"),
        (-2.0, None, 5.0, "--thickness"),
        (15.5, None, 5.0, "at most 15"),
        (float("nan"), None, 5.0, "--thickness"),
        (None, (10.0, 2.0), 5.0, "smaller than the spacing"),
        (None, (2.0, 2.0), 5.0, "smaller than the spacing"),
        (None, (0.0, 10.0), 5.0, "above 0"),
        (None, (2.0, 10.0), 0.5, "--hole-margin"),
        (None, (2.0, 10.0), -1.0, "--hole-margin"),
    ],
)
def test_bad_plate_options_say_what_to_change(thickness, holes, margin, words):
    with pytest.raises(InputError, match=words) as error:
        check_plate_options(thickness, holes, margin)
    assert "\n" not in str(error.value)


def test_good_plate_options_and_hole_strings():
    check_plate_options(5.0, (2.0, 10.0), 5.0)
    check_plate_options(15.0, None, 5.0)
    check_plate_options(None, None, 0.0)
    assert parse_holes("2:10") == (2.0, 10.0)
    with pytest.raises(InputError, match="DIAMETER:SPACING"):
        parse_holes("2x10")
