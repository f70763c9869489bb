"""One picture per defect shape: three orthogonal max-projections of a skull with the implant in colour.

    python -m tools.analysis.defect_gallery [COMPLETE.nrrd] [--out docs/images] [--seed 3] [--shapes all|S1,S2]

Writes OUT/defect_SHAPE.png. Default skull: ../shared/data/skullfix/training_set/complete_skull/000.nrrd
(SkullFix, CC BY-NC-SA 4.0: the pictures are derived from it and carry that licence).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from pcc.io import read_volume
from pcc.learning.defects import ALL_SHAPES, make_defect
from pcc.shared_data import skullfix_training_set
from tools import REPO


def projections(defective: np.ndarray, implant: np.ndarray, spacing: np.ndarray, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    views = [  # (projection axis, image rows axis, image columns axis, name)
        (2, 1, 0, "axial (top of image: anterior)"),
        (0, 2, 1, "sagittal (left of image: anterior)"),
        (1, 2, 0, "coronal (right of image: patient's left)"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.6))
    for ax, (proj, rows, cols, name) in zip(axes, views):
        # bone depth shading: fraction of bone along the ray, so the implant shows over the skull
        skull = (defective | implant).sum(axis=proj).astype(float)
        imp = implant.any(axis=proj)
        keep = [a for a in range(3) if a != proj]
        img = skull if keep.index(rows) == 0 else skull.T
        mask = imp if keep.index(rows) == 0 else imp.T
        img = img / max(img.max(), 1)
        rgb = np.stack([img] * 3, axis=-1) * 0.85
        rgb[mask] = 0.35 * rgb[mask] + 0.65 * np.array([0.9, 0.15, 0.1])
        extent = [0, defective.shape[cols] * spacing[cols], 0, defective.shape[rows] * spacing[rows]]
        origin = "lower" if rows == 2 else "upper"
        ax.imshow(rgb, extent=extent, origin=origin, interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("mm")
        ax.set_aspect("equal")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("complete", nargs="?",
                        default=str(skullfix_training_set() / "complete_skull" / "000.nrrd"))
    parser.add_argument("--out", default=str(REPO / "docs/images"))
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--shapes", default="all", help=f"all or a comma-separated subset of {','.join(ALL_SHAPES)}")
    args = parser.parse_args()
    shapes = ALL_SHAPES if args.shapes == "all" else tuple(s.strip() for s in args.shapes.split(","))
    if set(shapes) - set(ALL_SHAPES):
        parser.error(f"unknown shapes {sorted(set(shapes) - set(ALL_SHAPES))}")
    complete = read_volume(args.complete)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for shape in shapes:
        start = time.perf_counter()
        defective, implant = make_defect(complete, shape=shape, rng=np.random.default_rng(args.seed))
        took = time.perf_counter() - start
        volume_ml = implant.sum() * complete.voxel_volume / 1000
        title = f"{shape}: implant {int(implant.sum())} voxels ({volume_ml:.1f} ml), {took:.2f} s"
        projections(defective, implant, complete.spacing, title, out / f"defect_{shape}.png")
        print(f"{out / f'defect_{shape}.png'}  {title}")


if __name__ == "__main__":
    main()
