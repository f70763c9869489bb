"""Volumes keep their geometry through every reader and writer, bit for bit."""

from __future__ import annotations

from collections import defaultdict

import nrrd
import numpy as np
import pytest
from conftest import TILTED_DIRECTIONS, hollow_ellipsoid

from pcc.errors import InputError
from pcc.io import read_volume, write_volume
from pcc.volume import Volume, require_binary


@pytest.mark.parametrize(
    "directions",
    [np.diag([0.390625, 0.390625, 0.625]), TILTED_DIRECTIONS, np.array([[0.0, 0.5, 0.0], [-0.4, 0.0, 0.1], [0.0, 0.0, 0.7]])],
    ids=["diagonal", "gantry-tilt", "permuted"],
)
def test_nrrd_geometry_round_trip_bit_for_bit(tmp_path, directions):
    array = hollow_ellipsoid((20, 18, 16), radii=(8, 7, 6), thickness=2, hole_radius=3).astype(np.int32)
    volume = Volume(array, directions, np.array([-120.2, -127.84611717999999, -10.215863560000001]))
    path = tmp_path / "v.nrrd"
    write_volume(path, volume)

    data, header = nrrd.read(str(path))
    assert header["type"] in ("uint8", "unsigned char")
    assert header["encoding"] == "gzip"
    assert header["space"] == "left-posterior-superior"
    assert tuple(header["sizes"]) == array.shape
    assert np.array_equal(header["space directions"], directions)  # exact, no tolerance
    assert np.array_equal(header["space origin"], volume.origin)
    assert np.array_equal(data, array.astype(np.uint8))

    again = read_volume(path)
    assert again.shape == volume.shape and again.space == volume.space
    assert np.array_equal(again.directions, volume.directions) and np.array_equal(again.origin, volume.origin)


def test_every_real_header_survives_write(shared_data, tmp_path):
    """write_volume → nrrd.read_header keeps sizes, directions and origin of every SkullFix file.

    Files of one case share their geometry, so each distinct geometry is written once (zeros, on the
    file's full grid) and compared with every file that has it.
    """
    skullfix = shared_data / "skullfix"
    files = sorted(skullfix.glob("training_set/*/*.nrrd")) + sorted(skullfix.glob("additional_test_set/*.nrrd"))
    assert len(files) >= 80, f"expected the 70×3 + 10 SkullFix files, found {len(files)}"
    groups: dict[bytes, list] = defaultdict(list)
    for path in files:
        header = nrrd.read_header(str(path))
        key = b"".join(np.asarray(header[k], dtype=np.float64).tobytes() for k in ("sizes", "space directions", "space origin"))
        groups[key].append((path, header))
    tilted = 0
    for number, members in enumerate(groups.values()):
        _, header = members[0]
        directions = np.asarray(header["space directions"], dtype=np.float64)
        tilted += int(np.count_nonzero(directions - np.diag(np.diag(directions))) > 0)
        volume = Volume(
            np.zeros(tuple(int(s) for s in header["sizes"]), dtype=np.uint8, order="F"),
            directions,
            np.asarray(header["space origin"], dtype=np.float64),
            str(header["space"]),
        )
        out = tmp_path / f"{number}.nrrd"
        write_volume(out, volume)
        written = nrrd.read_header(str(out))
        out.unlink()
        for path, original in members:
            assert np.array_equal(written["sizes"], original["sizes"]), path
            assert np.array_equal(written["space directions"], original["space directions"]), path
            assert np.array_equal(written["space origin"], original["space origin"]), path
            assert written["space"] == original["space"], path
    assert tilted > 0, "the data set should contain gantry-tilted scans"


def test_real_int32_file_reads_with_geometry(shared_data):
    path = shared_data / "skullfix/training_set/implant/000.nrrd"
    volume = require_binary(read_volume(path))
    header = nrrd.read_header(str(path))
    assert volume.shape == tuple(header["sizes"])
    assert np.array_equal(volume.directions, header["space directions"])
    assert np.array_equal(volume.origin, header["space origin"])


def test_index_world_round_trip_with_tilt():
    origin = np.array([-120.2, -127.8, -10.2])
    volume = Volume(np.zeros((4, 5, 6), np.uint8), TILTED_DIRECTIONS, origin)
    ijk = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [3.5, 2.25, 5.0]])
    world = volume.index_to_world(ijk)
    assert np.allclose(world[0], origin)
    for axis in range(3):  # one step along an array axis moves by that axis's direction row
        assert np.allclose(world[axis + 1] - world[0], TILTED_DIRECTIONS[axis])
    # the tilt couples j and k: a pure k step moves along y too
    assert abs(world[3, 1] - world[0, 1]) > 0.05
    assert np.allclose(volume.world_to_index(world), ijk)
    homogeneous = volume.affine @ np.c_[ijk, np.ones(len(ijk))].T
    assert np.allclose(homogeneous[:3].T, world)
    assert np.allclose(volume.spacing, np.linalg.norm(TILTED_DIRECTIONS, axis=1))


def test_nifti_round_trip_keeps_the_affine(tmp_path):
    array = hollow_ellipsoid((20, 18, 16), radii=(8, 7, 6), thickness=2, hole_radius=3)
    volume = Volume(array, TILTED_DIRECTIONS, np.array([10.0, -20.0, 30.0]))
    for name in ("v.nii.gz", "v.nii"):
        write_volume(tmp_path / name, volume)
        again = read_volume(tmp_path / name)
        assert np.array_equal(again.array, array)
        assert np.allclose(again.affine, volume.affine, atol=1e-5)  # NIfTI stores float32
        assert np.allclose(again.index_to_world([[3, 4, 5]]), volume.index_to_world([[3, 4, 5]]), atol=1e-4)


def test_reads_float_volumes_and_rejects_bad_ones(tmp_path):
    good = tmp_path / "float.nrrd"
    nrrd.write(str(good), np.ones((3, 4, 5), np.float32), {"space": "left-posterior-superior", "space directions": np.eye(3), "space origin": np.zeros(3)})
    assert read_volume(good).array.dtype == np.float32

    flat = tmp_path / "flat.nrrd"
    nrrd.write(str(flat), np.ones((3, 4), np.uint8))
    with pytest.raises(InputError, match="2-D"):
        read_volume(flat)
    text = tmp_path / "text.nrrd"
    text.write_text("not a volume\n")
    with pytest.raises(InputError, match="not a readable NRRD"):
        read_volume(text)
    with pytest.raises(InputError, match="does not exist"):
        read_volume(tmp_path / "missing.nrrd")


def test_require_binary():
    grid = (np.eye(3), np.zeros(3))
    mask = hollow_ellipsoid((12, 12, 12), radii=(5, 5, 5), thickness=2, hole_radius=2)
    assert require_binary(Volume(mask.astype(np.int32), *grid)) is not None
    assert require_binary(Volume(mask.astype(bool), *grid)) is not None
    for bad, message in (
        (mask * 2, "not binary"),
        (np.zeros((4, 4, 4)), "empty"),
        (np.ones((4, 4, 4)), "every voxel"),
        (np.full((4, 4, 4), np.nan), "NaN"),
    ):
        with pytest.raises(InputError, match=message):
            require_binary(Volume(bad, *grid))


def test_write_is_atomic_and_refuses_missing_folder(tmp_path):
    volume = Volume(np.ones((2, 2, 2), np.uint8), np.eye(3), np.zeros(3))
    with pytest.raises(InputError, match="does not exist"):
        write_volume(tmp_path / "nope" / "v.nrrd", volume)
    write_volume(tmp_path / "v.nrrd", volume)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.nrrd"]  # no temporary file left
