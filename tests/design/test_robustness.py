"""Robustness of `pcc implant`: bad files and arguments, odd but valid inputs, determinism.

Bad inputs are checked before the model is loaded, so these tests need no trained weights. The odd
valid inputs run the real pipeline with a tiny randomly initialised network (a test fixture): its
implants are meaningless, but the grid handling, determinism and clean-up are the product's own.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import nrrd
import numpy as np
import pytest
import torch
from conftest import REPO, hollow_ellipsoid

import pcc.design as pipeline
import pcc.design.implant as design_steps
from pcc.cli import main
from pcc.design.settings import DesignSettings
from pcc.geometry.cloud import PointCloud
from pcc.volume import Volume

SHIPPED = REPO / "pcc" / "weights" / "skullfix.pt"
SHELL = hollow_ellipsoid((40, 36, 32), radii=(16, 14, 12), thickness=4, hole_radius=6)
HEADER = {"space": "left-posterior-superior", "space directions": np.eye(3) * 1.5,
          "space origin": np.array([-30.0, -27.0, 5.0]), "encoding": "gzip"}


def _write(path: Path, array: np.ndarray, **header) -> Path:
    nrrd.write(str(path), array, {**HEADER, **header})
    return path


def _bad_files(folder: Path) -> dict[str, Path]:
    """One file per kind of bad input, all named .nrrd."""
    good = _write(folder / "good_source.nrrd", SHELL.astype(np.int32))
    blob = good.read_bytes()
    start = blob.index(b"\n\n") + 2
    middle = start + (len(blob) - start) // 2
    files = {
        "truncated gzip": blob[: start + (len(blob) - start) * 2 // 3],
        "corrupt gzip": blob[:middle] + bytes(b ^ 0xFF for b in blob[middle : middle + 40]) + blob[middle + 40 :],
        "text named .nrrd": b"patient 17, see the PACS\n",
        "sizes disagree": blob[:start].replace(b"sizes: 40 36 32", b"sizes: 40 36 33") + blob[start:],
        "gzip of garbage": blob[:start] + gzip.compress(b"\x01" * 100),
    }
    paths = {}
    for name, data in files.items():
        paths[name] = folder / (name.replace(" ", "_").replace(".", "") + ".nrrd")
        paths[name].write_bytes(data)
    good.unlink()
    with_nan = SHELL.astype(np.float32)
    with_nan[0, 0, 0] = np.nan
    arrays = {
        "2-D data": np.ones((6, 5), np.uint8),
        "4-D data": np.stack([SHELL, SHELL], axis=-1),
        "empty volume": np.zeros_like(SHELL),
        "all-ones volume": np.ones_like(SHELL),
        "NaN values": with_nan,
        "non-binary values": SHELL.astype(np.int16) * 255,
    }
    for name, array in arrays.items():
        paths[name] = folder / (name.replace(" ", "_") + ".nrrd")
        nrrd.write(str(paths[name]), array, HEADER if array.ndim == 3 else {"encoding": "gzip"})
    return paths


BAD_FILES = ["truncated gzip", "corrupt gzip", "text named .nrrd", "sizes disagree", "gzip of garbage", "2-D data",
             "4-D data", "empty volume", "all-ones volume", "NaN values", "non-binary values"]
BAD_ARGUMENTS = ["output is the input", "output folder under a file", "folder output under a file",
                 "--stl under a file", "missing --model", "--device cuda without a GPU", "--device nonsense"]


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _expect_exit_2(tmp_path: Path, args: list[str], capsys) -> str:
    before = _snapshot(tmp_path)
    status = main([str(a) for a in args])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert status == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("pcc: error: "), captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    assert _snapshot(tmp_path) == before  # nothing written, no temporary file, inputs' bytes and mtimes unchanged
    return lines[0]


@pytest.mark.parametrize("name", BAD_FILES)
def test_bad_file_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, name):
    source = _bad_files(tmp_path)[name]
    line = _expect_exit_2(tmp_path, ["implant", source, "-o", tmp_path / "implant.nrrd",
                                     "--stl", tmp_path / "implant.stl"], capsys)
    assert source.name in line


@pytest.mark.parametrize("name", BAD_ARGUMENTS)
def test_bad_argument_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, name):
    source = _write(tmp_path / "case.nrrd", SHELL.astype(np.int32))
    (tmp_path / "notes.txt").write_text("a regular file")
    (tmp_path / "cases").mkdir()
    _write(tmp_path / "cases" / "a.nrrd", SHELL.astype(np.int32))
    under_a_file = tmp_path / "notes.txt" / "implant.nrrd"
    args, expected = {
        "output is the input": (["implant", source, "-o", source], "same file"),
        "output folder under a file": (["implant", source, "-o", under_a_file], "not a folder"),
        "folder output under a file": (["implant", tmp_path / "cases", "-o", tmp_path / "notes.txt" / "out"], "not a folder"),
        "--stl under a file": (["implant", source, "-o", tmp_path / "i.nrrd", "--stl", tmp_path / "notes.txt" / "i.stl"],
                               "not a folder"),
        "missing --model": (["implant", source, "-o", tmp_path / "i.nrrd", "--model", tmp_path / "none.ckpt"], "not found"),
        "--device cuda without a GPU": (["implant", source, "-o", tmp_path / "i.nrrd", "--device", "cuda"], "no CUDA GPU"),
        "--device nonsense": (["implant", source, "-o", tmp_path / "i.nrrd", "--device", "cuda:x"], "unknown device"),
    }[name]
    if name == "--device cuda without a GPU" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert expected in _expect_exit_2(tmp_path, args, capsys)


def test_real_command_line_reports_a_truncated_file_without_traceback(tmp_path):
    source = _bad_files(tmp_path)["truncated gzip"]
    before = source.read_bytes(), source.stat().st_mtime_ns
    result = subprocess.run([sys.executable, "-m", "pcc.cli", "implant", str(source), "-o", str(tmp_path / "i.nrrd")],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "PCC_DEBUG": ""})
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr and "sizes disagree" in result.stderr
    assert not (tmp_path / "i.nrrd").exists() and (source.read_bytes(), source.stat().st_mtime_ns) == before


# ---- odd but valid inputs -------------------------------------------------------------------------


def test_complete_skull_gives_a_no_defect_warning_and_exit_0(tmp_path, capsys, monkeypatch):
    """The CLI path: a (stand-in) model that finds no hole → empty implant written, warning, exit 0."""
    complete = hollow_ellipsoid((40, 36, 32), radii=(16, 14, 12), thickness=4, hole_radius=0)
    source = _write(tmp_path / "complete.nrrd", complete.astype(np.int32))
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"stand-in")

    class StandIn:
        source, device, metadata, settings = weights, "cpu", {}, DesignSettings()

    monkeypatch.setattr(pipeline, "load_model", lambda path=None, *, device="auto": StandIn())
    monkeypatch.setattr(pipeline, "design_implant",
                        lambda defective, model, *, settings=None, timings=None, specks=None: defective.with_array(np.zeros(defective.shape, np.uint8)))
    status = main(["implant", str(source), "-o", str(tmp_path / "i.nrrd"), "--stl", str(tmp_path / "i.stl")])
    err = capsys.readouterr().err
    assert status == 0, err
    assert "no defect found" in err
    data, _ = nrrd.read(str(tmp_path / "i.nrrd"))
    assert data.shape == complete.shape and not data.any()


def test_no_defect_warning_threshold():
    skull = Volume(SHELL, np.eye(3), np.zeros(3))  # 1 mm voxels: 1 cm³ = 1000 voxels
    implant = np.zeros_like(SHELL)
    assert "no defect found" in pipeline.no_defect_warning(skull.with_array(implant), skull)
    implant.flat[:999] = 1
    assert pipeline.no_defect_warning(skull.with_array(implant), skull) is not None
    implant.flat[:1500] = 1  # above 1 cm³ and above 0.5 % of this small shell's bone
    assert pipeline.no_defect_warning(skull.with_array(implant), skull) is None
    big_skull = Volume(np.ones((80, 80, 80), np.uint8), np.eye(3), np.zeros(3))  # 512 cm³ of "bone"
    some = np.zeros((80, 80, 80), np.uint8)
    some.flat[:2000] = 1  # 2 cm³ < 0.5 % of 512 cm³
    assert pipeline.no_defect_warning(big_skull.with_array(some), big_skull) is not None


@pytest.fixture(scope="module")
def tiny_model() -> pipeline.CompletionModel:
    """A small randomly initialised two-stage model (test fixture, not a product model)."""
    from pcc.models import PointCompletionNet
    from pcc.models.inputs import SampleSizes

    torch.manual_seed(0)
    global_net = PointCompletionNet(width=16, feature_dim=32, coarse_points=64, children=1, neighbours=8).eval()
    local_net = PointCompletionNet(width=16, feature_dim=32, coarse_points=64, children=4, neighbours=8).eval()
    sizes = SampleSizes(global_input=256, global_target=64, local_input=256, local_target=256)
    return pipeline.CompletionModel(global_net, local_net, torch.device("cpu"), Path("tiny-random"), sizes)


def test_skull_touching_the_border_and_bit_identical_reruns(tiny_model):
    shape = (40, 36, 38)
    # The shell fills the array from side to side, and the scan cuts it open at the bottom (z = 0).
    full = hollow_ellipsoid(shape, radii=tuple((s - 1) / 2 + 1.5 for s in shape), thickness=4, hole_radius=7)
    touching = np.ascontiguousarray(full[:, :, 8:])
    assert all(touching.take(0, axis=a).any() and touching.take(-1, axis=a).any() for a in range(2))
    assert touching[:, :, 0].sum() > 100
    defective = Volume(touching, np.diag([0.9, 0.9, 1.2]), np.array([-18.0, -16.0, 4.0]))
    settings = DesignSettings(local_passes=2, speck_mm3=0.0)  # this random model's implant is all small parts
    first = pipeline.design_implant(defective, tiny_model, settings=settings)
    second = pipeline.design_implant(defective, tiny_model, settings=settings)
    assert first.same_grid(defective) and first.array.dtype == np.uint8
    assert set(np.unique(first.array)) <= {0, 1}
    assert not np.any(first.mask() & defective.mask())
    assert first.array.any()  # this random model's points do fall on the grid: the comparison means something
    assert np.array_equal(first.array, second.array)  # deterministic on the CPU


@pytest.mark.slow
@pytest.mark.skipif(not SHIPPED.exists(), reason="needs the shipped weights pcc/weights/skullfix.pt (not trained yet)")
def test_shipped_model_finds_no_defect_in_a_complete_skull(shared_data, tmp_path, capsys):
    source = sorted((shared_data / "skullfix" / "training_set" / "complete_skull").glob("*.nrrd"))[-1]
    status = main(["implant", str(source), "-o", str(tmp_path / "i.nrrd"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert status == 0, err
    assert "no defect found" in err



@pytest.mark.slow
@pytest.mark.skipif(not SHIPPED.exists(), reason="needs the shipped weights pcc/weights/skullfix.pt")
def test_shipped_model_fills_both_holes_of_a_bilateral_defect(shared_data):
    """Two separate defects (pcc's bilateral shape in a validation skull, never trained on): both filled."""
    import zlib

    from scipy import ndimage

    from pcc.io import read_volume
    from pcc.learning.defects import make_defect

    complete = read_volume(shared_data / "skullfix" / "training_set" / "complete_skull" / "005.nrrd")
    rng = np.random.default_rng([0, zlib.crc32(b"005.nrrd/bilateral")])  # as tools/benchmarks/bench_robustness.py cuts it
    defective, truth = make_defect(complete, shape="bilateral", rng=rng)
    implant = pipeline.design_implant(complete.with_array(defective.astype(np.uint8)), pipeline.load_model(device="cpu"))
    labels, count = ndimage.label(truth, structure=np.ones((3, 3, 3), bool))
    assert count == 2
    for side in (1, 2):
        hole = labels == side
        assert np.count_nonzero(implant.mask() & hole) > 0.6 * np.count_nonzero(hole)

def test_benchmark_downsampling_keeps_world_geometry():
    """tools/benchmarks/cases.py's 2× coarser cases sit where the fine ones do, implant = complete − skull."""
    from tools.benchmarks import cases as bench
    complete = hollow_ellipsoid((41, 36, 32), radii=(16, 14, 12), thickness=4, hole_radius=0).astype(bool)
    skull = hollow_ellipsoid((41, 36, 32), radii=(16, 14, 12), thickness=4, hole_radius=6).astype(bool)
    tilted = np.array([[0.45, 0.0, 0.0], [0.0, 0.44, -0.07], [0.0, 0.1, 0.62]])
    fine = Volume(skull.astype(np.uint8), tilted, np.array([-10.0, 5.0, 2.0]))
    coarse, implant = bench.downsample_2x(fine, complete & ~skull)
    assert coarse.shape == (20, 18, 16) and implant.shape == coarse.shape
    assert np.allclose(coarse.directions, 2 * tilted)
    # the centre of coarse voxel (i, j, k) is the centre of fine voxels 2i..2i+1 (etc.)
    ijk = np.array([[0, 0, 0], [3, 5, 7], [19, 17, 15]])
    fine_centres = (fine.index_to_world(2 * ijk) + fine.index_to_world(2 * ijk + 1)) / 2
    assert np.allclose(coarse.index_to_world(ijk), fine_centres)
    assert not np.any(implant & coarse.mask()) and implant.any()
    ratio = coarse.mask().sum() * coarse.voxel_volume / (skull.sum() * fine.voxel_volume)
    assert 0.8 < ratio < 1.2


def test_a_second_search_fills_the_defect_the_first_passed_over(monkeypatch):
    """design_implant searches again on the skull completed with what it found (stand-in networks)."""
    from pcc.geometry.surface import volume_to_points

    complete = hollow_ellipsoid(hole_radius=0.0).astype(bool)
    index = np.indices(complete.shape)
    top = complete & (index[2] > 28)  # the cap of the shell, on +z
    side = complete & (index[0] > 37) & (index[2] <= 28)  # a patch of the +x wall
    assert top.any() and side.any() and not (top & side).any()
    grid = dict(directions=np.eye(3), origin=np.zeros(3))
    defective = Volume((complete & ~top & ~side).astype(np.uint8), **grid)
    searched = []

    def implant_cloud(volume, model, *, settings, timings, surface_step, other_guesses, intact_bone_mm):
        """Finds only the first missing part it knows of: the cap, else the side patch, else nothing."""
        searched.append(volume)
        later = len(searched) > 1  # the later searches are stricter about guesses beside bone
        assert intact_bone_mm == (settings.later_rounds_intact_bone_mm if later else settings.intact_bone_mm)
        assert other_guesses is not later
        for part in (top, side):
            if not volume.mask()[part].any():
                return volume_to_points(Volume(part.astype(np.uint8), **grid), 4000, seed=0)
        return PointCloud(np.zeros((0, 3)), np.zeros((0, 3)))

    monkeypatch.setattr(design_steps, "implant_cloud", implant_cloud)  # where design_implant looks it up
    one = pipeline.design_implant(defective, model=None, settings=DesignSettings(search_rounds=1)).mask()
    assert np.count_nonzero(one & side) == 0
    searched.clear()
    both = pipeline.design_implant(defective, model=None, settings=DesignSettings(search_rounds=3)).mask()
    assert len(searched) == 3 and searched[0] is defective  # the third search found nothing
    for part in (top, side):
        assert np.count_nonzero(both & part) > 0.8 * np.count_nonzero(part)
    assert not (both & defective.mask()).any()
