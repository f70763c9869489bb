"""Property-based test of the volume reader: generated NRRD headers and data, valid or broken.

Whatever the bytes, read_volume (and require_binary after it) either gives a usable 3-D Volume or
raises InputError (exit status 2 on the command line) — never another exception. A whole, well-formed
3-D file is accepted with the shape, directions, origin and values that were written; a whole file
with a bad header (sizes, dimension, non-finite or degenerate geometry) is refused.
"""

from __future__ import annotations

import gzip
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pcc.errors import InputError
from pcc.io import read_volume
from pcc.volume import Volume, require_binary

NRRD_TYPES = {
    "int8": "i1", "uint8": "u1", "int16": "i2", "uint16": "u2", "int32": "i4", "uint32": "u4",
    "int64": "i8", "uint64": "u8", "float": "f4", "double": "f8",
}
NUMBERS = st.one_of(
    st.floats(min_value=-3, max_value=3, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, 0.45, 1.0, math.nan, math.inf, -0.0]),
)


def _vector(values) -> str:
    return "(" + ",".join(repr(float(v)) if math.isfinite(v) else ("nan" if math.isnan(v) else "inf") for v in values) + ")"


@st.composite
def nrrd_files(draw, valid: bool = False) -> tuple[bytes, dict]:
    """The bytes of an NRRD file (header + data) and a description of what was drawn, with
    expect: "valid" (read it, with this geometry), "invalid" (refuse it) or "either" (a flipped byte, or a
    gzip stream cut short, perhaps only in its CRC trailer, which the reader does not need).
    valid=True draws only whole 3-D files with finite geometry."""
    numbers = st.floats(min_value=-3, max_value=3, allow_nan=False, allow_infinity=False) if valid else NUMBERS
    type_name = draw(st.sampled_from(sorted(NRRD_TYPES)))
    dimension = 3 if valid else draw(st.integers(1, 4))
    sizes = draw(st.lists(st.integers(1, 5), min_size=dimension, max_size=dimension))
    endian = draw(st.sampled_from(["little", "big"]))
    encoding = draw(st.sampled_from(["raw", "gzip"]))
    dtype = np.dtype(NRRD_TYPES[type_name]).newbyteorder("<" if endian == "little" else ">")
    values = draw(st.sampled_from(["binary", "zeros", "ones", "any"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    count = int(np.prod(sizes))
    if values == "binary":
        data = rng.integers(0, 2, count)
    elif values == "zeros":
        data = np.zeros(count)
    elif values == "ones":
        data = np.ones(count)
    else:
        data = rng.normal(0, 100, count)
        if dtype.kind == "f" and count:
            data[rng.integers(count)] = draw(st.sampled_from([math.nan, math.inf, 0.5]))
    with np.errstate(invalid="ignore", over="ignore"):
        payload = np.asarray(data).astype(dtype).tobytes()
    lines = ["NRRD0004", f"type: {type_name}", f"dimension: {dimension}"]
    claimed = list(sizes)
    if not valid and draw(st.booleans()) and draw(st.booleans()):  # a header whose sizes disagree with the data
        axis = draw(st.integers(0, dimension - 1))
        claimed[axis] = max(0, claimed[axis] + draw(st.sampled_from([-1, 1, 7])))
    lines.append("sizes: " + " ".join(map(str, claimed)))
    geometry = draw(st.sampled_from(["none", "directions", "spacings"]))
    directions, origin, good_geometry = np.eye(3), np.zeros(3), True
    if geometry == "directions":
        space_dimension = 3 if valid else draw(st.sampled_from([3, 3, 3, 2]))
        lines.append("space: left-posterior-superior" if space_dimension == 3 else "space dimension: 2")
        rows = [draw(st.lists(numbers, min_size=space_dimension, max_size=space_dimension)) for _ in range(dimension)]
        vectors = [_vector(row) for row in rows]
        if dimension == 4 and draw(st.booleans()):
            vectors[3] = "none"
        lines.append("space directions: " + " ".join(vectors))
        directions = np.array(rows, dtype=np.float64)
        if draw(st.booleans()):
            origin = np.array(draw(st.lists(numbers, min_size=space_dimension, max_size=space_dimension)), float)
            lines.append("space origin: " + _vector(origin))
        good_geometry = space_dimension == 3
    elif geometry == "spacings":
        count_spacings = 3 if valid else draw(st.sampled_from([dimension, dimension, max(1, dimension - 1)]))
        spacings = draw(st.lists(numbers, min_size=count_spacings, max_size=count_spacings))
        lines.append("spacings: " + " ".join(repr(v) if math.isfinite(v) else "nan" for v in spacings))
        directions = np.diag(spacings) if count_spacings == 3 else np.eye(3)
        good_geometry = count_spacings == 3
    good_geometry = (good_geometry and dimension == 3 and np.all(np.isfinite(directions)) and np.all(np.isfinite(origin))
                     and abs(np.linalg.det(directions)) >= 1e-12)
    lines += [f"endian: {endian}", f"encoding: {encoding}"]
    body = gzip.compress(payload, compresslevel=1) if encoding == "gzip" else payload
    blob = ("\n".join(lines) + "\n\n").encode() + body
    cut = "whole" if valid else draw(st.sampled_from(["whole", "whole", "truncated", "flipped"]))
    if cut == "truncated":
        blob = blob[: draw(st.integers(0, len(blob) - 1))]
    elif cut == "flipped" and body:
        at = len(blob) - len(body) + draw(st.integers(0, len(body) - 1))
        blob = blob[:at] + bytes([blob[at] ^ 0x5A]) + blob[at + 1 :]
    if cut == "flipped" or (cut == "truncated" and encoding == "gzip"):
        # raw data with a changed byte is still a valid file; a gzip stream cut in its CRC trailer holds all its data
        expect = "either"
    else:
        expect = "valid" if cut == "whole" and claimed == sizes and good_geometry else "invalid"
    with np.errstate(invalid="ignore", over="ignore"):
        written = np.asarray(data).astype(dtype).reshape(sizes, order="F")  # NRRD: the first axis varies fastest
    return blob, {"sizes": sizes, "claimed": claimed, "cut": cut, "values": values, "geometry": geometry,
                  "expect": expect, "directions": directions, "origin": origin, "array": written}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(nrrd_files())
def test_reader_gives_a_valid_volume_or_an_input_error(tmp_path, case):
    blob, drawn = case
    path = tmp_path / "fuzz.nrrd"
    path.write_bytes(blob)
    event(f"expected {drawn['expect']}")
    try:
        volume = read_volume(path)
    except InputError as error:
        assert str(error) and "\n" not in str(error)  # one line for the command line
        assert drawn["expect"] != "valid", f"a valid file was refused: {error}"
        return
    assert drawn["expect"] != "invalid", "a file with a bad header or truncated data was read as valid"
    if drawn["expect"] == "valid":
        _assert_as_written(volume, drawn)
    assert isinstance(volume, Volume)
    assert volume.array.ndim == 3 and min(volume.shape) >= 1
    assert volume.directions.shape == (3, 3) and np.all(np.isfinite(volume.directions))
    assert np.all(np.isfinite(volume.origin)) and volume.voxel_volume > 0
    try:
        require_binary(volume, path)
    except InputError as error:
        assert "\n" not in str(error)
    else:
        mask = volume.mask()
        assert 0 < mask.sum() < mask.size


def _assert_as_written(volume: Volume, drawn: dict) -> None:
    assert volume.shape == tuple(drawn["sizes"])
    assert np.array_equal(volume.directions, drawn["directions"])  # rows: the world step of each array axis
    assert np.array_equal(volume.origin, drawn["origin"])
    assert np.array_equal(volume.array, drawn["array"], equal_nan=drawn["array"].dtype.kind == "f")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(nrrd_files(valid=True))
def test_reader_reads_valid_files_as_written(tmp_path, case):
    blob, drawn = case
    path = tmp_path / "valid.nrrd"
    path.write_bytes(blob)
    if drawn["expect"] == "invalid":  # a degenerate (zero-volume) direction matrix: refused, with one line
        with pytest.raises(InputError, match="degenerate"):
            read_volume(path)
        return
    _assert_as_written(read_volume(path), drawn)
