"""Trust in a design (pcc.design.assessment): confidence map, quality figure, review flags; speck removal;
output modes that follow the umask; the fitting tool's calibration maths."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import hollow_ellipsoid

from pcc.design.assessment import QUALITY_SIGNALS, TrustModel, assess_design, load_trust_model
from pcc.design.settings import DesignSettings
from pcc.geometry.masks import drop_specks
from pcc.volume import Volume

SHAPE, SHELL = (48, 46, 44), dict(radii=(20.0, 19.0, 18.0), thickness=4.0)
FULL = hollow_ellipsoid(SHAPE, **SHELL, hole_radius=0.0) != 0
DEFECTIVE = hollow_ellipsoid(SHAPE, **SHELL, hole_radius=9.0) != 0
TRUTH = FULL & ~DEFECTIVE


def _grid(array: np.ndarray) -> Volume:
    return Volume(array.astype(np.uint8), np.eye(3) * 1.0, np.zeros(3))


def test_the_shipped_trust_model_is_a_monotone_calibration_with_its_provenance():
    trust = load_trust_model()
    scores, probabilities = np.array(trust.calibration_scores), np.array(trust.calibration_probabilities)
    assert len(scores) == len(probabilities) >= 10
    assert np.all(np.diff(scores) > 0) and np.all(np.diff(probabilities) >= 0)
    assert 0.0 <= probabilities[0] < 0.1 and probabilities[-1] > 0.9
    assert 0.5 < trust.review_below < 1.0 and len(trust.quality_coefficients) == len(QUALITY_SIGNALS)
    assert "development split" in trust.metadata["data"] and trust.metadata["held_out_figures"]
    assert TrustModel.from_dict(json.loads(json.dumps(trust.as_dict()))) == trust
    with pytest.raises(ValueError, match="unknown"):
        TrustModel.from_dict({"calibration": [0, 1]})


def test_designs_that_agree_give_a_sure_implant_and_a_clean_record():
    defective, implant = _grid(DEFECTIVE), _grid(TRUTH)
    trust = TrustModel()  # identity calibration: probability = blurred agreement
    result = assess_design(defective, implant, None, settings=DesignSettings(), trust=trust, members=[TRUTH.copy()])
    confidence = result.confidence.array
    assert confidence.dtype == np.uint8 and confidence.max() <= 100 and result.confidence.same_grid(defective)
    assert np.all(confidence[DEFECTIVE] == 0)  # bone is never implant
    core = TRUTH & ~np.pad(~TRUTH[1:-1, 1:-1, 1:-1], 1, constant_values=True)  # away from the implant's surface...
    assert np.median(confidence[TRUTH]) >= 60 and confidence[core].max() >= 80
    far = np.zeros(SHAPE, bool)
    far[:4] = True
    assert np.all(confidence[far] == 0)  # ...and nothing far from it
    assert result.signals["agreement"] == 1.0 and result.signals["unsure_cm3"] == 0.0
    assert "unsure" not in " ".join(result.quality["reasons"])


def test_designs_that_part_lower_the_confidence_where_they_part_and_say_where():
    defective, implant = _grid(DEFECTIVE), _grid(TRUTH)
    other = np.zeros_like(TRUTH)  # a second design elsewhere: a thick plate on the other side of the shell
    other[14:34, 14:34, 2:9] = True
    other &= ~DEFECTIVE
    result = assess_design(defective, implant, None, settings=DesignSettings(), trust=TrustModel(), members=[other])
    assert result.signals["agreement"] < 0.2 and result.signals["unsure_cm3"] > 1.0
    confidence = result.confidence.array
    assert confidence[TRUTH].mean() < 70 and confidence[other].mean() < 70  # neither is sure
    assert any(reason.startswith("unsure over") for reason in result.quality["reasons"])
    assert any("agree only at DSC" in reason for reason in result.quality["reasons"])


def test_a_low_expected_dsc_flags_the_design_for_review_with_its_reason_first():
    defective, implant = _grid(DEFECTIVE), _grid(TRUTH)
    strict = TrustModel(quality_intercept=0.5, quality_coefficients=(0.0, 0.0), review_below=0.9)
    result = assess_design(defective, implant, None, settings=DesignSettings(), trust=strict, members=[TRUTH.copy()])
    assert result.quality["expected_dsc"] == 0.5 and result.quality["review"] is True
    assert result.quality["reasons"][0].startswith("expected DSC 0.50")
    empty = assess_design(defective, _grid(np.zeros(SHAPE, bool)), None, settings=DesignSettings(), trust=strict,
                          members=[np.zeros(SHAPE, bool)])
    assert empty.quality["review"] is True and "no implant found" in empty.quality["reasons"][0]


@pytest.mark.parametrize("slice_mm,review", [(1.2, False), (1.5, True)])
def test_coarse_slices_are_named_as_a_reason_and_the_coarsest_flagged(slice_mm, review):
    defective = Volume(DEFECTIVE.astype(np.uint8), np.diag([0.5, 0.5, slice_mm]), np.zeros(3))
    sure = TrustModel(quality_intercept=0.95, quality_coefficients=(0.0, 0.0))
    result = assess_design(defective, defective.with_array(TRUTH.astype(np.uint8)), None, settings=DesignSettings(),
                           trust=sure, members=[TRUTH.copy()])
    assert result.signals["slice_mm"] == slice_mm and result.quality["review"] is review
    assert result.quality["reasons"][0].startswith(f"slices of {slice_mm:.1f} mm")


def test_drop_specks_removes_small_face_connected_parts_only():
    mask = np.zeros((20, 20, 20), bool)
    mask[2:12, 2:12, 2:12] = True  # 1000 voxels
    mask[15, 15, 15] = True  # a speck
    mask[12, 12, 12] = True  # touches the body by a corner only: a speck too (face-connected parts)
    mask[15:18, 2:5, 2:5] = True  # 27 voxels
    kept, parts, voxels = drop_specks(mask, 10)
    assert parts == 2 and voxels == 2 and kept.sum() == 1027 and not kept[15, 15, 15] and not kept[12, 12, 12]
    same, parts, voxels = drop_specks(kept, 10)
    assert same is kept and parts == voxels == 0


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_follow_the_umask(tmp_path, umask, mode):
    from pcc.io import write_volume

    old = os.umask(umask)
    try:
        write_volume(tmp_path / "x.nrrd", _grid(TRUTH))
    finally:
        os.umask(old)
    assert (tmp_path / "x.nrrd").stat().st_mode & 0o777 == mode


def test_isotonic_calibration_and_its_expected_calibration_error():
    from tools.release.fit_trust import BINS, ece, isotonic

    counts = np.array([10, 10, 10, 10], float)
    positives = np.array([1, 3, 2, 9], float)
    fitted = isotonic(counts, positives)
    assert np.allclose(fitted, [0.1, 0.25, 0.25, 0.9])  # the violating pair pooled, order kept
    # a perfectly calibrated histogram has no error; one that says 0.9 where the truth is 0.5 has 0.4
    histograms = np.zeros((1, 2, BINS))
    histograms[0, 0, 45] = 100
    histograms[0, 1, 45] = 91
    p = np.full(BINS, 0.91)
    assert ece(histograms, p) == pytest.approx(0.0)
    histograms[0, 1, 45] = 51
    assert ece(histograms, p) == pytest.approx(0.40)
