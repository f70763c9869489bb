"""Write a smaller copy of a training cache (pcc.learning.data), e.g. to carry it to a GPU machine without the data set.

    python -m tools.release.compact_cache cache/skullfix .carry/cache7 [--skull-points 6144] [--global-points 2048] [--implant-points 2048]
                                     [--mirror-points 4096]

Each training case keeps a uniform subset of its dense skull points near the defect, of its whole-skull
sample, of its implant surface and of its aligned mirror image near the defect (at most the given counts); validation cases are copied as they are.
The file names and cases.json stay the same, so `pcc train fit --data.cache_dir DST` finds every case.
The training pairs' sizes (configs: local_input 1024, global_input 1024, local_target 2048) must not
exceed the counts kept, or points are repeated.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from pcc.learning.cache import MANIFEST


def compact_case(source: Path, target: Path, counts: dict[str, int], rng: np.random.Generator) -> None:
    """Copy one training cache file keeping at most counts[key] points of each cloud (key: skull, global, implant, mirror)."""
    with np.load(source) as data:
        arrays = dict(data)
    for key, count in counts.items():
        if f"{key}_points" not in arrays:
            continue
        total = len(arrays[f"{key}_points"])
        if total > count:
            keep = np.sort(rng.choice(total, count, replace=False))
            arrays[f"{key}_points"] = arrays[f"{key}_points"][keep]
            arrays[f"{key}_normals"] = arrays[f"{key}_normals"][keep]
    np.savez_compressed(target, **arrays)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="cache folder with cases.json (built by pcc train fit)")
    parser.add_argument("target", type=Path, help="new folder (created)")
    parser.add_argument("--skull-points", type=int, default=6144)
    parser.add_argument("--global-points", type=int, default=2048)
    parser.add_argument("--implant-points", type=int, default=2048)
    parser.add_argument("--mirror-points", type=int, default=4096)
    args = parser.parse_args()

    manifest = args.source / MANIFEST
    if not manifest.is_file():
        sys.exit(f"{manifest} not found: give the cache folder of a pcc train fit run")
    cases = json.loads(manifest.read_text())
    args.target.mkdir(parents=True, exist_ok=True)
    counts = {"skull": args.skull_points, "global": args.global_points, "implant": args.implant_points,
              "mirror": args.mirror_points}
    rng = np.random.default_rng(0)
    for _, file in cases["training"]:
        compact_case(args.source / file, args.target / file, counts, rng)
    for _, file in cases["validation"]:
        shutil.copy(args.source / file, args.target / file)
    (args.target / MANIFEST).write_text(manifest.read_text())
    size = sum(p.stat().st_size for p in args.target.iterdir()) / 2**20
    print(f"{len(cases['training'])} training and {len(cases['validation'])} validation cases → {args.target} ({size:.1f} MiB)")


if __name__ == "__main__":
    main()
