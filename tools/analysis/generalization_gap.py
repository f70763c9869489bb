"""Does a model overfit its training skulls? Its losses on training pairs against development-split pairs.

    python -m tools.analysis.generalization_gap --model runs/skullfix/version_N/checkpoints/last.ckpt
        [--cache cache/skullfix] [--cases 50] [--pairs 4] [--out docs/results/analysis/generalization_gap_cpu.txt]

Pairs are made from the training cache (data.cache_dir of `pcc train fit`; its cases.json names the
training and the held-out development cases) exactly as in training (pcc.learning.data.make_pair):
--pairs per case with fixed seeds, once as seen in training (augmented: mirroring, rotation, scaling,
frame jitter; shape warps off) and once without augmentation. For each group of cases (training cases'
real SkullFix defects, training cases' pcc-made defects, the development cases' real defects) it prints
the mean losses the trainer logs: the local stage's fine and coarse Chamfer distances and the global
stage's Chamfer distance, in the networks' normalised frame units (pcc.geometry.frames), and the fine
distance's sampling floor: the Chamfer distance between two disjoint samples of the same implant surface
(as many points as the training target), which even a perfect prediction scores. Equal losses on
training and development skulls say that a network does not fit its training skulls better than new
ones: then more skull shapes are not what it lacks first, while more training or capacity may be.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from pcc.design import load_model
from pcc.geometry.frames import defect_frame
from pcc.learning.cache import load_case
from pcc.learning.losses import CompletionLoss, chamfer_distance
from pcc.learning.pairs import make_pair
from tools import REPO


def sampling_floor(implant_points: np.ndarray, n_points: int, rng: np.random.Generator) -> float:
    """Chamfer distance between two disjoint random n_points-samples of an implant's surface points (world mm,
    (N, 3)), in its defect frame: what a perfect prediction scores against a sampled target (fewer points
    are drawn when the cloud holds fewer than 2·n_points)."""
    frame = defect_frame(implant_points)
    half = min(n_points, len(implant_points) // 2)
    order = rng.permutation(len(implant_points))
    first, second = (torch.from_numpy(frame.to_local(implant_points[part]).astype(np.float32))[None]
                     for part in (order[:half], order[half : 2 * half]))
    return chamfer_distance(first, second)[0].item()


def group_losses(model, cache: Path, entries: list[list[str]], pairs: int, augment: bool) -> dict[str, float]:
    """Mean fine, coarse and global Chamfer distances over `pairs` pairs of each cached case, and the mean
    sampling floor of the fine distance (sampling_floor, one per case)."""
    loss = CompletionLoss(backend="torch")
    totals = {"fine": [], "coarse": [], "global": [], "floor": []}
    for number, (name, file) in enumerate(entries):
        case = load_case(cache / file, name)
        rng = np.random.default_rng([number, int(augment)])
        totals["floor"].append(sampling_floor(case.implant_points, model.sizes.local_target, np.random.default_rng([number, 2])))
        for _ in range(pairs):
            pair = make_pair(case, model.sizes, rng, augment=augment)
            with torch.no_grad():
                prior = pair["local_prior"][None] if "local_prior" in pair else None
                coarse, fine, normals = model.local_net(pair["local_input"][None], prior)
                local = loss(coarse, fine, normals, pair["local_target"][None], pair["local_target_normals"][None])
                global_coarse, _, _ = model.global_net(pair["global_input"][None])
                global_loss, _, _ = chamfer_distance(global_coarse, pair["global_target"][None])
            totals["fine"].append(local["fine"].item())
            totals["coarse"].append(local["coarse"].item())
            totals["global"].append(global_loss.item())
    return {key: float(np.mean(values)) for key, values in totals.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="checkpoint or weights (default: the shipped weights)")
    parser.add_argument("--cache", default=str(REPO / "cache" / "skullfix"), help="the training cache (data.cache_dir)")
    parser.add_argument("--cases", type=int, default=50, help="training cases per group (the first N in the cache's order)")
    parser.add_argument("--pairs", type=int, default=4, help="pairs per case")
    parser.add_argument("--out", default=None, help="also write the table to this text file")
    args = parser.parse_args()

    cache = Path(args.cache)
    listing = cache / "cases.json"
    if not listing.is_file():
        print(f"{listing} not found: build the cache first (pcc train fit --config configs/skullfix.yaml ...)", file=sys.stderr)
        return 2
    cases = json.loads(listing.read_text())
    model = load_model(args.model, device="cpu")
    groups = {
        "training, real defects": [e for e in cases["training"] if e[0].endswith(".nrrd")][: args.cases],
        "training, pcc-made defects": [e for e in cases["training"] if not e[0].endswith(".nrrd")][: args.cases],
        "development, real defects": cases["validation"],
    }
    lines = [f"python -m tools.analysis.generalization_gap --model {args.model or '(shipped weights)'} --cases {args.cases} "
             f"--pairs {args.pairs}",
             "Chamfer distances in normalised frame units (lower is better)",
             f"{'cases':<28} {'pairs':>5} {'augmented':>9} {'local fine':>10} {'fine floor':>10} {'local coarse':>12} {'global':>8}"]
    for augment in (False, True):
        for label, entries in groups.items():
            losses = group_losses(model, cache, entries, args.pairs, augment)
            lines.append(f"{label:<28} {len(entries) * args.pairs:>5} {'yes' if augment else 'no':>9} "
                         f"{losses['fine']:>10.4f} {losses['floor']:>10.4f} {losses['coarse']:>12.4f} {losses['global']:>8.4f}")
            print(lines[-1], flush=True)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
