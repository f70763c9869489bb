"""Point clouds in world millimetres."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PointCloud:
    """Points on a surface, in world mm of the source volume's space.

    Attributes:
        points: (N, 3) float64 world coordinates in mm.
        normals: (N, 3) float64 unit outward normals, or None.
    """

    points: np.ndarray
    normals: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.points.ndim != 2 or self.points.shape[1] != 3:
            raise ValueError(f"points must be (N, 3), got {self.points.shape}")
        if self.normals is not None and self.normals.shape != self.points.shape:
            raise ValueError(f"normals {self.normals.shape} must match points {self.points.shape}")

    def __len__(self) -> int:
        return int(self.points.shape[0])
