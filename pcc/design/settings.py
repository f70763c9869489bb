"""The implant pipeline's settings: every number of it that was chosen by measurement, in one typed object.

    from pcc.design.settings import DesignSettings
    settings = DesignSettings()                           # the defaults below
    settings = dataclasses.replace(settings, local_passes=8)
    implant = design_implant(defective, model, settings=settings)

A weights file carries the settings it was measured with (`pcc_settings`; pcc.design.load_model
reads them, defaults where a field is missing), and every `pcc implant --report` records the settings
that designed its implants, so a figure can always be tied to the settings that made it. Fixed parts
of the method stay beside their code: the distinct-guess distance of the fallback (5 mm,
pcc.design.prediction.DISTINCT_GUESS_MM), the fragment rule (a tenth of the
largest part, pcc.geometry.masks.drop_fragments), the intact-bone majority (half the points), the
surface step's neighbourhood (48 points, at least 6) and how the rim step fits the bone's plate (pcc.design.rim). The comments
give the measurement behind each default ("validation" is the development split: the 10 held-out
SkullFix training cases and the varied defects cut into them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class DesignSettings:
    """Settings of pcc.design.design_implant (lengths in world mm, volumes in mm³)."""

    # Seed of the design's random draws: the skull's surface sample and the networks' input samples.
    # The same seed gives the same implant; pcc.design.assessment designs again with other seeds to see
    # how much the implant depends on them.
    sampling_seed: int = 0
    # Resamplings of the local input whose predictions are merged (more points, less noise).
    local_passes: int = 4
    # The global stage runs on this many resamplings of the skull; the prediction that agrees best with
    # the others is used (GPU-trained weights, 70 varied defects in the validation skulls: mean DSC
    # 0.738 → 0.750, cases at DSC 0: 5 → 3; tools/benchmarks/bench_robustness.py).
    global_passes: int = 8
    # Extra local predictions, each in the frame fitted to the previous one's points.
    frame_refinements: int = 2
    # Every other resampling of the local stage is mirrored left-right before the network and its output
    # mirrored back: a skull's mirror image is another plausible skull, so the two halves' errors differ.
    # (Mirroring the global stage's resamplings too made the kept guesses on two complete skulls lie less
    # in bone, 39 and 49 % instead of 63 and 52 %, so that they passed the intact-bone rule of then: not done.)
    mirror_passes: bool = True
    # Coarse points of the global stage farther than defect_gap_mm from all others start another defect
    # (its own local frame); groups below min_defect_fraction of the points are stray points.
    defect_gap_mm: float = 20.0
    min_defect_fraction: float = 0.03
    # A predicted defect is intact bone (a guess of the global stage where there is no hole) when half or
    # more of its implant points lie within intact_bone_mm of a bone voxel: an implant fills a hole, so
    # most of its surface lies away from the bone, while a guess on intact bone hugs it. Measured with
    # the GPU fine-tuned weights on the validation skulls (real and 70 varied defects) and on 25 complete
    # skulls (10 validation, 15 training), every local prediction of both searches: the median distance
    # from bone was 1.7–9.9 mm where there was a hole (1.7: a 20 mm ball) and 0.23–1.35 mm on intact bone.
    intact_bone_mm: float = 1.5
    # Searches for defects per input. The searches after the first run on the skull completed with the
    # defects found, so a defect the first search passed over (the second side of a bilateral defect)
    # is found then.
    search_rounds: int = 2
    # The later searches look only for a defect the first passed over, so they use a wider distance: both
    # sides of every bilateral defect had a median distance from bone of 4.0–6.8 mm, while a later
    # search's guess on intact bone reached 1.5 mm once the voxelizer's kernel was widened (a 7 cm³ false
    # implant 65 mm from the craniotomy of varied case 018; intact bone elsewhere: 0.23–1.35 mm).
    later_rounds_intact_bone_mm: float = 2.5
    # The first search samples the defective skull's surface from marching cubes at this step (voxels).
    # Step 2 would save about 0.6 s per case; with the shipped weights on the development split (sampling
    # seeds 0 and 1 each): SkullFix-type DSC 0.9224 / 0.9200 (step 1) against 0.9212 / 0.9166 (step 2),
    # 2× coarser grid 0.918 / 0.919 against 0.915 / 0.915, varied 0.861 / 0.843 against 0.859 / 0.848:
    # lower on two sets of three, so 1 (docs/experiments.md, "Marching cubes at a 2-voxel step for the
    # first search").
    first_round_surface_step: int = 1
    # The later searches sample the completed skull's surface from marching cubes at this step (voxels):
    # 0.4 s instead of 1.2 s on a 512×512×Z skull.
    later_rounds_surface_step: int = 2
    # Surface step before voxelization: each predicted point moves along its normal onto the plane
    # fitted to the predicted points within point_smoothing_mm of it (0: off). Development split with
    # the shipped weights: DSC 0.9224 (off), 0.9220 (2 mm), 0.9216 (3 mm), 0.9179 (5 mm): off
    # (docs/experiments.md, "A surface step before voxelization").
    point_smoothing_mm: float = 0.0
    # The voxelizer's kernel reaches about this many predicted points (pcc.geometry.voxelize.points_to_volume's
    # neighbours; its default of 8 suits clean surface samples): a wider kernel averages the network's
    # sub-millimetre noise. Varied mean DSC 0.855 (8) → 0.857 (16) → 0.858 (32); on 41 of them 0.862 (8),
    # 0.865 (32), 0.866 (64); the real cases unchanged (±0.001). 64 costs 2 s more per case than 8, 32 0.9 s.
    kernel_neighbours: int = 32
    # Voxels of the voxelized solid farther than implant_reach_mm from every predicted point are dropped:
    # an implant is a plate whose both surfaces are predicted, so its inside lies within half its
    # thickness of a point. Tried 4, 6 and 8 mm on 8 varied defects: 4 mm gave frontoorbital 081
    # 0.239 → 0.288, bilateral 048 0.703 → 0.736 (HD95 9.6 → 2.5 mm); the 10 real cases unchanged.
    implant_reach_mm: float = 4.0
    # Gaussian sigma of the solid before it is joined to the bone. Chosen on the validation split with an
    # earlier model (0.5 → DSC 0.895, 1.0 → 0.898, 2.0 → 0.895); tools/analysis/sweep_cleanup.py with the shipped
    # model: every setting within 0.007 (docs/results/ablation/sweep_cleanup_cpu.txt).
    surface_smoothing_mm: float = 1.0
    # Radius of the closing of implant ∪ skull that joins the implant to the bone rim.
    rim_closing_mm: float = 1.5
    # Parts of the implant thinner than about twice sliver_mm are dropped where they reach farther than
    # twice sliver_mm from the implant's body: the thin shells that form where predicted points run
    # along intact bone. Bilateral 048: DSC 0.678 → 0.703, HD95 24 → 9.6 mm; parietotemporal 096:
    # 0.699 → 0.727; the 10 real cases changed by at most 0.001 DSC.
    sliver_mm: float = 1.0
    # Near the bone the implant follows the bone plate continued into the hole (pcc.design.rim), blended with
    # the design over this band (mm from the bone; 0: off). Chosen on the development split's stored designs
    # (tools/analysis/rim_continuation.py: bands 2, 3.5, 5, 7, 10, 14 mm; 7 and 10 best, 7 the cheaper);
    # figures through the pipeline: docs/experiments.md, "Continuing the rim bone's plate into the hole".
    rim_band_mm: float = 7.0
    # Face-connected parts of the finished implant smaller than this are dropped from it (so the volume, the
    # STL and the report describe one solid): stray voxels the clean-up leaves beside the body. The example
    # case had 35 such parts of 1–6 voxels (0.0004–0.003 cm³); 0.1 cm³ is far below any defect's implant
    # (a burr hole's is about 1 cm³).
    speck_mm3: float = 100.0
    # An implant below both floors is no implant (the input most likely has no defect): 1 cm³ is a disc
    # of 15 mm across in 6 mm bone (a burr hole); 0.5 % of the skull's bone is 2–3.5 cm³ on SkullFix
    # skulls, whose implants are 30–65 cm³ and whose smallest synthetic defects still take about 7 cm³.
    no_defect_max_mm3: float = 1000.0
    no_defect_max_fraction: float = 0.005

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_overrides(self, assignments: list[str]) -> "DesignSettings":
        """These settings with `name=value` assignments applied (benchmarks' --set NAME=VALUE)."""
        values = self.as_dict()
        for assignment in assignments:
            name, sep, text = assignment.partition("=")
            if not sep or name.strip() not in values:
                raise ValueError(f"--set {assignment!r}: expected NAME=VALUE with NAME one of {sorted(values)}")
            name, kind = name.strip(), type(values[name.strip()])
            if kind is bool:
                if text.strip().lower() not in ("true", "false", "1", "0"):
                    raise ValueError(f"--set {assignment!r}: {name} takes true or false")
                values[name] = text.strip().lower() in ("true", "1")
            else:
                try:
                    values[name] = kind(text)
                except ValueError:
                    raise ValueError(f"--set {assignment!r}: {name} takes {'a whole number' if kind is int else 'a number'}, "
                                     f"got {text!r}") from None
        return DesignSettings(**values)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> "DesignSettings":
        """Settings from a weights file or report: unknown names are refused, missing ones take defaults."""
        values = dict(values or {})
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown design settings {unknown}; this pcc knows {sorted(known)}")
        defaults = cls()
        for name, value in values.items():
            kind = type(getattr(defaults, name))
            fits = isinstance(value, bool) if kind is bool else (
                isinstance(value, int) and not isinstance(value, bool) if kind is int else
                isinstance(value, (int, float)) and not isinstance(value, bool))
            if not fits:
                raise ValueError(f"design setting {name} must be {kind.__name__}, got {value!r}")
        return cls(**{name: type(getattr(defaults, name))(value) for name, value in values.items()})


__all__ = ["DesignSettings"]
