"""Reading a CT series from a folder of DICOM files as a Volume in Hounsfield units.

The Volume's array is indexed (x, y, z) = (column, row, slice), with slices ordered by their position
along the slice normal (InstanceNumber is ignored). World coordinates are millimetres in DICOM's
patient space, left-posterior-superior:

    world = origin + i * directions[0] + j * directions[1] + k * directions[2]

where directions[0] is the step between columns, directions[1] the step between rows and
directions[2] the step between consecutive slices' ImagePositionPatient (so gantry tilt, i.e.
sheared slices, is represented exactly).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pcc.errors import InputError
from pcc.volume import Volume

CT_MODALITY = "CT"
_DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
_DECODER_HINT = "pylibjpeg and pylibjpeg-libjpeg, or python-gdcm"
_DUPLICATE_TOL_MM = 0.01  # two slices closer than this along the normal are the same slice
_GEOMETRY_TOL = 1e-4  # tolerance for equal ImageOrientationPatient (unitless) and PixelSpacing (mm)


@dataclass(frozen=True)
class SeriesInfo:
    """One series found in a folder.

    Attributes:
        number: SeriesNumber, or None where the files lack it.
        uid: SeriesInstanceUID.
        description: SeriesDescription ('' where absent).
        modality: Modality, e.g. 'CT' ('' where absent).
        slice_count: number of files (images) in the series.
        files: the series' file paths, sorted by name.
    """

    number: int | None
    uid: str
    description: str
    modality: str
    slice_count: int
    files: tuple[Path, ...]

    def label(self) -> str:
        """A short one-line description: number, description, slice count and UID."""
        number = "?" if self.number is None else str(self.number)
        description = f" '{self.description}'" if self.description else ""
        return f"#{number}{description} ({self.modality or 'no modality'}, {self.slice_count} slices, UID {self.uid})"


def list_series(folder: str | os.PathLike) -> list[SeriesInfo]:
    """The DICOM series in `folder` (not its subfolders), sorted by series number then UID.

    Every file is tried whatever its name; files that are not DICOM, DICOMDIR files and DICOM files
    without a SeriesInstanceUID are skipped. Raises InputError when the folder does not exist.
    """
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root} does not exist or is not a folder: give the folder holding the DICOM files")
    groups: dict[str, list[tuple[Path, Any]]] = {}
    for path in sorted(p for p in root.iterdir() if p.is_file()):
        if path.name.upper() == "DICOMDIR":
            continue
        try:
            ds = dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, EOFError, ValueError, OSError):
            continue  # not DICOM (or not readable as DICOM): ignored
        meta = getattr(ds, "file_meta", None)
        if meta is not None and str(getattr(meta, "MediaStorageSOPClassUID", "")) == _DICOMDIR_SOP_CLASS:
            continue
        uid = str(getattr(ds, "SeriesInstanceUID", "") or "")
        if uid:
            groups.setdefault(uid, []).append((path, ds))
    series = []
    for uid, members in groups.items():
        first = members[0][1]
        series.append(
            SeriesInfo(
                number=_series_number(first),
                uid=uid,
                description=str(getattr(first, "SeriesDescription", "") or ""),
                modality=str(getattr(first, "Modality", "") or ""),
                slice_count=len(members),
                files=tuple(path for path, _ in members),
            )
        )
    series.sort(key=lambda s: (s.number is None, s.number if s.number is not None else 0, s.uid))
    return series


def read_series(folder: str | os.PathLike, series: str | int | None = None) -> Volume:
    """Read one CT series from `folder` as a Volume of Hounsfield units (int16, or float32 where the
    rescale is not integral), indexed (x=column, y=row, z=slice by position), world mm in LPS.

    `series` picks the series by SeriesNumber (an int, or a string of digits) or by SeriesInstanceUID;
    it may be None only when the folder holds a single series. Raises InputError for an ambiguous or
    unknown choice, a non-CT series, fewer than 2 slices, duplicated slices, uneven slice spacing,
    slices of differing geometry, and pixel data that cannot be decoded.
    """
    chosen = _choose_series(Path(folder), list_series(folder), series)
    name = f"series {chosen.label()}"
    if chosen.modality.upper() != CT_MODALITY:
        raise InputError(f"{name} has modality '{chosen.modality}', not CT; choose a CT series with --series N or UID")
    if chosen.slice_count < 2:
        raise InputError(f"{name} has {chosen.slice_count} slice; a volume needs at least 2: export the whole series")

    from pydicom import dcmread

    datasets = [dcmread(path) for path in chosen.files]
    geometry = [_slice_geometry(ds, path, name) for ds, path in zip(datasets, chosen.files)]
    _require_same_geometry(geometry, chosen.files, name)

    iop, pixel_spacing, rows, columns = geometry[0][1:]
    row_direction, column_direction = iop[:3], iop[3:]
    normal = np.cross(row_direction, column_direction)
    positions = np.array([float(np.dot(g[0], normal)) for g in geometry])
    order = np.argsort(positions, kind="stable")
    positions = positions[order]
    steps = np.diff(positions)
    for a, step in enumerate(steps):
        if step < _DUPLICATE_TOL_MM:
            first, second = chosen.files[order[a]].name, chosen.files[order[a + 1]].name
            raise InputError(
                f"{name} has two slices at the same position {positions[a]:.3f} mm ({first} and {second}): "
                f"duplicated slices; remove the duplicates or export the series again"
            )
    median = float(np.median(steps))
    tolerance = max(0.1 * median, 0.1)
    if np.any(np.abs(steps - median) > tolerance):
        found = ", ".join(f"{s:g}" for s in sorted({round(float(s), 3) for s in steps}))
        raise InputError(
            f"{name} has uneven slice spacing (found {found} mm; median {median:g} mm), e.g. missing slices; "
            f"export the complete series with evenly spaced slices"
        )

    first_ipp = geometry[order[0]][0]
    last_ipp = geometry[order[-1]][0]
    # One step per slice must place every slice: a stack whose in-plane shift varies is not one grid.
    expected = first_ipp + np.outer(np.arange(len(order)), (last_ipp - first_ipp) / (len(order) - 1))
    drift = np.linalg.norm(np.array([geometry[i][0] for i in order]) - expected, axis=1)
    if drift.max() > tolerance:
        raise InputError(
            f"{name}: slice positions do not lie on one straight line (a slice is {drift.max():.2f} mm off it, "
            f"more than {tolerance:g} mm); export the series again or resample it to a regular grid"
        )
    directions = np.stack(
        [
            row_direction * pixel_spacing[1],  # step between columns (array axis 0, x)
            column_direction * pixel_spacing[0],  # step between rows (array axis 1, y)
            (last_ipp - first_ipp) / (len(order) - 1),  # step between slices (array axis 2, z)
        ]
    )

    slices = []
    slopes, intercepts = [], []
    for index in order:
        ds, path = datasets[index], chosen.files[index]
        pixels = _pixel_array(ds, path, name)
        if pixels.shape != (rows, columns):
            raise InputError(
                f"{name}: {path.name} holds pixel data of shape {pixels.shape}, not one {rows}x{columns} "
                f"greyscale image (multi-frame or colour images are not supported); export single-frame CT slices"
            )
        slices.append(pixels.T)  # (rows, cols) -> (cols, rows) = (x, y)
        slopes.append(float(getattr(ds, "RescaleSlope", 1) or 1))
        intercepts.append(float(getattr(ds, "RescaleIntercept", 0) or 0))
    array = _to_hounsfield(np.stack(slices, axis=-1), np.array(slopes), np.array(intercepts))

    header = {
        "SeriesInstanceUID": chosen.uid,
        "StudyInstanceUID": str(getattr(datasets[0], "StudyInstanceUID", "") or ""),
        "SeriesNumber": chosen.number,
        "SeriesDescription": chosen.description,
        "Modality": chosen.modality,
    }
    return Volume(array, directions.astype(np.float64), first_ipp.astype(np.float64), "left-posterior-superior", header)


def _series_number(ds: Any) -> int | None:
    value = getattr(ds, "SeriesNumber", None)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _choose_series(folder: Path, found: list[SeriesInfo], series: str | int | None) -> SeriesInfo:
    if not found:
        raise InputError(f"{folder} holds no DICOM image series; give the folder holding the CT's DICOM files")
    listing = "; ".join(s.label() for s in found)
    if series is None:
        if len(found) == 1:
            return found[0]
        raise InputError(f"{folder} holds {len(found)} series: {listing}; choose one with --series N or UID")
    text = str(series).strip()
    matches = [s for s in found if s.uid == text]
    if not matches and text.lstrip("+-").isdigit():
        matches = [s for s in found if s.number == int(text)]
    if not matches:
        raise InputError(f"no series in {folder} has number or UID '{text}'; found: {listing}")
    if len(matches) > 1:
        listing = "; ".join(s.label() for s in matches)
        raise InputError(f"several series in {folder} have number {text}: {listing}; choose one by its UID")
    return matches[0]


def _slice_geometry(ds: Any, path: Path, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """(IPP (3,), IOP (6,), PixelSpacing (row spacing, column spacing), Rows, Columns) of one slice."""
    try:
        ipp = np.asarray([float(v) for v in ds.ImagePositionPatient], dtype=np.float64)
        iop = np.asarray([float(v) for v in ds.ImageOrientationPatient], dtype=np.float64)
        spacing = np.asarray([float(v) for v in ds.PixelSpacing], dtype=np.float64)
        rows, columns = int(ds.Rows), int(ds.Columns)
    except (AttributeError, TypeError, ValueError) as error:
        raise InputError(
            f"{name}: {path.name} lacks usable ImagePositionPatient, ImageOrientationPatient, PixelSpacing, Rows "
            f"or Columns ({error}); export the series with its geometry"
        ) from None
    if ipp.shape != (3,) or iop.shape != (6,) or spacing.shape != (2,) or not np.all(spacing > 0):
        raise InputError(f"{name}: {path.name} has malformed position, orientation or pixel spacing; re-export it")
    return ipp, iop, spacing, rows, columns


def _require_same_geometry(geometry: list[tuple], files: tuple[Path, ...], name: str) -> None:
    _, iop0, spacing0, rows0, columns0 = geometry[0]
    for (_, iop, spacing, rows, columns), path in zip(geometry[1:], files[1:]):
        problem = ""
        if not np.allclose(iop, iop0, atol=_GEOMETRY_TOL, rtol=0):
            problem = f"ImageOrientationPatient {_fmt(iop)} differing from {_fmt(iop0)}"
        elif not np.allclose(spacing, spacing0, atol=_GEOMETRY_TOL, rtol=0):
            problem = f"PixelSpacing {_fmt(spacing)} differing from {_fmt(spacing0)}"
        elif (rows, columns) != (rows0, columns0):
            problem = f"Rows x Columns {rows}x{columns} differing from {rows0}x{columns0}"
        if problem:
            raise InputError(
                f"{name}: slice {path.name} has {problem} of {files[0].name}; the slices do not form one volume, "
                f"export the series again or choose another"
            )


def _fmt(values: np.ndarray) -> str:
    return "[" + ", ".join(f"{float(v):g}" for v in values) + "]"


def _pixel_array(ds: Any, path: Path, name: str) -> np.ndarray:
    """The slice's stored values as (rows, columns); InputError when they cannot be decoded."""
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        return np.asarray(ds.pixel_array)
    except Exception as error:  # pydicom raises several types for missing decoders and bad data
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        if syntax is not None and getattr(syntax, "is_compressed", False):
            raise InputError(
                f"{name}: {path.name} uses compressed transfer syntax {syntax.name} ({syntax}) that pydicom could not "
                f"decode; install {_DECODER_HINT}, or export the series uncompressed"
            ) from None
        raise InputError(f"{name}: {path.name} has unreadable pixel data ({detail}); export the series again") from None


def _to_hounsfield(stored: np.ndarray, slopes: np.ndarray, intercepts: np.ndarray) -> np.ndarray:
    """HU = stored * slope + intercept per slice (last axis); int16 where exact, float32 otherwise."""
    if np.all(slopes == 1) and np.all(intercepts == np.round(intercepts)) and stored.dtype.kind in "iu":
        low = int(stored.min()) + int(intercepts.min())
        high = int(stored.max()) + int(intercepts.max())
        if -32768 <= low and high <= 32767:
            return (stored.astype(np.int32) + intercepts.astype(np.int32)).astype(np.int16)
    return (stored.astype(np.float32) * slopes.astype(np.float32) + intercepts.astype(np.float32)).astype(np.float32)
