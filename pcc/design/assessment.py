"""How far a designed implant can be trusted: a per-voxel confidence map and a self-assessed quality figure.

    from pcc.design.assessment import assess_design
    assessment = assess_design(defective, implant, model)
    assessment.confidence          # Volume, uint8 percent 0–100 on the input's grid
    assessment.quality             # {"expected_dsc": float, "review": bool, "reasons": [str, ...]}

The design is repeated with another sampling seed (settings.sampling_seed: another surface sample of the
skull, other input samples for both networks; TrustModel.member_seeds) and cheaper settings, a small
ensemble of the design's own. Where the designs agree the implant is sure; where they part (beyond a
voxel's jitter of their surfaces) it is "unsure". Per voxel, the score is the mean over the designs of
each one's solid blurred by a Gaussian of TrustModel.blur_mm (1 in the middle of a thick plate every
design holds, about 0.5 on a surface they share, lower where they part); the calibration table maps it
to the probability that the voxel belongs to the true implant. Per case, a linear model of two plain
signals (how well the designs agree, how low on the skull the implant reaches) predicts its DSC; the
volume where the designs part, where it lies and the slice spacing give the reasons in words. The
table and the model were fitted on the development split only (tools/release/fit_trust.py) and are stored in
pcc/weights/skullfix_trust.json.

Array index order (x, y, z) as everywhere in pcc; lengths in mm, volumes in cm³ where the name says so.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from pcc.design.settings import DesignSettings
from pcc.volume import Volume

SHIPPED_TRUST = Path(__file__).resolve().parents[1] / "weights" / "skullfix_trust.json"

# The signals the quality model reads, in the order of TrustModel.quality_coefficients.
QUALITY_SIGNALS = ("agreement", "lowest_height")


@dataclass(frozen=True)
class TrustModel:
    """What turns the design's own signals into a confidence map and a quality figure (the calibration table,
    the quality model and the review threshold are fitted by tools/release/fit_trust.py; the rest is chosen).

    member_seeds: sampling seeds of the extra designs (the design itself uses settings.sampling_seed).
    member_surface_step, member_local_passes, member_kernel_neighbours, member_rim_band_mm: the extra designs'
        first_round_surface_step, local_passes, kernel_neighbours and rim_band_mm (DesignSettings), cheaper than
        the design's: on the example case the extra design took 2.9 s instead of 4.0 s with the design's own
        settings (one run each, before the rim step), and the rim step (0: off) would add about 0.8 s to it.
    blur_mm: Gaussian sigma (mm) applied to each design's solid before their mean is taken.
    calibration_scores, calibration_probabilities: the calibration table, increasing in both (piecewise
        linear between its knots): mean blurred score → probability of belonging to the true implant.
    quality_intercept, quality_coefficients: expected DSC = intercept + Σ coefficient × signal, over
        QUALITY_SIGNALS (agreement raised to agreement_floor, lowest_height lowered to height_ceiling),
        clipped to [0, 1].
    agreement_floor: agreement below this counts as this: such a low agreement means that one design went
        astray (a false second defect, a miss), not which one (on the development split a case whose
        extra design found a false 40 cm³ implant had agreement 0.23 and DSC 0.89).
    height_ceiling: a defect whose lowest part lies above this height of the skull is as easy as any other
        (what makes a defect hard is reaching down to the orbits, sinuses and skull base).
    review_below: a design whose expected DSC is below this is flagged for review.
    review_slices_over_mm: a design on a grid with voxels longer than this (mm, along any axis) is flagged too.
        Set by judgement, not fitted: the development split's coarsest grids (2× coarser, up to 1.34 mm) are
        designed as well as the fine ones, so it cannot tell what coarser slices cost, while a hospital CT
        with 1.5 mm slices gave implants up to 1.5 mm too thick (issue 30's measurements).
    metadata: how and on what the table and the model were fitted.
    """

    member_seeds: tuple[int, ...] = (1,)
    member_surface_step: int = 2
    member_local_passes: int = 2
    member_kernel_neighbours: int = 8
    member_rim_band_mm: float = 0.0
    blur_mm: float = 1.0
    calibration_scores: tuple[float, ...] = (0.0, 1.0)
    calibration_probabilities: tuple[float, ...] = (0.0, 1.0)
    quality_intercept: float = 0.0
    quality_coefficients: tuple[float, ...] = (1.0, 0.0)
    agreement_floor: float = 0.8
    height_ceiling: float = 0.6
    review_below: float = 0.85
    review_slices_over_mm: float = 1.4
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)

    def probability(self, score: np.ndarray) -> np.ndarray:
        """Calibrated probability (float32, 0..1) of each mean blurred score."""
        return np.interp(score, self.calibration_scores, self.calibration_probabilities).astype(np.float32)

    def model_inputs(self, signals: dict[str, float]) -> np.ndarray:
        """The quality model's inputs (QUALITY_SIGNALS, clipped as the fields say) of a case's signals."""
        return np.array([max(signals["agreement"], self.agreement_floor), min(signals["lowest_height"], self.height_ceiling)])

    def expected_dsc(self, signals: dict[str, float]) -> float:
        value = self.quality_intercept + float(np.dot(self.quality_coefficients, self.model_inputs(signals)))
        return float(np.clip(value, 0.0, 1.0))

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrustModel":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown trust model fields {unknown}; this pcc knows {sorted(known)}")
        tuples = {"member_seeds", "calibration_scores", "calibration_probabilities", "quality_coefficients"}
        return cls(**{k: tuple(v) if k in tuples else v for k, v in values.items()})


def load_trust_model(path: str | Path | None = None) -> TrustModel:
    """The trust model of path (JSON), or the shipped one (pcc/weights/skullfix_trust.json) for None."""
    source = Path(path) if path is not None else SHIPPED_TRUST
    return TrustModel.from_dict(json.loads(source.read_text()))


@dataclass
class Assessment:
    """confidence: uint8 percent (0–100) Volume on the input's grid; quality: the report's "quality" entry;
    signals: the case's signals (QUALITY_SIGNALS and more), for the report and the fitting tool;
    score_box: (index lower corner (3,), mean blurred score (float32 box)) for the fitting tool."""

    confidence: Volume
    quality: dict[str, Any]
    signals: dict[str, float]
    score_box: tuple[np.ndarray, np.ndarray]


def design_members(defective: Volume, model, settings: DesignSettings, trust: TrustModel) -> list[np.ndarray]:
    """The extra designs (bool (X, Y, Z) arrays) with trust.member_seeds as sampling seeds."""
    import pcc.design  # the package's design_implant, looked up when called (a test may stand in for it)

    members = []
    for seed in trust.member_seeds:
        varied = dataclasses.replace(settings, sampling_seed=seed, first_round_surface_step=trust.member_surface_step,
                                     local_passes=trust.member_local_passes, kernel_neighbours=trust.member_kernel_neighbours,
                                     rim_band_mm=trust.member_rim_band_mm)
        members.append(pcc.design.design_implant(defective, model, settings=varied).mask())
    return members


def assess_design(defective: Volume, implant: Volume, model, *, settings: DesignSettings | None = None,
                  trust: TrustModel | None = None, members: list[np.ndarray] | None = None) -> Assessment:
    """Confidence map and quality figure of `implant`, the design of `defective` by `model` with `settings`.

    members: the extra designs when already made (design_members), else they are made here.
    """
    settings = settings if settings is not None else model.settings
    trust = trust if trust is not None else load_trust_model()
    if members is None:
        members = design_members(defective, model, settings, trust)
    from pcc.challenge.metrics import dice
    from pcc.geometry.masks import bounding_box, box_slices

    designs = [implant.mask(), *members]
    spacing = np.asarray(defective.spacing)
    confidence = np.zeros(defective.shape, dtype=np.uint8)
    signals: dict[str, float] = {"slice_mm": float(spacing.max()), "implant_cm3": _cm3(designs[0], defective)}
    boxes = [bounding_box(design) for design in designs if design.any()]
    if not boxes:
        signals.update(agreement=1.0, unsure_cm3=0.0, lowest_height=1.0)
        quality = {"expected_dsc": 0.0, "review": True,
                   "reasons": ["no implant found: if the skull has a defect, it must be designed by hand"]}
        return Assessment(defective.with_array(confidence), quality, signals, (np.zeros(3, int), np.zeros((0, 0, 0), np.float32)))
    margin = np.ceil(3.0 * trust.blur_mm / spacing).astype(int) + 1
    lower = np.maximum(np.min([b[0] for b in boxes], axis=0) - margin, 0)
    upper = np.minimum(np.max([b[1] for b in boxes], axis=0) + margin, defective.shape)
    box = box_slices(lower, upper)
    # The blur is linear: the mean of the blurred designs is the blurred count of designs holding each voxel.
    count = np.zeros(tuple(upper - lower), dtype=np.float32)
    for design in designs:
        count += design[box]
    score = ndimage.gaussian_filter(count, trust.blur_mm / spacing) / len(designs)
    bone = defective.mask(box)
    score[bone] = 0.0
    probability = trust.probability(score)
    probability[bone] = 0.0
    confidence[box] = np.rint(100.0 * probability).astype(np.uint8)

    main = designs[0][box]
    signals["agreement"] = float(np.mean([dice(main, member[box]) for member in members])) if members else 1.0
    # Unsure: where the designs part (some hold the voxel, some do not), beyond a voxel's jitter of their surfaces.
    parted = (count > 0) & (count < len(designs))
    unsure = ndimage.binary_opening(parted)
    signals["unsure_cm3"] = _cm3(unsure, defective)
    place = _anatomy(defective)
    signals["lowest_height"] = place.lowest_height(np.argwhere(main) + lower) if main.any() else 1.0
    expected = trust.expected_dsc(signals)
    reasons = _reasons(signals, expected, trust, place, np.argwhere(unsure)[::50] + lower)
    review = expected < trust.review_below or not main.any() or signals["slice_mm"] > trust.review_slices_over_mm
    quality = {"expected_dsc": round(expected, 3), "review": bool(review), "reasons": reasons}
    return Assessment(defective.with_array(confidence), quality, signals, (lower, score))


def _cm3(mask: np.ndarray, grid: Volume) -> float:
    return float(np.count_nonzero(mask)) * grid.voxel_volume / 1000.0


@dataclass
class _Anatomy:
    """Where a voxel lies on the skull: fractions of the bone's world bounding box (0..1) along the
    left-right, front-back and foot-head axes, when the volume's space names them (LPS or RAS)."""

    grid: Volume
    lower: np.ndarray  # (3,) world mm of the bone's box in the volume's space
    upper: np.ndarray
    known: bool

    def fractions(self, index: np.ndarray) -> np.ndarray:
        """(N, 3) voxel indices → (N, 3): left fraction (1 = far left), anterior fraction (1 = front),
        height (1 = top of the bone)."""
        world = self.grid.index_to_world(index)
        u = (world - self.lower) / np.maximum(self.upper - self.lower, 1e-6)
        if self.grid.space.startswith("right-anterior"):
            u[:, :2] = 1.0 - u[:, :2]
        return np.column_stack([u[:, 0], 1.0 - u[:, 1], u[:, 2]])

    def lowest_height(self, index: np.ndarray) -> float:
        """The height fraction of the 2nd-percentile lowest of the voxels (N, 3) (1 when the space is unknown)."""
        if not self.known:
            return 1.0
        index = index[:: max(1, len(index) // 20000)]
        return float(np.percentile(self.fractions(index)[:, 2], 2))

    def region(self, index: np.ndarray) -> str:
        """Plain words for where the voxels (N, 3) lie, from their mean position."""
        if not self.known or not len(index):
            return ""
        left, front, height = self.fractions(index).mean(axis=0)
        side = "left " if left > 0.65 else "right " if left < 0.35 else ""
        if height < 0.45 and front > 0.65:
            return "near the frontal sinus and the orbital roofs"
        if height < 0.45 and side:
            return f"near the {side}temporal bone and the skull base"
        lobe = "frontal" if front > 0.6 else "occipital" if front < 0.3 else "parietal"
        return f"over the {side}{lobe} bone"


def _anatomy(defective: Volume) -> _Anatomy:
    known = defective.space.startswith(("left-posterior", "right-anterior"))
    from pcc.geometry.masks import bounding_box

    lower, upper = bounding_box(defective.mask())
    corners = defective.index_to_world(np.array([lower, upper - 1]))
    return _Anatomy(defective, corners.min(axis=0), corners.max(axis=0), known)


def _reasons(signals: dict[str, float], expected: float, trust: TrustModel, place: _Anatomy,
             unsure_index: np.ndarray) -> list[str]:
    """Plain words a planner acts on, the weightiest first."""
    reasons = []
    if signals["implant_cm3"] == 0.0:
        reasons.append("no implant found, but a design from another sampling found one: check the skull for a defect")
    elif expected < trust.review_below:
        reasons.append(f"expected DSC {expected:.2f}, below {trust.review_below:.2f}: check the whole implant")
    if signals["unsure_cm3"] >= 0.5:
        where = place.region(unsure_index)
        reasons.append(f"unsure over {signals['unsure_cm3']:.1f} cm³" + (f" {where}" if where else ""))
    if signals["agreement"] < 0.9:
        reasons.append(f"designs from other samplings agree only at DSC {signals['agreement']:.2f}")
    if signals["slice_mm"] > trust.review_slices_over_mm:  # a reason to review: first unless the expected DSC is
        reasons.insert(1 if expected < trust.review_below else 0,
                       f"slices of {signals['slice_mm']:.1f} mm: coarser than any grid pcc was checked on (up to 1.34 mm): "
                       "check the implant's thickness against the CT")
    elif signals["slice_mm"] > 1.0:
        reasons.append(f"slices of {signals['slice_mm']:.1f} mm: coarser than the training data (0.4–0.8 mm)")
    return reasons


__all__ = ["Assessment", "QUALITY_SIGNALS", "SHIPPED_TRUST", "TrustModel", "assess_design", "design_members",
           "load_trust_model"]
