"""Challenge metrics against brute-force implementations of the organizers' definitions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist

from pcc.challenge.metrics import CaseScores, boundary_dice, dice, hausdorff, score_case, surface

SIX = ndimage.generate_binary_structure(3, 1)


# -- brute force, written from the definitions without any cropping or distance transform -------------

def brute_surface(mask: np.ndarray) -> np.ndarray:
    padded = np.pad(mask, 1)  # outside the array is background
    core = padded[1:-1, 1:-1, 1:-1]
    eroded = core.copy()
    for axis in range(3):
        for step in (-1, 1):
            eroded &= np.roll(padded, step, axis=axis)[1:-1, 1:-1, 1:-1]
    return mask & ~eroded


def brute_hd(pred, gt, spacing):
    if not pred.any() and not gt.any():
        return 0.0, 0.0
    if not pred.any() or not gt.any():
        return np.inf, np.inf
    a = np.argwhere(brute_surface(pred)) * spacing
    b = np.argwhere(brute_surface(gt)) * spacing
    d = cdist(a, b)
    d_ab, d_ba = d.min(axis=1), d.min(axis=0)
    return max(d_ab.max(), d_ba.max()), np.percentile(np.concatenate([d_ab, d_ba]), 95)


def brute_dice(p, g):
    total = p.sum() + g.sum()
    return 1.0 if total == 0 else 2.0 * (p & g).sum() / total


def brute_bdsc(pred, gt, defective, spacing, distance_mm=10.0):
    grid = np.argwhere(np.ones(pred.shape, bool)) * spacing
    skull = np.argwhere(defective) * spacing
    if len(skull) == 0:
        near = np.zeros(pred.shape, bool)
    else:
        near = (cdist(grid, skull).min(axis=1) <= distance_mm).reshape(pred.shape)
    return brute_dice(pred & near, gt & near)


# -- synthetic cases ----------------------------------------------------------------------------------

def blob(shape, rng, centre=None, radii=None):
    idx = np.indices(shape).astype(float)
    centre = np.asarray(shape) / 2 if centre is None else np.asarray(centre)
    radii = rng.uniform(3, 6, 3) if radii is None else np.asarray(radii)
    r = sum(((idx[a] - centre[a]) / radii[a]) ** 2 for a in range(3))
    noise = ndimage.gaussian_filter(rng.normal(size=shape), 1.5) * 2
    return r + noise < 1


def variants(gt, rng):
    yield "identical", gt.copy()
    yield "shifted", np.roll(gt, (2, -1, 1), axis=(0, 1, 2))
    yield "dilated", ndimage.binary_dilation(gt, SIX, iterations=2)
    yield "eroded", ndimage.binary_erosion(gt, SIX)
    cropped = gt.copy()
    cropped[: gt.shape[0] // 2] = False
    yield "cropped", cropped
    yield "empty", np.zeros_like(gt)
    yield "noisy", gt ^ (rng.random(gt.shape) < 0.02)
    far = np.zeros_like(gt)
    far[1:3, 1:3, -3:] = True
    yield "far", far


def cases():
    rng = np.random.default_rng(7)
    out = []
    for i, spacing in enumerate([(1.0, 1.0, 1.0), (0.45, 0.45, 0.7), (2.5, 3.0, 1.5)]):
        shape = (24, 22, 20)
        gt = blob(shape, rng)
        defective = blob(shape, rng, centre=np.asarray(shape) / 2 + 4, radii=(9, 8, 7)) & ~gt
        if i == 2:  # implant touching the array border on several faces
            gt = blob(shape, rng, centre=(1, 20, 10), radii=(7, 6, 5))
            defective = blob(shape, rng, centre=(3, 3, 19), radii=(6, 6, 6)) & ~gt
        for name, pred in variants(gt, rng):
            out.append(pytest.param(pred, gt, defective, np.asarray(spacing), id=f"{spacing}-{name}"))
    return out


@pytest.mark.parametrize("pred,gt,defective,spacing", cases())
def test_metrics_match_brute_force(pred, gt, defective, spacing):
    got = score_case(pred, gt, defective, spacing)
    hd, hd95 = brute_hd(pred, gt, spacing)
    assert got.dsc == pytest.approx(brute_dice(pred, gt), abs=1e-6)
    assert got.bdsc == pytest.approx(brute_bdsc(pred, gt, defective, spacing), abs=1e-6)
    if np.isinf(hd):
        assert np.isinf(got.hd) and np.isinf(got.hd95)
    else:
        assert got.hd == pytest.approx(hd, abs=0.01)
        assert got.hd95 == pytest.approx(hd95, abs=0.01)
    # the single-metric functions agree with score_case
    assert dice(pred, gt) == got.dsc
    assert boundary_dice(pred, gt, defective, spacing) == got.bdsc
    assert hausdorff(pred, gt, spacing) == (got.hd, got.hd95)


def test_cropping_does_not_change_results_at_the_array_border():
    """Masks touching every face of the array: cropped metrics equal uncropped ones computed by hand."""
    rng = np.random.default_rng(3)
    shape = (30, 26, 18)
    spacing = np.array([0.4, 0.4, 0.8])
    gt = rng.random(shape) < 0.3
    gt = ndimage.binary_opening(gt) | (np.indices(shape)[0] == 0)
    pred = np.roll(gt, 1, axis=1)
    defective = np.zeros(shape, bool)
    defective[-1] = True
    # uncropped reference with the same library calls on the full arrays
    s_p, s_g = surface(pred), surface(gt)
    assert np.array_equal(s_p, brute_surface(pred))
    d_pg = ndimage.distance_transform_edt(~s_g, sampling=spacing)[s_p]
    d_gp = ndimage.distance_transform_edt(~s_p, sampling=spacing)[s_g]
    near = ndimage.distance_transform_edt(~defective, sampling=spacing) <= 10.0
    got = score_case(pred, gt, defective, spacing)
    assert got.hd == max(d_pg.max(), d_gp.max())
    assert got.hd95 == np.percentile(np.concatenate([d_pg, d_gp]), 95)
    assert got.bdsc == brute_dice(pred & near, gt & near)


def test_small_implant_in_large_volume_is_cropped_exactly():
    shape = (120, 110, 60)
    spacing = np.array([0.5, 0.5, 0.6])
    gt = np.zeros(shape, bool)
    gt[50:60, 40:55, 20:28] = True
    pred = np.zeros(shape, bool)
    pred[52:63, 41:55, 19:27] = True
    defective = np.zeros(shape, bool)
    defective[45:70, 30:70, 28:33] = True  # a plate above the implant
    defective[0:5, 0:5, 0:5] = True  # far away: must not matter
    sub = tuple(slice(30, 90) for _ in range(2)) + (slice(0, 50),)
    got = score_case(pred, gt, defective, spacing)
    ref_hd = brute_hd(pred[sub], gt[sub], spacing)
    assert got.dsc == pytest.approx(brute_dice(pred, gt), abs=1e-12)
    assert got.hd == pytest.approx(ref_hd[0], abs=1e-9)
    assert got.hd95 == pytest.approx(ref_hd[1], abs=1e-9)
    near = ndimage.distance_transform_edt(~defective, sampling=spacing) <= 10.0
    assert got.bdsc == pytest.approx(brute_dice(pred & near, gt & near), abs=1e-12)
    assert 0 < got.bdsc < 1


def test_known_values():
    a = np.zeros((10, 10, 10), bool)
    a[2:5, 2:5, 2:5] = True
    b = np.zeros_like(a)
    b[2:5, 2:5, 5:8] = True  # touching, disjoint: shifted 3 voxels along z
    assert dice(a, a) == 1.0
    assert dice(a, b) == 0.0
    hd, hd95 = hausdorff(a, b, (1.0, 1.0, 2.0))
    assert hd == pytest.approx(6.0)  # farthest surface voxel of a (z=2) to b's nearest (z=5): 3 voxels × 2 mm
    assert hausdorff(a, a, (1, 1, 1)) == (0.0, 0.0)


def test_empty_conventions():
    empty = np.zeros((8, 8, 8), bool)
    full = empty.copy()
    full[2:5, 2:5, 2:5] = True
    assert dice(empty, empty) == 1.0
    assert dice(full, empty) == 0.0
    assert hausdorff(empty, empty, (1, 1, 1)) == (0.0, 0.0)
    assert hausdorff(full, empty, (1, 1, 1)) == (np.inf, np.inf)
    assert score_case(empty, full, full, (1, 1, 1)) == CaseScores(0.0, 0.0, np.inf, np.inf)
    assert score_case(empty, empty, full, (1, 1, 1)) == CaseScores(1.0, 1.0, 0.0, 0.0)


def test_bad_arguments():
    a = np.zeros((4, 4, 4), bool)
    with pytest.raises(ValueError):
        dice(a, np.zeros((4, 4, 5), bool))
    with pytest.raises(ValueError):
        hausdorff(a | True, a | True, (1, 0, 1))


@pytest.mark.parametrize("seed", range(6))
def test_metrics_agree_with_medpy_on_random_masks_with_anisotropic_spacing(seed):
    """An independent, well-kept implementation (medpy.metric.binary: dc, hd, hd95, which define surfaces
    as mask XOR its 6-connected erosion, as the challenge does) gives the same DSC, HD and HD95; bDSC is
    medpy's dc on the masks zeroed beyond 10 mm of the defective skull (its definition)."""
    medpy = pytest.importorskip("medpy.metric.binary", reason="medpy is installed with the test extras (pip install -e .[test])")
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    shape = (30, 26, 22)
    spacing = rng.uniform(0.3, 1.2, 3)
    blobs = [ndi.gaussian_filter(rng.random(shape), 2.0) for _ in range(3)]
    pred, gt, defective = (b > np.quantile(b, q) for b, q in zip(blobs, (0.7, 0.65, 0.8)))
    scores = score_case(pred, gt, defective, spacing)
    assert scores.dsc == pytest.approx(medpy.dc(pred, gt), abs=1e-12)
    assert scores.hd == pytest.approx(medpy.hd(pred, gt, voxelspacing=spacing, connectivity=1), rel=1e-9)
    assert scores.hd95 == pytest.approx(medpy.hd95(pred, gt, voxelspacing=spacing, connectivity=1), rel=1e-9)
    near = ndi.distance_transform_edt(~defective, sampling=spacing) <= 10.0
    assert scores.bdsc == pytest.approx(medpy.dc(pred & near, gt & near), abs=1e-12)
