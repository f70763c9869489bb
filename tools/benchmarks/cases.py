"""The cases the benchmarks share: the development split's selection, the varied defects cut into its
complete skulls, and the same cases on a 2× coarser grid (tools.benchmarks.bench_robustness)."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from pcc.learning.cases import case_names, default_validation_split
from pcc.learning.defects import make_defect
from pcc.volume import Volume


def select_cases(root: Path, cases: str) -> list[str]:
    """Case file names: "validation" (the development split), N (its first N), or a comma list of names."""
    validation = default_validation_split(case_names(root))
    if cases == "validation":
        return validation
    if cases.isdigit():
        return validation[: int(cases)]
    return [n if n.endswith(".nrrd") else f"{n}.nrrd" for n in cases.split(",")]


def varied_defect(complete: Volume, name: str, shape: str, seed: int) -> tuple[Volume, np.ndarray]:
    """(defective skull, true implant as a bool (X, Y, Z) array) of the defect this benchmark cuts into the
    complete skull of case `name` (its file name, e.g. '005.nrrd'): seeded by seed, name and shape."""
    rng = np.random.default_rng([seed, zlib.crc32(f"{name}/{shape}".encode())])
    defective, implant = make_defect(complete, shape=shape, rng=rng)
    return complete.with_array(defective.astype(np.uint8)), implant


def downsample_2x(defective: Volume, implant: np.ndarray) -> tuple[Volume, np.ndarray]:
    """(coarse defective skull, coarse implant) on the 2× coarser grid (see the module docstring)."""
    even = tuple(slice(0, s - s % 2) for s in defective.shape)

    def coarse(mask: np.ndarray) -> np.ndarray:
        m = mask[even]
        x, y, z = (s // 2 for s in m.shape)
        return m.reshape(x, 2, y, 2, z, 2).sum(axis=(1, 3, 5), dtype=np.uint8) >= 4

    skull = coarse(defective.mask())
    complete = coarse(defective.mask() | implant)
    origin = defective.origin + 0.5 * defective.directions.sum(axis=0)  # centre of the first 2×2×2 block
    volume = Volume(skull.astype(np.uint8), defective.directions * 2, origin, defective.space)
    return volume, complete & ~skull
