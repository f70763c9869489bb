"""Export a training checkpoint as the shipped weights: pcc/weights/skullfix.pt + skullfix.json.

    python -m tools.release.export_weights runs/skullfix/version_N/checkpoints/last.ckpt \
        --command "pcc train fit --config configs/skullfix.yaml ..." --machine "2-core CPU" \
        --train-minutes 75 --validation bench.csv [--base WEIGHTS_IT_WAS_FINE_TUNED_FROM.pt]

Keeps only what inference needs (network classes, their arguments, weights, point counts) and a
metadata record: data, command, commit, validation figures, time and machine, the weights' SHA-256
(pcc.models.state_digest, checked when pcc loads the file) and the bundled example case's figures
(the CPU path is deterministic; tests/design/test_learned.py pins them).

    python -m tools.release.export_weights --checks-only pcc/weights/skullfix.pt

records only the last two in an existing weights file (its tensors and other metadata untouched).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import torch

from pcc.design.settings import DesignSettings
from tools import REPO


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a pcc train checkpoint, or with --checks-only the weights file to update")
    parser.add_argument("--checks-only", action="store_true", help="only record the SHA-256 and the example's figures")
    parser.add_argument("--out", default=str(REPO / "pcc" / "weights" / "skullfix.pt"))
    parser.add_argument("--command", help="the exact training command")
    parser.add_argument("--machine")
    parser.add_argument("--commit", default="", help="the commit trained (default: the repository's HEAD)")
    parser.add_argument("--train-minutes", type=float)
    parser.add_argument("--validation", help="CSV written by tools/benchmarks/bench_implant.py on the validation split")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a pcc.design.settings.DesignSettings field the weights carry, other than its default (repeatable)")
    parser.add_argument("--base", help="the weights a fine-tune started from (model.init_weights): their metadata is kept")
    parser.add_argument("--data", default="SkullFix training_set (AutoImplant 2020), 60 cases; 10 held out: 005 018 028 038 048 061 073 081 089 096")
    args = parser.parse_args()
    if args.checks_only:
        record_checks(Path(args.checkpoint))
        return
    if not (args.command and args.machine and args.train_minutes is not None):
        parser.error("--command, --machine and --train-minutes are required to export a checkpoint")

    checkpoint = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    earlier = checkpoint.get("pcc_metadata", {})
    state = {k: v for k, v in checkpoint["state_dict"].items() if k.startswith(("global_net.", "local_net."))}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout.strip()
    except FileNotFoundError:  # no git (e.g. a GPU machine with a copy of the working tree)
        commit = ""
    commit = args.commit or commit or "unknown"
    metadata = {
        "data": args.data,
        "command": args.command,
        "commit": commit,
        "machine": args.machine,
        "training_minutes": args.train_minutes,
        # an already exported file (e.g. from a GPU machine) carries these in its own metadata
        "epochs": checkpoint.get("epoch", earlier.get("epochs")),
        "global_step": checkpoint.get("global_step", earlier.get("global_step")),
        "source_checkpoint": earlier.get("source_checkpoint", Path(args.checkpoint).name),
    }
    base = torch.load(args.base, map_location="cpu", weights_only=True) if args.base else {}
    if args.base:
        metadata["fine_tuned_from"] = base.get("pcc_metadata", {})
    if args.validation:
        with open(args.validation) as handle:
            rows = list(csv.DictReader(handle))
        metadata["validation"] = {
            "cases": [r["case"] for r in rows],
            **{f"mean_{k}": float(np.mean([float(r[k]) for r in rows])) for k in ("dsc", "bdsc", "hd95", "total")},
        }
    carried = checkpoint.get("pcc_settings")  # an exported file carries them; a training checkpoint does not
    if carried is None:
        carried = base.get("pcc_settings")
    settings = DesignSettings.from_dict(carried).with_overrides(args.set)
    out = Path(args.out)
    torch.save(
        {"pcc_networks": checkpoint["pcc_networks"], "pcc_sizes": checkpoint.get("pcc_sizes", {}), "state_dict": state,
         "pcc_settings": settings.as_dict(), "pcc_metadata": metadata},
        out,
    )
    record_checks(out)


def record_checks(path: Path) -> None:
    """Add the weights' SHA-256 and the example case's DSC, bDSC, HD95 (CPU) to a weights file and its .json,
    and the design settings it carries (the defaults when it carries none) to both."""
    from pcc.challenge.metrics import score_case
    from pcc.design import design_implant, load_model
    from pcc.examples import EXAMPLE_DEFECTIVE, EXAMPLE_IMPLANT
    from pcc.io import read_volume
    from pcc.models import state_digest

    weights = torch.load(path, map_location="cpu", weights_only=True)
    metadata = weights["pcc_metadata"]
    metadata.pop("weights_sha256", None)  # recomputed below; load_model must not check a stale one
    weights["pcc_settings"] = DesignSettings.from_dict(weights.get("pcc_settings")).as_dict()
    metadata["design_settings"] = weights["pcc_settings"]
    torch.save(weights, path)
    defective, truth = read_volume(EXAMPLE_DEFECTIVE), read_volume(EXAMPLE_IMPLANT)
    implant = design_implant(defective, load_model(path, device="cpu"))
    scores = score_case(implant.mask(), truth.mask(), defective.mask(), defective.spacing)
    metadata["weights_sha256"] = state_digest(weights["state_dict"])
    metadata["example_case"] = {"case": EXAMPLE_DEFECTIVE.name, "device": "cpu", "dsc": scores.dsc,
                                "bdsc": scores.bdsc, "hd95": scores.hd95}
    torch.save(weights, path)
    path.with_suffix(".json").write_text(json.dumps(metadata, indent=2) + "\n")
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) and {path.with_suffix('.json')}: "
          f"example DSC {scores.dsc:.4f}, bDSC {scores.bdsc:.4f}, HD95 {scores.hd95:.3f} mm")


if __name__ == "__main__":
    main()
