"""Sweep the pipeline's clean-up settings on cases with ground truth (an ablation, not a tuner).

    python tools/sweep_cleanup.py [--model PATH] [--root ../shared/data/skullfix/training_set]
                                  [--passes 4,8] [--smoothing 0.5,1.0,1.5] [--rim 1.0,1.5,2.0]

For each validation case (the fixed split, never trained on) and each number of local resamplings,
the network runs once; every (solid smoothing, rim closing) pair is then applied to that output and
scored. Prints the mean DSC, bDSC and HD95 (mm) of every combination.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pcc.pipeline as pipeline  # noqa: E402
from pcc.data import case_names, default_validation_split  # noqa: E402
from pcc.io import read_volume  # noqa: E402
from pcc.metrics import score_case  # noqa: E402


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "skullfix" / "training_set"))
    parser.add_argument("--model", default=None)
    parser.add_argument("--passes", default="4,8")
    parser.add_argument("--smoothing", default="0.5,1.0,1.5", help="SURFACE_SMOOTHING_MM values")
    parser.add_argument("--rim", default="1.0,1.5,2.0", help="RIM_CLOSING_MM values")
    args = parser.parse_args()

    root = Path(args.root)
    model = pipeline.load_model(args.model, device="cpu")
    settings = list(itertools.product([int(p) for p in args.passes.split(",")], floats(args.smoothing), floats(args.rim)))
    scores: dict[tuple, list[tuple[float, float, float]]] = {s: [] for s in settings}
    for name in default_validation_split(case_names(root)):
        defective = read_volume(root / "defective_skull" / name)
        truth = read_volume(root / "implant" / name).mask()
        for passes in sorted({s[0] for s in settings}):
            cloud = pipeline.implant_cloud(defective, model, passes=passes)
            for setting in (s for s in settings if s[0] == passes):
                implant = pipeline.implant_from_points(cloud, defective, smoothing_mm=setting[1], rim_closing_mm=setting[2])
                result = score_case(implant, truth, defective.mask(), defective.spacing)
                scores[setting].append((result.dsc, result.bdsc, result.hd95))
        print(f"{name} done", flush=True)
    print(f"{'passes':>6} {'smooth mm':>9} {'rim mm':>6} {'DSC':>6} {'bDSC':>6} {'HD95':>6}")
    for (passes, smoothing, rim), values in scores.items():
        dsc, bdsc, hd95 = np.mean(values, axis=0)
        print(f"{passes:>6} {smoothing:>9.1f} {rim:>6.1f} {dsc:6.4f} {bdsc:6.4f} {hd95:6.3f}")


if __name__ == "__main__":
    main()
