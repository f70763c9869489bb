"""pcc.io.dicom: CT series from synthetic DICOM files written with pydicom (geometry, order, refusals)."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
from pydicom.dataset import FileDataset, FileMetaDataset  # noqa: E402
from pydicom.encaps import encapsulate  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian, generate_uid  # noqa: E402

from pcc.errors import InputError  # noqa: E402
from pcc.io.dicom import SeriesInfo, list_series, read_series  # noqa: E402

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
ROWS, COLUMNS, SLICES = 6, 8, 5
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
PIXEL_SPACING = (0.7, 0.5)  # (between rows, between columns): different so a swap shows


def _oblique_orientation() -> tuple[float, ...]:
    """A non-axial orientation: row and column directions rotated about two axes (rounded as DS)."""
    a, b = np.radians(30.0), np.radians(20.0)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    rotation = rx @ rz
    return tuple(round(float(v), 6) for v in (*rotation[:, 0], *rotation[:, 1]))


def _write_slice(
    path: Path,
    stored: np.ndarray,
    ipp: np.ndarray,
    *,
    series_uid: str,
    study_uid: str,
    series_number: int,
    instance_number: int,
    orientation: tuple[float, ...] = AXIAL,
    pixel_spacing: tuple[float, float] = PIXEL_SPACING,
    modality: str = "CT",
    slope: float = 1.0,
    intercept: float = -1024.0,
    description: str = "head",
    compressed: bool = False,
) -> None:
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = JPEG_BASELINE if compressed else ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Synthetic^Patient"
    ds.PatientID = "SYN-0001"
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.InstanceNumber = instance_number
    ds.ImageOrientationPatient = [f"{v:.6f}" for v in orientation]
    ds.ImagePositionPatient = [f"{v:.6f}" for v in ipp]
    ds.PixelSpacing = [f"{v:g}" for v in pixel_spacing]
    ds.SliceThickness = "1"
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.RescaleSlope = f"{slope:g}"
    ds.RescaleIntercept = f"{intercept:g}"
    if compressed:
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelData = encapsulate([b"\xff\xd8\xff\xe0 this is not a JPEG stream \xff\xd9"])
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
    else:
        ds.PixelData = np.ascontiguousarray(stored, dtype="<i2").tobytes()
    if int(pydicom.__version__.split(".")[0]) >= 3:
        ds.save_as(path, enforce_file_format=True)
    else:  # pydicom 2.x
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(path, write_like_original=False)


def _make_series(
    folder: Path,
    rng: np.random.Generator,
    *,
    origin: tuple[float, float, float] = (-20.0, -15.0, 40.0),
    orientation: tuple[float, ...] = AXIAL,
    slice_step: np.ndarray | None = None,
    positions: list[float] | None = None,
    series_number: int = 3,
    series_uid: str | None = None,
    overrides: dict[int, dict] | None = None,
    **kwargs,
) -> dict:
    """Write one series of ROWS x COLUMNS slices in shuffled order with random names.

    Slice k (in position order) sits at origin + positions[k] * slice_step and holds stored[k]
    (rows, columns). InstanceNumbers are a permutation unrelated to position. Returns the truth.
    """
    folder.mkdir(parents=True, exist_ok=True)
    row_dir, col_dir = np.array(orientation[:3]), np.array(orientation[3:])
    if slice_step is None:
        slice_step = 1.25 * np.cross(row_dir, col_dir)
    positions = list(range(SLICES)) if positions is None else positions
    stored = rng.integers(-1000, 3000, size=(len(positions), ROWS, COLUMNS)).astype(np.int16)
    # rounded to the micrometre written into the files, so the truth is exactly what the files hold
    ipps = [np.round(np.asarray(origin) + p * np.asarray(slice_step), 6) for p in positions]
    series_uid = series_uid or generate_uid()
    study_uid = generate_uid()
    instance_numbers = rng.permutation(len(positions)) + 1
    overrides = overrides or {}
    for k in rng.permutation(len(positions)):
        _write_slice(
            folder / uuid.uuid4().hex,
            stored[k],
            ipps[k],
            series_uid=series_uid,
            study_uid=study_uid,
            series_number=series_number,
            instance_number=int(instance_numbers[k]),
            **{"orientation": orientation, **kwargs, **overrides.get(int(k), {})},
        )
    return {"stored": stored, "ipps": ipps, "series_uid": series_uid, "study_uid": study_uid}


def _expected_array(stored: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """(slices, rows, columns) stored values → (x=column, y=row, z=slice) HU."""
    return np.transpose(stored.astype(np.float64) * slope + intercept, (2, 1, 0))


def _check_geometry(volume, truth: dict, orientation: tuple[float, ...]) -> None:
    row_dir, col_dir = np.array(orientation[:3]), np.array(orientation[3:])
    ipps = truth["ipps"]
    slice_step = (ipps[-1] - ipps[0]) / (len(ipps) - 1)
    expected = np.stack([row_dir * PIXEL_SPACING[1], col_dir * PIXEL_SPACING[0], slice_step])
    np.testing.assert_allclose(volume.directions, expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(volume.origin, ipps[0], rtol=0, atol=1e-9)
    # the world position of every pixel from the Volume equals its IPP-based DICOM position
    for column, row, k in [(0, 0, 0), (7, 5, 4), (3, 2, 1), (6, 1, 3)]:
        dicom_world = ipps[k] + column * PIXEL_SPACING[1] * row_dir + row * PIXEL_SPACING[0] * col_dir
        np.testing.assert_allclose(volume.index_to_world(np.array([[column, row, k]]))[0], dicom_world, atol=1e-6)


def test_axial_series_in_shuffled_files_reads_in_position_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    # block k lies at z = 40 + 1.25 * (4 - k): position order (+z along the normal) is block 4, 3, 2, 1, 0
    truth = _make_series(tmp_path, rng, positions=[4, 3, 2, 1, 0])
    volume = read_series(tmp_path)
    assert volume.shape == (COLUMNS, ROWS, SLICES)
    assert volume.array.dtype == np.int16  # slope 1, integral intercept: exact in int16
    stored = truth["stored"][::-1]  # sorted by position along the normal (+z): last-written block first
    np.testing.assert_array_equal(volume.array, _expected_array(stored, 1.0, -1024.0))
    assert volume.array[7, 0, 0] == int(stored[0, 0, 7]) - 1024  # x = column, y = row
    assert volume.space == "left-posterior-superior"
    ipps = truth["ipps"][::-1]
    _check_geometry(volume, {"ipps": ipps}, AXIAL)
    np.testing.assert_allclose(volume.directions[2], [0.0, 0.0, 1.25])
    assert volume.header == {
        "SeriesInstanceUID": truth["series_uid"],
        "StudyInstanceUID": truth["study_uid"],
        "SeriesNumber": 3,
        "SeriesDescription": "head",
        "Modality": "CT",
    }


def test_non_integral_rescale_gives_float32_hounsfield(tmp_path: Path) -> None:
    truth = _make_series(tmp_path, np.random.default_rng(2), slope=0.5, intercept=-1000.5)
    volume = read_series(tmp_path)
    assert volume.array.dtype == np.float32
    np.testing.assert_allclose(volume.array, _expected_array(truth["stored"], 0.5, -1000.5), rtol=0, atol=1e-3)


def test_oblique_orientation_geometry_matches_dicom_positions(tmp_path: Path) -> None:
    orientation = _oblique_orientation()
    truth = _make_series(tmp_path, np.random.default_rng(3), orientation=orientation)
    volume = read_series(tmp_path)
    np.testing.assert_array_equal(volume.array, _expected_array(truth["stored"], 1.0, -1024.0))
    _check_geometry(volume, truth, orientation)
    assert abs(volume.directions[0] @ np.array([1.0, 0, 0])) < 0.5  # really not axial


def test_gantry_tilted_series_keeps_the_shear(tmp_path: Path) -> None:
    step = np.array([0.0, 0.35, 1.25])  # IPP moves in y as z increases: tilted gantry
    truth = _make_series(tmp_path, np.random.default_rng(4), slice_step=step)
    volume = read_series(tmp_path)
    np.testing.assert_array_equal(volume.array, _expected_array(truth["stored"], 1.0, -1024.0))
    np.testing.assert_allclose(volume.directions[2], step, atol=1e-9)
    _check_geometry(volume, truth, AXIAL)


def test_series_is_chosen_by_number_or_uid_and_non_dicom_files_are_ignored(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    first = _make_series(tmp_path, rng, series_number=2, description="bone")
    second = _make_series(tmp_path, rng, series_number=7, description="soft")
    (tmp_path / "notes.txt").write_text("not a DICOM file\n")
    (tmp_path / "junk.dcm").write_bytes(bytes(range(256)) * 3)
    (tmp_path / "DICOMDIR").write_bytes(b"\0" * 128 + b"DICM")

    found = list_series(tmp_path)
    assert [(s.number, s.description, s.modality, s.slice_count) for s in found] == [
        (2, "bone", "CT", SLICES),
        (7, "soft", "CT", SLICES),
    ]
    assert isinstance(found[0], SeriesInfo) and found[0].uid == first["series_uid"]
    assert len(found[1].files) == SLICES and all(p.parent == tmp_path for p in found[1].files)

    by_number = read_series(tmp_path, 7)
    np.testing.assert_array_equal(by_number.array, _expected_array(second["stored"], 1.0, -1024.0))
    assert read_series(tmp_path, "7").header["SeriesInstanceUID"] == second["series_uid"]
    by_uid = read_series(tmp_path, first["series_uid"])
    np.testing.assert_array_equal(by_uid.array, _expected_array(first["stored"], 1.0, -1024.0))


def test_several_series_without_a_choice_are_listed(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    _make_series(tmp_path, rng, series_number=2, description="bone")
    _make_series(tmp_path, rng, series_number=7, description="soft")
    with pytest.raises(InputError) as info:
        read_series(tmp_path)
    message = str(info.value)
    assert "2 series" in message and "#2 'bone'" in message and "#7 'soft'" in message
    assert f"{SLICES} slices" in message and "--series N or UID" in message and "\n" not in message


def test_unknown_series_choice_is_refused(tmp_path: Path) -> None:
    _make_series(tmp_path, np.random.default_rng(7), series_number=2)
    with pytest.raises(InputError, match=r"no series .* has number or UID '9'.*#2"):
        read_series(tmp_path, 9)


def test_non_ct_modality_is_refused(tmp_path: Path) -> None:
    _make_series(tmp_path, np.random.default_rng(8), modality="MR")
    with pytest.raises(InputError, match=r"modality 'MR', not CT"):
        read_series(tmp_path)


def test_single_slice_is_refused(tmp_path: Path) -> None:
    _make_series(tmp_path, np.random.default_rng(9), positions=[0])
    with pytest.raises(InputError, match=r"1 slice; a volume needs at least 2"):
        read_series(tmp_path)


def test_duplicated_slice_is_refused(tmp_path: Path) -> None:
    _make_series(tmp_path, np.random.default_rng(10), positions=[0, 1, 2, 2, 3])
    with pytest.raises(InputError, match=r"two slices at the same position .*duplicated slices"):
        read_series(tmp_path)


def test_missing_slice_is_refused_as_uneven_spacing(tmp_path: Path) -> None:
    _make_series(tmp_path, np.random.default_rng(11), positions=[0, 1, 2, 4, 5])
    with pytest.raises(InputError, match=r"uneven slice spacing \(found 1\.25, 2\.5 mm.*missing slices"):
        read_series(tmp_path)


def test_slices_off_one_straight_line_are_refused(tmp_path: Path) -> None:
    """A middle slice shifted 1 mm sideways: evenly spaced along the normal, yet not one grid."""
    truth = _make_series(tmp_path, np.random.default_rng(12))
    middle = truth["ipps"][2]
    for path in tmp_path.iterdir():
        ds = pydicom.dcmread(path)
        if np.allclose([float(v) for v in ds.ImagePositionPatient], middle):
            ds.ImagePositionPatient = [f"{middle[0] + 1.0:.6f}", f"{middle[1]:.6f}", f"{middle[2]:.6f}"]
            ds.save_as(path)
    with pytest.raises(InputError, match="do not lie on one straight line"):
        read_series(tmp_path)


def test_small_spacing_jitter_is_accepted(tmp_path: Path) -> None:
    # 1.25 mm steps with one slice 0.05 mm off: within max(10% of 1.25, 0.1) = 0.125 mm
    rng = np.random.default_rng(12)
    truth = _make_series(tmp_path, rng, positions=[0, 1, 2, 3.04, 4])
    volume = read_series(tmp_path)
    np.testing.assert_allclose(volume.directions[2], [0, 0, 1.25], atol=1e-9)
    np.testing.assert_array_equal(volume.array, _expected_array(truth["stored"], 1.0, -1024.0))


def test_mismatched_pixel_spacing_is_refused(tmp_path: Path) -> None:
    _make_series(tmp_path, np.random.default_rng(13), overrides={2: {"pixel_spacing": (0.7, 0.6)}})
    # which slice is compared with which depends on the random file names: either order is right
    with pytest.raises(InputError, match=r"PixelSpacing \[0.7, 0.[56]\] differing from \[0.7, 0.[56]\] .*one volume"):
        read_series(tmp_path)


def test_mismatched_orientation_is_refused(tmp_path: Path) -> None:
    _make_series(tmp_path, np.random.default_rng(14), overrides={1: {"orientation": (1.0, 0, 0, 0, 0, -1.0)}})
    with pytest.raises(InputError, match=r"ImageOrientationPatient \[1, 0, 0, 0, [01], -?[01]\] differing from \[1"):
        read_series(tmp_path)


def test_undecodable_compressed_pixel_data_names_the_decoders(tmp_path: Path) -> None:
    _make_series(tmp_path, np.random.default_rng(15), compressed=True)
    with pytest.raises(InputError) as info:
        read_series(tmp_path)
    message = str(info.value)
    assert "compressed transfer syntax" in message and JPEG_BASELINE in message
    assert "pylibjpeg" in message and "gdcm" in message and "\n" not in message


def test_missing_folder_and_folder_without_dicom_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist or is not a folder"):
        read_series(tmp_path / "absent")
    (tmp_path / "readme.txt").write_text("hello")
    with pytest.raises(InputError, match="holds no DICOM image series"):
        read_series(tmp_path)
    assert list_series(tmp_path) == []


def test_pcc_segment_reads_a_dicom_folder_onto_the_series_grid(tmp_path: Path, capsys) -> None:
    """`pcc segment FOLDER -o skull.nrrd`: the skull of a synthetic CT series (a bone shell at 1000 HU in
    water at 0 HU), written on the series' own grid; several series need --series."""
    from pcc.cli import main
    from pcc.io import read_volume

    rows, columns, slices = 20, 24, 12
    index = np.indices((slices, rows, columns)).astype(float)
    centre = (np.array([slices, rows, columns]) - 1) / 2.0
    radius = np.sqrt(sum(((index[a] - centre[a]) * s) ** 2 for a, s in enumerate((1.25, 0.7, 0.5))))
    shell = (radius > 4.0) & (radius < 5.5)
    stored = np.where(shell, 2024, 1024).astype(np.int16)  # HU = stored − 1024
    folder = tmp_path / "series"
    folder.mkdir()
    uid, study = generate_uid(), generate_uid()
    for k in np.random.default_rng(0).permutation(slices):
        _write_slice(folder / uuid.uuid4().hex, stored[k], np.array([-6.0, -7.0, 30.0 + 1.25 * k]), series_uid=uid,
                     study_uid=study, series_number=5, instance_number=int(k) + 1)
    output = tmp_path / "skull.nrrd"
    assert main(["segment", str(folder), "-o", str(output)]) == 0
    skull, ct = read_volume(output), read_series(folder)
    assert skull.same_grid(ct)
    assert np.array_equal(skull.mask(), np.transpose(shell, (2, 1, 0)))  # (slice, row, column) → (x, y, z)

    _write_slice(folder / "other", stored[0], np.array([0.0, 0.0, 0.0]), series_uid=generate_uid(), study_uid=study,
                 series_number=9, instance_number=1, description="scout")
    output.unlink()
    assert main(["segment", str(folder), "-o", str(output)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "--series" in error[0] and "scout" in error[0] and not output.exists()
    assert main(["segment", str(folder), "-o", str(output), "--series", "5"]) == 0
    assert np.array_equal(read_volume(output).mask(), np.transpose(shell, (2, 1, 0)))


def _example_as_dicom_ct(folder: Path) -> dict:
    """The bundled example case written as a DICOM CT series in HU by tools/release/example_dicom.py (bone removed,
    scalp over the hole); returns the removed bone, the defective skull's bone and the series UID."""
    from tools.release.example_dicom import example_ct_hu, write_series

    hu, skull, removed = example_ct_hu()
    uid = write_series(folder, hu, skull.directions, skull.origin, series_number=2, seed=1)
    return {"implant": removed, "bone": skull.mask(), "uid": uid}


@pytest.mark.slow
def test_pcc_implant_designs_from_a_dicom_ct_on_the_series_grid(tmp_path: Path) -> None:
    """`pcc implant SERIES --ct`: the CT is segmented and the implant lies on the series' grid in LPS; it
    fills the removed bone as well as the binary-skull path does (the example's pinned DSC is 0.920); the
    STL lines up with the volume; the report names the series and never the patient."""
    import json

    import trimesh

    from pcc.challenge.metrics import score_case
    from pcc.cli import main
    from pcc.io import read_volume

    truth = _example_as_dicom_ct(tmp_path / "series")
    out = tmp_path / "out"
    out.mkdir()
    args = ["implant", str(tmp_path / "series"), "--ct", "-o", str(out / "implant.nrrd"), "--stl", str(out / "implant.stl"),
            "--report", str(out / "run.json"), "--device", "cpu"]
    assert main(args) == 0
    implant, ct = read_volume(out / "implant.nrrd"), read_series(tmp_path / "series")
    assert implant.same_grid(ct) and implant.space == "left-posterior-superior"
    scores = score_case(implant.mask(), truth["implant"], truth["bone"], implant.spacing)
    assert scores.dsc > 0.91, scores

    mesh = trimesh.load(out / "implant.stl")
    world = np.argwhere(implant.mask()) @ implant.directions + implant.origin  # voxel centres, LPS mm
    assert np.all(np.abs(mesh.bounds - np.array([world.min(0), world.max(0)])) < 2.0), (mesh.bounds, world.min(0), world.max(0))

    report_text = (out / "run.json").read_text()
    case = json.loads(report_text)["cases"][0]
    assert case["ct"]["series"]["SeriesInstanceUID"] == truth["uid"] and case["ct"]["series"]["SeriesNumber"] == 2
    assert "Example^Skull005" not in report_text and "PCC-EXAMPLE-005" not in report_text
    assert "Example^Skull005" not in (out / "implant.nrrd").read_bytes()[:4096].decode("latin-1")


def test_pcc_implant_ct_refusals(tmp_path: Path, capsys) -> None:
    """--series without --ct, a binary mask given as a CT, and a DICOM folder without --ct: exit 2, one line each."""
    from pcc.cli import main
    from pcc.examples import EXAMPLE_DEFECTIVE

    out = str(tmp_path / "implant.nrrd")
    assert main(["implant", str(EXAMPLE_DEFECTIVE), "-o", out, "--series", "2"]) == 2
    assert "--ct" in capsys.readouterr().err
    assert main(["implant", str(EXAMPLE_DEFECTIVE), "--ct", "-o", out]) == 2
    assert "drop --ct" in capsys.readouterr().err
    _make_series(tmp_path / "series", np.random.default_rng(0))
    assert main(["implant", str(tmp_path / "series"), "-o", str(tmp_path / "implants")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "--ct" in error[0]
    assert not Path(out).exists()
