"""Normalising frames for the network: a centre and a scale that travel with the cloud.

normalised = (world − centre) / scale, world = normalised · scale + centre (mm). The global frame
covers the whole skull; the local frame is centred on the defect and scaled to its radius, so the
network's precision is spent on the region that matters (GUIDE: "work in a frame centred on the defect").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Frame:
    """centre: (3,) mm; scale: mm per normalised unit."""

    centre: np.ndarray
    scale: float

    def to_local(self, points: np.ndarray) -> np.ndarray:
        return (points - self.centre) / self.scale

    def to_world(self, points: np.ndarray) -> np.ndarray:
        return points * self.scale + self.centre


def global_frame(skull_points: np.ndarray) -> Frame:
    """Centre of the skull's bounding box; scale = half its largest side (mm)."""
    lower, upper = skull_points.min(axis=0), skull_points.max(axis=0)
    return Frame((lower + upper) / 2.0, float((upper - lower).max() / 2.0))


def defect_frame(defect_points: np.ndarray) -> Frame:
    """Centre of the defect's points; scale = the largest distance of a point from it (mm)."""
    centre = defect_points.mean(axis=0)
    return Frame(centre, float(max(np.linalg.norm(defect_points - centre, axis=1).max(), 1.0)))


# Defective-skull points within this many defect radii of the defect centre are the local input.
CROP_RADII = 1.6


def crop_indices(points: np.ndarray, frame: Frame, n_points: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of n_points of the (N, 3) world-mm points within CROP_RADII·frame.scale mm of the frame's centre
    (drawn with replacement when fewer are there; from the nearest points when fewer than 16 are)."""
    distance = np.linalg.norm(frame.to_local(points), axis=1)
    inside = np.flatnonzero(distance < CROP_RADII)
    if len(inside) < 16:
        inside = np.argsort(distance)[: max(16, n_points // 4)]
    return rng.choice(inside, n_points, replace=len(inside) < n_points)


def crop_and_sample(
    points: np.ndarray, normals: np.ndarray, frame: Frame, n_points: int, rng: np.random.Generator
) -> np.ndarray:
    """(n_points, 6) local-frame points and normals of the skull near the defect (crop_indices)."""
    chosen = crop_indices(points, frame, n_points, rng)
    return np.hstack([frame.to_local(points[chosen]), normals[chosen]]).astype(np.float32)
