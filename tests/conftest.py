"""Shared fixtures: a small synthetic skull-like shell, and the real data folder when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pcc.volume import Volume

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# A tilted grid like the gantry-tilted SkullFix scans: rows are the world steps of the array axes.
TILTED_DIRECTIONS = np.array(
    [[0.451172, 0.0, 0.0], [0.0, 0.445617352660377, -0.07057866952526852], [0.0, 0.09902267180938491, 0.6252061871080954]]
)


def hollow_ellipsoid(
    shape: tuple[int, int, int] = (48, 44, 40),
    *,
    radii: tuple[float, float, float] = (19.0, 17.0, 15.0),
    thickness: float = 5.0,
    hole_radius: float = 8.0,
) -> np.ndarray:
    """A uint8 ellipsoidal shell (voxel units) with a round hole through its top (+z)."""
    centre = (np.asarray(shape) - 1) / 2.0
    grid = np.stack(np.meshgrid(*(np.arange(s) for s in shape), indexing="ij"), axis=-1) - centre
    outer = np.sum((grid / np.asarray(radii)) ** 2, axis=-1) <= 1.0
    inner = np.sum((grid / (np.asarray(radii) - thickness)) ** 2, axis=-1) <= 1.0
    hole = (np.hypot(grid[..., 0], grid[..., 1]) < hole_radius) & (grid[..., 2] > 0)
    return (outer & ~inner & ~hole).astype(np.uint8)


@pytest.fixture()
def shell() -> Volume:
    """A hollow ellipsoid with a hole on a 1 mm axis-aligned grid, origin off zero."""
    return Volume(hollow_ellipsoid(), np.eye(3), np.array([-20.0, 10.5, 3.25]))


@pytest.fixture()
def tilted_shell() -> Volume:
    """The same shell on a gantry-tilted, anisotropic grid."""
    return Volume(hollow_ellipsoid(), TILTED_DIRECTIONS.copy(), np.array([-115.5, -98.25, -40.0]))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the repository; skips the test when this machine has none."""
    if not (SHARED_DATA / "skullfix").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (needs ../shared/data/skullfix beside the repository)")
    return SHARED_DATA
