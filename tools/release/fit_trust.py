"""Fit and check pcc's trust model (confidence calibration, expected DSC, review flag) on the development split.

    python -m tools.release.fit_trust collect [--root DIR] [--model PATH] [--out docs/results/trust/trust_development_cpu.npz]
    python -m tools.release.fit_trust fit [--data docs/results/trust/trust_development_cpu.npz] [--write pcc/weights/skullfix_trust.json]
    python -m tools.release.fit_trust misses --seeds 0,1,2,3,4 [--root DIR] [--csv docs/results/trust/misses_development_cpu.csv]

The development split is the 10 SkullFix training cases never trained on (pcc.learning.data's fixed split):
their real defects, the 70 varied defects tools/benchmarks/bench_robustness.py cuts into the same skulls (one per pcc
shape), and the real defects on a 2× coarser grid (bench_robustness's "coarse" part, a stand-in for
hospital CTs' thicker slices). 90 cases in all, 10 skulls.

collect: designs every case as `pcc implant` does (the model's settings) plus the trust model's extra designs,
and stores per case: the true DSC, the signals of pcc.design.assessment, and a histogram of the mean blurred
score (50 bins over 0..1) over the voxels within 3 mm of the true or the designed implant, bone excluded
(the region the confidence check uses), with how many of them are true implant voxels.

fit: the calibration table (isotonic: pool-adjacent-violators over the pooled histogram) and the quality model
(least squares of DSC on pcc.design.assessment.QUALITY_SIGNALS, clipped by --agreement-floor and
--height-ceiling); each is also fitted leave-one-skull-out (all
cases of a skull held out together), and the figures printed are those of the held-out predictions:
expected calibration error (10 equal bins of p), Spearman correlation and mean absolute error of the expected
DSC, and the review threshold: the lowest one that flags every held-out case below DSC 0.80, plus --margin,
with what it flags. --write stores the table, the model (fitted on all 90 cases) and that threshold.

misses: designs every real and varied case with each sampling seed (settings.sampling_seed) and counts
the cases where no implant was found.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from pcc.challenge.metrics import dice
from pcc.design import design_implant, load_model
from pcc.design.assessment import (
    QUALITY_SIGNALS,
    TrustModel,
    assess_design,
    design_members,
)
from pcc.io import read_volume
from pcc.learning.cases import case_names, default_validation_split
from pcc.learning.defects import SHAPES
from pcc.shared_data import skullfix_training_set
from tools import REPO
from tools.benchmarks.cases import downsample_2x, varied_defect

BINS = 50
REGION_MM = 3.0


def development_cases(root: Path, skulls: list[str] | None = None):
    """(part, case, shape, defective Volume, true implant bool array) of the 90 development cases, skull by skull
    (of the given skulls only, e.g. ['005', '018'], when skulls is given)."""
    for name in default_validation_split(case_names(root)):
        if skulls is not None and name[:-5] not in skulls:
            continue
        defective = read_volume(root / "defective_skull" / name)
        truth = read_volume(root / "implant" / name).mask()
        yield "real", name[:-5], "craniotomy", defective, truth
        small, small_truth = downsample_2x(defective, truth)
        yield "coarse", name[:-5], "2x", small, small_truth
        complete = read_volume(root / "complete_skull" / name)
        for shape in SHAPES:
            cut, implant = varied_defect(complete, name, shape, 0)
            yield "varied", name[:-5], shape, cut, implant


def region_histogram(score_box, designed: np.ndarray, truth: np.ndarray, defective) -> np.ndarray:
    """(2, BINS): voxel count and true-implant count per score bin, over the voxels within REGION_MM of the
    true or the designed implant, bone excluded."""
    from scipy import ndimage

    from pcc.geometry.masks import box_slices, widened_box

    union = designed | truth
    spacing = np.asarray(defective.spacing)
    lower, upper = widened_box(union, np.ceil(REGION_MM / spacing).astype(int) + 1)
    box = box_slices(lower, upper)
    near = ndimage.distance_transform_edt(~union[box], sampling=spacing) <= REGION_MM
    near &= ~defective.mask(box)
    score = np.zeros(near.shape, np.float32)
    s_lower, s_score = score_box
    if s_score.size:  # the part of the score box inside this box
        a = np.maximum(s_lower, lower)
        b = np.minimum(s_lower + s_score.shape, upper)
        if np.all(b > a):
            score[box_slices(a - lower, b - lower)] = s_score[box_slices(a - s_lower, b - s_lower)]
    index = np.minimum((score[near] * BINS).astype(int), BINS - 1)
    counts = np.bincount(index, minlength=BINS)
    positives = np.bincount(index, weights=truth[box][near], minlength=BINS)
    return np.stack([counts, positives])


def collect(args) -> None:
    root = Path(args.root)
    model = load_model(args.model, device=args.device)
    trust = TrustModel()  # identity calibration: the raw scores are what is collected
    rows, histograms = [], []
    start = time.perf_counter()
    for part, case, shape, defective, truth in development_cases(root):
        t0 = time.perf_counter()
        implant = design_implant(defective, model)
        members = design_members(defective, model, model.settings, trust)
        assessment = assess_design(defective, implant, model, trust=trust, members=members)
        dsc = dice(implant.mask(), truth)
        histograms.append(region_histogram(assessment.score_box, implant.mask(), truth, defective))
        rows.append({"part": part, "case": case, "shape": shape, "dsc": dsc, **assessment.signals,
                     "seconds": time.perf_counter() - t0})
        print(f"{part:>6} {case} {shape:>16}  DSC {dsc:.3f}  agreement {assessment.signals['agreement']:.3f}  "
              f"unsure {assessment.signals['unsure_cm3']:5.1f} cm³  lowest {assessment.signals['lowest_height']:.2f}  "
              f"{time.perf_counter() - t0:4.1f} s", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    keys = list(rows[0])
    np.savez_compressed(out, histograms=np.array(histograms), **{k: np.array([r[k] for r in rows]) for k in keys},
                        meta=json.dumps(_provenance(args, time.perf_counter() - start)))
    with open(out.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows({k: (round(v, 5) if isinstance(v, float) else v) for k, v in r.items()} for r in rows)
    print(f"wrote {out} and {out.with_suffix('.csv')} ({time.perf_counter() - start:.0f} s)")


def _provenance(args, seconds: float) -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "unknown"
    return {"command": "python -m tools.release.fit_trust " + " ".join(sys.argv[1:]), "commit": commit,
            "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}", "minutes": round(seconds / 60, 1),
            "model": args.model or "shipped weights"}


def isotonic(counts: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """Pool-adjacent-violators: the increasing step function closest (weighted least squares) to positives/counts."""
    blocks = []  # [value, weight, size]
    for n, k in zip(counts, positives):
        value = k / n if n else 0.0
        blocks.append([value, float(n), 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, s2 = blocks.pop()
            v1, w1, s1 = blocks.pop()
            w = w1 + w2
            blocks.append([(v1 * w1 + v2 * w2) / w if w else 0.0, w, s1 + s2])
    return np.concatenate([[v] * s for v, _, s in blocks])


def calibration_table(histograms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(score knots, probabilities) fitted on the summed histograms: bin centres, isotonic fractions."""
    total = histograms.sum(axis=0)
    centres = (np.arange(BINS) + 0.5) / BINS
    return centres, isotonic(total[0], total[1])


def ece(histograms: np.ndarray, probabilities_per_bin: np.ndarray) -> float:
    """Expected calibration error over 10 equal bins of p, from score-bin histograms and each bin's p."""
    counts, positives = histograms.sum(axis=0)
    p_bin = np.minimum((probabilities_per_bin * 10).astype(int), 9)
    error, total = 0.0, counts.sum()
    for b in range(10):
        chosen = p_bin == b
        n = counts[chosen].sum()
        if n:
            error += abs((counts[chosen] * probabilities_per_bin[chosen]).sum() / n - positives[chosen].sum() / n) * n / total
    return float(error)


def quality_fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """[intercept, coefficients...] of least squares y ≈ intercept + x @ coefficients."""
    design = np.column_stack([np.ones(len(x)), x])
    return np.linalg.lstsq(design, y, rcond=None)[0]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def fit(args) -> None:
    data = np.load(args.data)
    histograms, dsc, cases, parts = data["histograms"], data["dsc"], data["case"], data["part"]
    shape = TrustModel(agreement_floor=args.agreement_floor, height_ceiling=args.height_ceiling)
    x = np.array([shape.model_inputs({name: float(data[name][i]) for name in QUALITY_SIGNALS}) for i in range(len(dsc))])
    held_ece, held_expected = [], np.zeros(len(dsc))
    for skull in sorted(set(cases)):
        out = cases == skull
        _, probability = calibration_table(histograms[~out])
        held_ece.append((ece(histograms[out], probability), histograms[out][:, 0].sum()))
        coefficients = quality_fit(x[~out], dsc[~out])
        held_expected[out] = np.clip(coefficients[0] + x[out] @ coefficients[1:], 0, 1)
    knots, probability = calibration_table(histograms)
    coefficients = quality_fit(x, dsc)
    low, good = dsc < 0.80, dsc >= 0.90
    # The review threshold: the lowest that flags every held-out case below 0.80, raised by args.margin for
    # failures unlike those of the development split.
    catch_all = float(held_expected[low].max()) + 0.001 if low.any() else 0.8
    threshold = round(catch_all + args.margin, 3)
    flagged = held_expected < threshold
    lines = [
        f"development split: {len(dsc)} cases ({', '.join(f'{p} {int((parts == p).sum())}' for p in sorted(set(parts)))}), "
        f"{len(set(cases))} skulls",
        f"confidence calibration, ECE over the voxels within {REGION_MM:g} mm of the true or designed implant (10 bins): "
        f"held out per skull {np.average([e for e, _ in held_ece], weights=[n for _, n in held_ece]):.4f} "
        f"(worst skull {max(e for e, _ in held_ece):.4f})",
        f"expected DSC, held out per skull: Spearman {spearman(held_expected, dsc):.3f}, "
        f"mean |expected - DSC| {np.abs(held_expected - dsc).mean():.4f}",
        f"review below expected DSC {threshold:.3f} (every case below 0.80: below {catch_all:.3f}, + a margin of "
        f"{args.margin:g}): flags {int(flagged[low].sum())} of {int(low.sum())} cases below 0.80, "
        f"{int(flagged[good].sum())} of {int(good.sum())} cases >= 0.90 ({100 * flagged[good].mean():.0f} %), "
        f"{int(flagged[(dsc >= 0.80) & ~good].sum())} of {int(((dsc >= 0.80) & ~good).sum())} cases in 0.80-0.90, "
        f"{int(flagged.sum())} of {len(dsc)} in all",
        f"quality model (all cases): intercept {coefficients[0]:.4f}, "
        + ", ".join(f"{n} {c:.4f}" for n, c in zip(QUALITY_SIGNALS, coefficients[1:])),
    ]
    for part in sorted(set(parts)):
        chosen = parts == part
        lines.append(f"  {part:>6}: DSC {dsc[chosen].mean():.3f}, expected {held_expected[chosen].mean():.3f}, "
                     f"Spearman {spearman(held_expected[chosen], dsc[chosen]):.3f}, flagged {int(flagged[chosen].sum())}")
    print("\n".join(lines))
    if args.report:
        Path(args.report).write_text("\n".join(lines) + "\n")
    if args.write:
        meta = json.loads(str(data["meta"]))
        trust = TrustModel(
            calibration_scores=tuple(float(k) for k in knots), calibration_probabilities=tuple(float(p) for p in probability),
            quality_intercept=float(coefficients[0]), quality_coefficients=tuple(float(c) for c in coefficients[1:]),
            agreement_floor=args.agreement_floor, height_ceiling=args.height_ceiling, review_below=threshold,
            metadata={"data": "development split of the SkullFix training set (10 skulls never trained on: real, "
                              "2x coarser and 70 varied defects, 90 cases); tools/release/fit_trust.py",
                      "collected": meta, "fitted": "python -m tools.release.fit_trust " + " ".join(sys.argv[1:]),
                      "held_out_figures": lines})
        Path(args.write).write_text(json.dumps(trust.as_dict(), indent=1) + "\n")
        print(f"wrote {args.write}")


def misses(args) -> None:
    root = Path(args.root)
    model = load_model(args.model, device=args.device)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    skulls = args.skulls.split(",") if args.skulls else None
    for part, case, shape, defective, truth in development_cases(root, skulls):
        if part == "coarse":
            continue
        for seed in seeds:
            settings = model.settings.with_overrides([f"sampling_seed={seed}"])
            implant = design_implant(defective, model, settings=settings).mask()
            rows.append([part, case, shape, seed, round(dice(implant, truth), 4), int(implant.sum())])
            print(*rows[-1], flush=True)
    missed = [r for r in rows if r[5] == 0]
    print(f"{len(missed)} missed defects of {len(rows)} designs (seeds {args.seeds}): {missed}")
    if args.csv:
        with open(args.csv, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["part", "case", "shape", "seed", "dsc", "implant_voxels"])
            writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("collect", "misses"):
        p = sub.add_parser(name)
        p.add_argument("--root", default=str(skullfix_training_set()), help="SkullFix training_set folder")
        p.add_argument("--model", default=None)
        p.add_argument("--device", default="auto")
    sub.choices["collect"].add_argument("--out", default=str(REPO / "docs" / "results" / "trust" / "trust_development_cpu.npz"))
    sub.choices["misses"].add_argument("--seeds", default="0,1,2,3,4")
    sub.choices["misses"].add_argument("--csv", default=None)
    sub.choices["misses"].add_argument("--skulls", default=None, help="only these development skulls, e.g. 073,081")
    p = sub.add_parser("fit")
    p.add_argument("--data", default=str(REPO / "docs" / "results" / "trust" / "trust_development_cpu.npz"))
    p.add_argument("--write", default=None, help="write the trust model JSON (e.g. pcc/weights/skullfix_trust.json)")
    p.add_argument("--report", default=None, help="write the printed figures to this file")
    p.add_argument("--agreement-floor", type=float, default=TrustModel.agreement_floor)
    p.add_argument("--height-ceiling", type=float, default=TrustModel.height_ceiling)
    p.add_argument("--margin", type=float, default=0.02,
                   help="added to the lowest review threshold that flags every held-out case below DSC 0.80 (default 0.02)")
    args = parser.parse_args()
    {"collect": collect, "fit": fit, "misses": misses}[args.command](args)


if __name__ == "__main__":
    main()
