"""Compare `craniotomy` implant sizes with the real SkullFix training implants of the same skulls.

    python -m tools.analysis.craniotomy_sizes [--data ../shared/data/skullfix/training_set] [--seed 0] [--limit N]

For every complete skull: the real implant's voxel count, and the voxel counts of craniotomy defects
made by pcc.learning.defects.make_defect (seeded per case): at a random one of the three positions (the default of
`pcc defect --shape craniotomy`) and at the posterior position (where all training defects are).
Prints min / quartiles / max of each, in voxels and in ml.
"""

from __future__ import annotations

import argparse
import time
import zlib
from pathlib import Path

import numpy as np

from pcc.io import read_volume
from pcc.learning.defects import make_defect
from pcc.shared_data import skullfix_training_set


def describe(label: str, values) -> str:
    v = np.asarray(values, float)
    q = np.percentile(v, [0, 25, 50, 75, 100])
    return f"{label:<28} " + " ".join(f"{x:>9.0f}" for x in q)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(skullfix_training_set()))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="only the first N cases")
    args = parser.parse_args()
    data = Path(args.data)
    names = sorted(p.name for p in (data / "complete_skull").glob("*.nrrd"))[: args.limit]
    rows = []
    took = []
    for name in names:
        complete = read_volume(data / "complete_skull" / name)
        real = read_volume(data / "implant" / name)
        rng = np.random.default_rng([args.seed, zlib.crc32(Path(name).stem.encode()), 1])
        start = time.perf_counter()
        _, any_position = make_defect(complete, shape="craniotomy", rng=rng)
        took.append(time.perf_counter() - start)
        _, posterior = make_defect(complete, shape="craniotomy", rng=np.random.default_rng(rng.integers(1 << 31)),
                                   position="posterior")
        ml = complete.voxel_volume / 1000
        rows.append((int(np.count_nonzero(real.array)), int(any_position.sum()), int(posterior.sum()), ml))
        print(f"{name}: real {rows[-1][0]:>7}  craniotomy {rows[-1][1]:>7}  posterior {rows[-1][2]:>7}", flush=True)
    real, anyp, post, ml = (np.array(c) for c in zip(*rows))
    print(f"\n{len(rows)} skulls; make_defect took {np.mean(took):.2f} s on average (max {np.max(took):.2f} s)")
    print(f"{'voxels':<28} {'min':>9} {'q25':>9} {'median':>9} {'q75':>9} {'max':>9}")
    print(describe("real implants", real))
    print(describe("craniotomy (random position)", anyp))
    print(describe("craniotomy (posterior)", post))
    print(f"{'ml':<28}")
    for label, values in (("real implants", real), ("craniotomy (random position)", anyp),
                          ("craniotomy (posterior)", post)):
        print(f"{label:<28} " + " ".join(f"{x:>9.1f}" for x in np.percentile(values * ml, [0, 25, 50, 75, 100])))
    inside = np.mean((anyp >= real.min()) & (anyp <= real.max()))
    print(f"fraction of craniotomy implants within the real range: {inside:.2f} (posterior: "
          f"{np.mean((post >= real.min()) & (post <= real.max())):.2f})")


if __name__ == "__main__":
    main()
