"""The conversion commands through the real command line (a subprocess, as users run it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nrrd
import numpy as np
import pytest

from conftest import TILTED_DIRECTIONS, hollow_ellipsoid
from pcc.io import read_cloud


def pcc(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pcc.cli", *map(str, args)], capture_output=True, text=True, timeout=120
    )


@pytest.fixture()
def case(tmp_path) -> Path:
    """A binary tilted-grid volume written as int32 gzip NRRD, like the real files."""
    path = tmp_path / "implant.nrrd"
    array = hollow_ellipsoid((40, 36, 32), radii=(16, 14, 12), thickness=4, hole_radius=6).astype(np.int32)
    nrrd.write(
        str(path), array,
        {"space": "left-posterior-superior", "space directions": TILTED_DIRECTIONS, "space origin": np.array([-12.0, 3.5, 7.25]), "encoding": "gzip"},
    )
    return path


def test_help_has_an_example_per_command_and_version():
    for command in ("to-points", "to-volume", "mesh"):
        result = pcc(command, "--help")
        assert result.returncode == 0
        assert "example:" in result.stdout and f"pcc {command} " in result.stdout.split("example:")[1]
    result = pcc("--version")
    assert result.returncode == 0 and result.stdout.startswith("pcc ")


def test_round_trip_through_the_cli(tmp_path, case):
    before = case.read_bytes(), case.stat().st_mtime_ns
    cloud_path = tmp_path / "cloud.npz"
    result = pcc("to-points", case, "-o", cloud_path, "-n", "6000")
    assert result.returncode == 0, result.stderr
    cloud = read_cloud(cloud_path)
    assert len(cloud) == 6000 and cloud.normals is not None

    out = tmp_path / "again.nrrd"
    result = pcc("to-volume", cloud_path, "-o", out, "--like", case)
    assert result.returncode == 0, result.stderr
    data, header = nrrd.read(str(out))
    original, original_header = nrrd.read(str(case))
    assert data.dtype == np.uint8 and header["encoding"] == "gzip"
    assert np.array_equal(header["space directions"], original_header["space directions"])
    assert np.array_equal(header["space origin"], original_header["space origin"])
    dice = 2 * np.count_nonzero(data & (original != 0)) / (np.count_nonzero(data) + np.count_nonzero(original))
    assert dice > 0.95

    result = pcc("mesh", case, "-o", tmp_path / "m.stl")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "m.stl").stat().st_size > 1000
    result = pcc("to-points", case, "-o", tmp_path / "p.xyz", "-n", "100", "--no-normals")
    assert result.returncode == 0 and read_cloud(tmp_path / "p.xyz").normals is None
    assert (case.read_bytes(), case.stat().st_mtime_ns) == before  # the input is untouched


def _bad_inputs(tmp_path: Path, case: Path) -> dict[str, tuple[list, Path]]:
    text = tmp_path / "text.nrrd"
    text.write_text("this is not a volume\n")
    flat = tmp_path / "flat.nrrd"
    nrrd.write(str(flat), np.ones((5, 6), np.uint8))
    grey = tmp_path / "grey.nrrd"
    nrrd.write(str(grey), np.arange(216, dtype=np.int32).reshape(6, 6, 6))
    cloud = tmp_path / "cloud.npz"
    np.savez(cloud, points=np.random.default_rng(0).normal(size=(50, 3)))
    out = tmp_path / "out.ply"
    return {
        "missing input": (["to-points", tmp_path / "missing.nrrd", "-o", out], out),
        "text named .nrrd": (["to-points", text, "-o", out], out),
        "2-D nrrd": (["to-points", flat, "-o", out], out),
        "non-binary": (["to-points", grey, "-o", out], out),
        "non-binary mesh": (["mesh", grey, "-o", tmp_path / "m.stl"], tmp_path / "m.stl"),
        "output is the input": (["to-volume", cloud, "-o", case, "--like", case], case),
        "missing output folder": (["to-points", case, "-o", tmp_path / "no" / "c.ply"], tmp_path / "no" / "c.ply"),
        "bad -n": (["to-points", case, "-o", out, "-n", "zero"], out),
        "zero -n": (["to-points", case, "-o", out, "-n", "0"], out),
        "bad output suffix": (["to-points", case, "-o", tmp_path / "c.txt"], tmp_path / "c.txt"),
        "missing --like": (["to-volume", cloud, "-o", tmp_path / "v.nrrd", "--like", tmp_path / "none.nrrd"], tmp_path / "v.nrrd"),
        "missing cloud": (["to-volume", tmp_path / "none.ply", "-o", tmp_path / "v.nrrd", "--like", case], tmp_path / "v.nrrd"),
    }


@pytest.mark.parametrize(
    "name",
    ["missing input", "text named .nrrd", "2-D nrrd", "non-binary", "non-binary mesh", "output is the input",
     "missing output folder", "bad -n", "zero -n", "bad output suffix", "missing --like", "missing cloud"],
)
def test_bad_input_exits_2_with_one_line(tmp_path, case, name):
    args, output = _bad_inputs(tmp_path, case)[name]
    before = case.read_bytes(), case.stat().st_mtime_ns
    existed = output.exists()
    files_before = sorted(p.name for p in tmp_path.iterdir())
    result = pcc(*args)
    assert result.returncode == 2, (name, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert output.exists() == existed  # nothing written
    assert sorted(p.name for p in tmp_path.iterdir()) == files_before  # no partial or temporary file
    assert (case.read_bytes(), case.stat().st_mtime_ns) == before


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write into read-only folders")
def test_unwritable_output_folder(tmp_path, case):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = pcc("to-points", case, "-o", locked / "c.ply")
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
        assert not any(locked.iterdir())
    finally:
        locked.chmod(0o700)


def test_unwritable_output_folder_as_root(tmp_path, case, monkeypatch):
    """Same check in-process (works as root too): os.access says the folder is not writable."""
    from pcc.cli import main

    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert main(["to-points", str(case), "-o", str(tmp_path / "c.ply")]) == 2
    assert not (tmp_path / "c.ply").exists()
