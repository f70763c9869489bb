"""The conversion commands through the real command line (a subprocess, as users run it)."""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

import nrrd
import numpy as np
import pytest
import trimesh
from conftest import REPO, TILTED_DIRECTIONS, ellipsoid_cavity, hollow_ellipsoid, winding_numbers
from scipy import ndimage

from pcc.cli import build_parser
from pcc.io import read_cloud, read_volume
from pcc.outputs.printing import voxel_world_box


def pcc(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pcc.cli", *map(str, args)], capture_output=True, text=True, timeout=120
    )


SHAPE, RADII, THICKNESS = (40, 36, 32), (16.0, 14.0, 12.0), 4.0


@pytest.fixture()
def case(tmp_path) -> Path:
    """A binary tilted-grid volume written as int32 gzip NRRD, like the real files."""
    path = tmp_path / "implant.nrrd"
    array = hollow_ellipsoid(SHAPE, radii=RADII, thickness=THICKNESS, hole_radius=6).astype(np.int32)
    nrrd.write(
        str(path), array,
        {"space": "left-posterior-superior", "space directions": TILTED_DIRECTIONS, "space origin": np.array([-12.0, 3.5, 7.25]), "encoding": "gzip"},
    )
    return path


def _commands() -> list[str]:
    """Every sub-command of the real parser (a new one without an example fails the test below)."""
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(action.choices)


def _examples(help_text: str) -> list[str]:
    """The command lines under the last 'example:' / 'examples:' heading of a --help text."""
    lines = help_text.splitlines()
    starts = [i for i, line in enumerate(lines) if line in ("example:", "examples:")]
    examples = []
    for line in lines[starts[-1] + 1 :] if starts else []:
        if not line.strip():
            break
        examples.append(line.strip())
    return examples


@pytest.mark.slow
@pytest.mark.parametrize("command", _commands())
def test_every_command_help_shows_a_real_example(command):
    result = pcc(command, "--help")
    assert result.returncode == 0, result.stderr
    examples = _examples(result.stdout)
    assert examples, f"'pcc {command} --help' shows no example:\n{result.stdout[-500:]}"
    assert all(line.startswith(f"pcc {command} ") for line in examples), examples
    for line in examples:  # each example is a command line its parser accepts
        words = shlex.split(line)[1:]
        if command == "train":  # the Lightning CLI's own parser checks the config and options, without training
            if "--print_config" not in words:
                words.append("--print_config")
            check = subprocess.run([sys.executable, "-m", "pcc.cli", *words], capture_output=True, text=True, timeout=120,
                                   cwd=REPO)
            assert check.returncode == 0, (line, check.stderr[-800:])
        else:
            try:
                assert build_parser().parse_args(words).command == command
            except SystemExit:
                pytest.fail(f"the example {line!r} does not parse")
    if command == "train":  # still the Lightning CLI's help, followed by pcc's examples
        assert "{fit,validate,test,predict}" in result.stdout
        assert any(line.startswith("pcc train fit --config configs/skullfix.yaml") for line in examples)


def test_version():
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
    # the cavity the shell encloses stays empty: nothing beyond its boundary voxels is set
    cavity = ellipsoid_cavity(SHAPE, radii=RADII, thickness=THICKNESS)
    assert not data[ndimage.binary_erosion(cavity)].any() and data[cavity].sum() < 0.01 * cavity.sum()
    dice = 2 * np.count_nonzero(data & (original != 0)) / (np.count_nonzero(data) + np.count_nonzero(original))
    assert dice > 0.95

    result = pcc("mesh", case, "-o", tmp_path / "m.stl")
    assert result.returncode == 0, result.stderr
    mesh = trimesh.load(tmp_path / "m.stl")
    volume = read_volume(case)
    assert mesh.is_watertight and mesh.body_count == 1 and mesh.volume > 0
    assert np.abs(mesh.bounds - np.stack(voxel_world_box(volume))).max() <= volume.spacing.max()  # world mm, in place
    assert mesh.volume == pytest.approx(np.count_nonzero(original) * volume.voxel_volume, rel=0.02)
    # the printed shell is hollow: inside its wall, outside its cavity (the winding number tells them apart)
    wall = volume.index_to_world(np.argwhere(ndimage.binary_erosion(original != 0))[::97])
    hollow = volume.index_to_world(np.argwhere(cavity)[::97])
    assert np.all(winding_numbers(mesh.vertices, mesh.faces, wall) > 0.5)
    assert np.all(winding_numbers(mesh.vertices, mesh.faces, hollow) < 0.5)
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


@pytest.mark.parametrize("given, expected", [(None, "0 False"), ("1", "1 False")])
def test_command_line_turns_numpy_huge_pages_off_unless_the_user_chose(given, expected):
    """The console script sets NUMPY_MADVISE_HUGEPAGE=0 before anything imports NumPy (slow first use of
    memory on some VMs; pcc.cli.memory_settings), and keeps a value the user set."""
    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    if given is not None:
        env["NUMPY_MADVISE_HUGEPAGE"] = given
    probe = ("import os, sys, pcc.cli as cli; "
             "cli.main = lambda: print(os.environ.get('NUMPY_MADVISE_HUGEPAGE'), 'numpy' in sys.modules) or 0; cli.run()")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


@pytest.mark.parametrize("user_set, keep, accepted, calls", [
    (None, True, 1, [(-3, 2**30), (-1, 2**31 - 1), (-2, 2**28)]),  # mmap threshold, trim threshold, top pad
    (None, True, 0, [(-3, 2**30)]),  # an older glibc refuses the 1 GiB threshold: glibc's defaults stay
    ("GLIBC_TUNABLES=glibc.malloc.mmap_threshold=65536", True, 1, []),
    ("MALLOC_TOP_PAD_=1", True, 1, []),
    (None, False, 1, []),
])
def test_memory_settings_tune_glibc_malloc_unless_the_user_did(monkeypatch, user_set, keep, accepted, calls):
    """pcc.cli.memory_settings asks glibc's malloc (mallopt) to keep freed memory for reuse, unless the user
    tuned malloc through its environment variables or the caller opts out (pcc train)."""
    import ctypes

    import pcc.cli as cli

    made: list[tuple[int, int]] = []

    class FakeMallopt:
        def __call__(self, option: int, value: int) -> int:
            made.append((option, value))
            return accepted

    class FakeLibc:
        def __init__(self, name):
            assert name is None
            self.mallopt = FakeMallopt()

    for name in ("GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "0")  # memory_settings' setdefault must not leak into the tests
    if user_set is not None:
        monkeypatch.setenv(*user_set.split("=", 1))
    monkeypatch.setattr(cli, "_glibc", lambda: True)
    monkeypatch.setattr(ctypes, "CDLL", FakeLibc)
    cli.memory_settings(keep_freed_memory=keep)
    assert made == calls


@pytest.mark.parametrize("keep", [True, False])
def test_memory_settings_serve_large_arrays_from_the_heap_on_glibc(keep):
    """With the settings glibc keeps a 300 MiB array in its heap (none of it mapped on its own, mallinfo2's
    hblkhd); without them it maps the array on its own."""
    import ctypes

    import pcc.cli as cli

    if not cli._glibc() or not hasattr(ctypes.CDLL(None), "mallinfo2"):
        pytest.skip("needs glibc 2.33 or later (mallinfo2)")
    env = {k: v for k, v in os.environ.items()
           if k not in ("GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")}
    probe = ("import ctypes, sys, numpy, pcc.cli as cli\n"
             f"cli.memory_settings(keep_freed_memory={keep})\n"
             "class Info(ctypes.Structure):\n"
             "    _fields_ = [(name, ctypes.c_size_t) for name in ('arena', 'ordblks', 'smblks', 'hblks', 'hblkhd',"
             " 'usmblks', 'fsmblks', 'uordblks', 'fordblks', 'keepcost')]\n"
             "mallinfo2 = ctypes.CDLL(None).mallinfo2\n"
             "mallinfo2.restype = Info\n"
             "array = numpy.ones(300 * 2**20, dtype=numpy.uint8)\n"
             "print(mallinfo2().hblkhd >= 300 * 2**20)\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(not keep)


@pytest.mark.parametrize("argv, keep", [(["pcc", "implant", "in.nrrd", "-o", "out.nrrd"], True),
                                        (["pcc", "train", "fit", "--config", "c.yaml"], False)])
def test_console_script_keeps_freed_memory_except_for_training(monkeypatch, argv, keep):
    """The console script applies memory_settings before main(), keeping freed memory for every command but `pcc train`."""
    import gc

    import pcc.cli as cli

    asked: list[bool] = []
    monkeypatch.setattr(cli, "memory_settings", lambda *, keep_freed_memory: asked.append(keep_freed_memory))
    monkeypatch.setattr(cli, "main", lambda: 0)
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(gc, "freeze", lambda: None)
    with pytest.raises(SystemExit) as done:
        cli.run()
    assert done.value.code == 0 and asked == [keep]
