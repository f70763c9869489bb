"""Artificial defects: every shape is disjoint, exact, seeded, placed where its name says, in mm."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import hollow_skull

from pcc.cli import main
from pcc.io import read_volume, write_volume
from pcc.learning.defects import SHAPES, make_defect, write_defects
from pcc.shared_data import skullfix_training_set
from pcc.volume import Volume

DATA = skullfix_training_set()


@pytest.fixture(scope="module")
def skull():
    return hollow_skull()


def centroid(volume: Volume, mask: np.ndarray) -> np.ndarray:
    return volume.index_to_world(np.argwhere(mask)).mean(axis=0)


@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_is_an_exact_disjoint_split_and_seeded(skull, shape):
    complete = skull.mask()
    defective, implant = make_defect(skull, shape=shape, rng=np.random.default_rng(5))
    assert defective.dtype == bool and implant.dtype == bool and defective.shape == complete.shape
    assert not (defective & implant).any()
    assert np.array_equal(defective | implant, complete)
    assert implant.sum() > 50 and defective.sum() > implant.sum()
    again = make_defect(skull, shape=shape, rng=np.random.default_rng(5))[1]
    assert np.array_equal(again, implant)
    others = [make_defect(skull, shape=shape, rng=np.random.default_rng(s))[1] for s in (6, 7)]
    assert any(not np.array_equal(o, implant) for o in others)
    assert np.array_equal(np.asarray(skull.array) != 0, complete)  # input untouched


@pytest.mark.parametrize("shape", SHAPES)
def test_sizes_are_in_mm_not_voxels(shape):
    """The same draw on two voxel sizes removes about the same bone volume (ml)."""
    fine, coarse = hollow_skull((2.0, 2.0, 2.0)), hollow_skull((3.0, 2.5, 3.5))
    vols = []
    for vol in (fine, coarse):
        ratios = []
        for seed in range(3):
            implant = make_defect(vol, shape=shape, rng=np.random.default_rng(seed))[1]
            ratios.append(implant.sum() / vol.mask().sum())  # fraction of the skull removed
        vols.append(np.mean(ratios))
    assert vols[1] == pytest.approx(vols[0], rel=0.25)


def test_anatomical_placement(skull):
    rng = np.random.default_rng
    centre = centroid(skull, skull.mask())
    half = (skull.index_to_world(np.argwhere(skull.mask())).max(axis=0)
            - skull.index_to_world(np.argwhere(skull.mask())).min(axis=0)) / 2
    for seed in range(3):
        implant = make_defect(skull, shape="frontoorbital", rng=rng(seed))[1]
        c = centroid(skull, implant)
        assert c[1] < centre[1] - 0.5 * half[1]  # anterior = -y
        vertex = skull.index_to_world(np.argwhere(skull.mask()))[:, 2].max()
        lowest = skull.index_to_world(np.argwhere(implant))[:, 2].min()
        assert vertex - 106 - 2.5 <= lowest <= vertex - 69 + 2.5  # cut off 75–100 mm (± the 6 mm band) below the vertex
        implant = make_defect(skull, shape="parietotemporal", rng=rng(seed))[1]
        c = centroid(skull, implant)
        assert abs(c[0] - centre[0]) > 0.5 * half[0]  # lateral, one side
        pts = skull.index_to_world(np.argwhere(implant))
        assert np.all(np.sign(pts[:, 0] - centre[0]) == np.sign(c[0] - centre[0]))
        pts = skull.index_to_world(np.argwhere(make_defect(skull, shape="bilateral", rng=rng(seed))[1]))
        assert (pts[:, 0] > centre[0] + 0.5 * half[0]).any() and (pts[:, 0] < centre[0] - 0.5 * half[0]).any()
        for shape in ("craniotomy", "cube"):
            pts = skull.index_to_world(np.argwhere(make_defect(skull, shape=shape, rng=rng(seed))[1]))
            assert pts[:, 2].min() > centre[2]  # through the top of the skull
        pts = skull.index_to_world(np.argwhere(make_defect(skull, shape="craniotomy", rng=rng(seed),
                                                           position="posterior")[1]))
        assert pts[:, 1].mean() > centre[1] + 0.3 * half[1]  # posterior = +y


def test_tilted_grid_and_coarse_grid():
    tilt = np.array([[2.0, 0, 0], [0, 1.97, -0.35], [0, 0.45, 2.46]])  # gantry tilt, like several SkullFix scans
    skull = hollow_skull(directions=tilt)
    for shape in SHAPES:
        defective, implant = make_defect(skull, shape=shape, rng=np.random.default_rng(1))
        assert implant.any() and np.array_equal(defective | implant, skull.mask()) and not (defective & implant).any()
    small = hollow_skull((6.0, 6.0, 6.0))  # a 128³-at-1.6 mm-like coarse grid works too
    assert make_defect(small, shape="random", rng=np.random.default_rng(0))[1].any()


def test_bad_shape_and_empty_skull(skull):
    with pytest.raises(ValueError):
        make_defect(skull, shape="triangle", rng=np.random.default_rng(0))
    with pytest.raises(ValueError):
        make_defect(skull.with_array(np.zeros(skull.shape, np.int32)), shape="cube", rng=np.random.default_rng(0))


def test_write_defects_and_cli(tmp_path, capsys):
    skull = hollow_skull((3.0, 3.0, 3.0))
    src = tmp_path / "complete"
    src.mkdir()
    write_volume(src / "a.nrrd", skull)
    write_volume(src / "b.nii.gz", skull)
    pairs = write_defects(src, tmp_path / "out", shape="sphere", seed=2, per_skull=2)
    assert len(pairs) == 4
    names = sorted(p.name for p in (tmp_path / "out" / "implant").iterdir())
    assert names == ["a_k1.nrrd", "a_k2.nrrd", "b_k1.nii.gz", "b_k2.nii.gz"]
    d = read_volume(tmp_path / "out" / "defective_skull" / "a_k1.nrrd")
    i = read_volume(tmp_path / "out" / "implant" / "a_k1.nrrd")
    assert d.same_grid(skull) and i.same_grid(skull)
    assert np.array_equal((d.array != 0) | (i.array != 0), skull.mask()) and not ((d.array != 0) & (i.array != 0)).any()
    # the CLI with a single file and the same seed gives the same defect for that name
    assert main(["defect", str(src / "a.nrrd"), "-o", str(tmp_path / "cli"), "--shape", "sphere", "--seed", "2",
                 "--per-skull", "2"]) == 0
    again = read_volume(tmp_path / "cli" / "implant" / "a_k1.nrrd")
    assert np.array_equal(again.array, i.array)
    assert main(["defect", str(src / "a.nrrd"), "-o", str(tmp_path / "temporal"), "--shape", "temporal"]) == 0  # a training-only shape
    assert read_volume(tmp_path / "temporal" / "implant" / "a.nrrd").mask().any()
    assert main(["defect", str(src / "a.nrrd"), "-o", str(tmp_path / "x"), "--shape", "star"]) == 2
    assert main(["defect", str(tmp_path / "missing.nrrd"), "-o", str(tmp_path / "x"), "--shape", "cube"]) == 2
    assert not (tmp_path / "x").exists()
    err = capsys.readouterr().err
    assert "star" in err and "missing.nrrd" in err


@pytest.mark.skipif(not DATA.is_dir(), reason=f"SkullFix data not found at {DATA}")
def test_craniotomy_on_real_skull_matches_real_defect():
    complete = read_volume(DATA / "complete_skull" / "000.nrrd")
    real = read_volume(DATA / "implant" / "000.nrrd").mask()
    defective, implant = make_defect(complete, shape="craniotomy", rng=np.random.default_rng(0), position="posterior")
    assert np.array_equal(defective | implant, complete.mask()) and not (defective & implant).any()
    assert 0.6 < implant.sum() / real.sum() < 1.6
    overlap = (implant & real).sum() / real.sum()
    assert overlap > 0.5  # the same region of the skull as the organizers' defect
