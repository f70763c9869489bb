"""Issue 30's harder training defects: fresh draws of the hard shapes, and skulls seen as thick-slice CTs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import craniotomy_training_set, hollow_skull

from pcc.learning import defects
from pcc.learning.cache import cache_path
from pcc.learning.cases import hard_defects, synthetic_defects
from pcc.learning.defects import HARD_SHAPES, SHAPES, TRAINING_ONLY_SHAPES, make_defect
from pcc.learning.slices import thicker_slices
from pcc.volume import Volume


def test_hard_defects_are_fresh_draws_of_every_hard_shape_with_thick_slices_among_them():
    names = ["000.nrrd", "002.nrrd", "004.nrrd"]
    base = synthetic_defects(names, 7)
    hard = hard_defects(names, 6, first_index=7, slices_mm=[0.0, 1.5])
    assert len(hard) == 18
    for name in names:  # each skull gets each hard shape once, at indices after the base defects
        mine = [d for d in hard if d.source == name]
        assert sorted(d.shape for d in mine) == sorted(HARD_SHAPES)
        assert [d.index for d in mine] == list(range(7, 13))
        assert {d.slices_mm for d in mine} == {0.0, 1.5}
    all_names = [d.name for d in base + hard]
    assert len(set(all_names)) == len(all_names)
    assert len({d.seed for d in base + hard}) == len(all_names)
    coarse = next(d for d in hard if d.slices_mm)
    assert coarse.name.endswith("_z1.5")
    with pytest.raises(ValueError, match="slices_mm"):
        hard_defects(names, 2, first_index=7, slices_mm=[])


def test_the_base_recipe_keeps_its_defects_names_and_cache_files():
    """Adding the hard defects renamed nothing of configs/skullfix.yaml's 7 per skull: their cache files stay valid."""
    base = synthetic_defects(["000.nrrd"], 7)
    assert [d.name for d in base] == [f"000_{shape}_{k}" for k, shape in enumerate(SHAPES)]
    assert base[0].slices_mm == 0.0 and base[0].seed == 988760982
    # the file name the caches built before issue 30 hold (cache/skullfix/ of the SkullFix training_set)
    assert cache_path(Path("cache"), Path("training_set"), base[0].name, base[0].cache_key).name == "000_craniotomy_0-b784d8f3f7.npz"


@pytest.mark.parametrize("shape", TRAINING_ONLY_SHAPES)
def test_harder_shapes_are_exact_disjoint_seeded_splits(shape):
    skull = hollow_skull()
    complete = skull.mask()
    defective, implant = make_defect(skull, shape=shape, rng=np.random.default_rng(3))
    assert not (defective & implant).any() and np.array_equal(defective | implant, complete)
    assert implant.sum() > 50 and defective.sum() > 3 * implant.sum()
    assert np.array_equal(make_defect(skull, shape=shape, rng=np.random.default_rng(3))[1], implant)
    assert shape not in SHAPES  # training only: the benchmarks' classes stay the seven SHAPES


def test_temporal_defects_sit_on_one_side_below_the_lateral_ones():
    skull = hollow_skull()
    world = skull.index_to_world(np.argwhere(skull.mask()))
    low, high = world.min(axis=0), world.max(axis=0)
    for seed in range(4):
        temporal = make_defect(skull, shape="temporal", rng=np.random.default_rng(seed))[1]
        lateral = make_defect(skull, shape="parietotemporal", rng=np.random.default_rng(seed))[1]
        points = skull.index_to_world(np.argwhere(temporal))
        assert np.all(np.sign(points[:, 0] - (low[0] + high[0]) / 2) == np.sign(points[0, 0] - (low[0] + high[0]) / 2))
        height = (points[:, 2].mean() - low[2]) / (high[2] - low[2])
        assert 0.2 < height < 0.6
        assert points[:, 2].mean() < skull.index_to_world(np.argwhere(lateral))[:, 2].mean()


def test_irregular_outlines_are_pushed_in_and_out():
    """The same draw with and without the displacement: the outline moves both ways, by millimetres."""
    skull = hollow_skull((1.5, 1.5, 1.5))
    bone = skull.mask()
    described = defects._describe(bone, skull)
    for seed in range(3):
        cuts = [defects._cut(bone, skull, *defects._irregular(described, np.random.default_rng(seed), rms_mm=rms))
                for rms in (4.0, 0.0)]
        warped, plain = ({tuple(i) for i in cut} for cut in cuts)
        assert warped - plain and plain - warped
        assert len(warped ^ plain) > 0.1 * len(plain)


@pytest.mark.parametrize("tilted", [False, True])
def test_thicker_slices_keep_the_skull_in_place_on_a_coarser_slice_grid(tilted):
    skull = hollow_skull((1.0, 1.0, 0.5))
    if tilted:  # a gantry tilt: the slice direction leans in y, as in several SkullFix scans
        directions = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0.09, 0.49]])
        skull = Volume(skull.array, directions, np.array([-30.0, 12.0, 5.0]), skull.space)
    coarse = thicker_slices(skull, 1.5)
    assert coarse.shape[:2] == skull.shape[:2] and coarse.shape[2] == skull.shape[2] // 3
    assert coarse.spacing == pytest.approx(skull.spacing * [1, 1, 3])
    for k in (0, 5, coarse.shape[2] - 1):  # each coarse centre is the mean of its run's three centres
        run = skull.index_to_world(np.array([[7, 9, 3 * k + j] for j in range(3)]))
        assert coarse.index_to_world(np.array([[7, 9, k]]))[0] == pytest.approx(run.mean(axis=0), abs=1e-9)
    fine = skull.mask()[:, :, : 3 * coarse.shape[2]]
    majority = fine.reshape(*fine.shape[:2], -1, 3).sum(axis=3) >= 2
    assert np.array_equal(coarse.mask(), majority)
    volume = lambda v: v.mask().sum() * v.voxel_volume  # noqa: E731
    assert volume(coarse) == pytest.approx(volume(skull), rel=0.1)
    assert thicker_slices(skull, 0.6) is skull  # already that thick: as is
    with pytest.raises(ValueError, match="positive"):
        thicker_slices(skull, 0.0)


def test_the_data_module_caches_hard_defects_beside_the_base_ones(tmp_path):
    """hard_defects adds cached cases (thick-slice ones among them) after the base ones, which keep their files."""
    from pcc.learning.data import SkullCompletionData

    root = tmp_path / "training_set"
    craniotomy_training_set(root)
    sizes = dict(global_input=256, global_target=128, local_input=256, local_target=256, num_workers=0)
    plain = SkullCompletionData(root=str(root), cache_dir=str(tmp_path / "cache"), validation_cases=1, synthetic_defects=1, **sizes)
    plain.setup()
    hard = SkullCompletionData(root=str(root), cache_dir=str(tmp_path / "cache"), validation_cases=1, synthetic_defects=1,
                               hard_defects=2, hard_slices_mm=[0.0, 5.0], **sizes)
    hard.setup()
    names = [case.name for case in hard.train_cases]
    assert names[:4] == [case.name for case in plain.train_cases] and len(names) == 4 + 2 * 2
    assert any(name.endswith("_z5") for name in names)  # 5 mm: runs of two of hollow_skull's 2.5 mm slices
    for case in hard.train_cases:
        assert len(case.skull_points) > 100 and len(case.implant_points) == 4096
    carried = SkullCompletionData(root=str(tmp_path / "elsewhere" / "training_set"), cache_dir=str(tmp_path / "cache"), validation_cases=1,
                                  synthetic_defects=1, hard_defects=2, hard_slices_mm=[0.0, 5.0], **sizes)
    carried.setup()
    assert [case.name for case in carried.train_cases] == names
    z = next(i for i, name in enumerate(names) if name.endswith("_z5"))  # seen on thicker slices: fewer skull points
    assert not np.array_equal(hard.train_cases[z].skull_points[:50], plain.train_cases[0].skull_points[:50])
