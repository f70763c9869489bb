"""Shared fixtures: a small synthetic skull-like shell, the real data folder when present, checks of
meshes and preview pictures by their content, and the `gpu` marker (skipped without a CUDA GPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pcc.shared_data import data_root
from pcc.volume import Volume

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = data_root()  # $PCC_DATA, else ../shared/data beside the checkout

# A tilted grid like the gantry-tilted SkullFix scans: rows are the world steps of the array axes.
TILTED_DIRECTIONS = np.array(
    [[0.451172, 0.0, 0.0], [0.0, 0.445617352660377, -0.07057866952526852], [0.0, 0.09902267180938491, 0.6252061871080954]]
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `gpu` are skipped, saying why, where torch sees no CUDA GPU."""
    needs_gpu = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not needs_gpu:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU: torch.cuda.is_available() is False on this machine")
    for item in needs_gpu:
        item.add_marker(skip)


def _centred_grid(shape: tuple[int, int, int]) -> np.ndarray:
    centre = (np.asarray(shape) - 1) / 2.0
    return np.stack(np.meshgrid(*(np.arange(s) for s in shape), indexing="ij"), axis=-1) - centre


def hollow_ellipsoid(
    shape: tuple[int, int, int] = (48, 44, 40),
    *,
    radii: tuple[float, float, float] = (19.0, 17.0, 15.0),
    thickness: float = 5.0,
    hole_radius: float = 8.0,
) -> np.ndarray:
    """A uint8 ellipsoidal shell (voxel units) with a round hole through its top (+z)."""
    grid = _centred_grid(shape)
    outer = np.sum((grid / np.asarray(radii)) ** 2, axis=-1) <= 1.0
    inner = ellipsoid_cavity(shape, radii=radii, thickness=thickness)
    hole = (np.hypot(grid[..., 0], grid[..., 1]) < hole_radius) & (grid[..., 2] > 0)
    return (outer & ~inner & ~hole).astype(np.uint8)


def ellipsoid_cavity(
    shape: tuple[int, int, int] = (48, 44, 40),
    *,
    radii: tuple[float, float, float] = (19.0, 17.0, 15.0),
    thickness: float = 5.0,
) -> np.ndarray:
    """The bool cavity that hollow_ellipsoid (same arguments) encloses: no voxel of the shell lies in it."""
    return np.sum((_centred_grid(shape) / (np.asarray(radii) - thickness)) ** 2, axis=-1) <= 1.0


def winding_numbers(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Generalized winding number of a closed, outward triangle mesh at each point: 1 inside, 0 outside.

    Sum of the faces' signed solid angles (Van Oosterom & Strackee) / 4π; needs no spatial index.
    """
    triangles = np.asarray(vertices, float)[np.asarray(faces)]
    out = np.zeros(len(points))
    for start in range(0, len(points), 32):
        corners = triangles[None] - np.asarray(points, float)[start : start + 32, None, None]  # (P, F, 3, 3)
        a, b, c = corners[..., 0, :], corners[..., 1, :], corners[..., 2, :]
        la, lb, lc = (np.linalg.norm(v, axis=-1) for v in (a, b, c))
        numerator = np.einsum("pfi,pfi->pf", a, np.cross(b, c))
        denominator = (la * lb * lc + np.einsum("pfi,pfi->pf", a, b) * lc + np.einsum("pfi,pfi->pf", b, c) * la
                       + np.einsum("pfi,pfi->pf", c, a) * lb)
        out[start : start + 32] = 2 * np.arctan2(numerator, denominator).sum(axis=1) / (4 * np.pi)
    return out


def implant_coloured(image: np.ndarray) -> np.ndarray:
    """Pixels of a preview (H, W, 3 floats) in the implant's blue (pcc.outputs.preview.IMPLANT: blue − red = 0.85;
    the bone, backgrounds and labels have blue − red ≤ 0.06)."""
    return image[..., 2] > image[..., 0] + 0.25


def bone_coloured(image: np.ndarray) -> np.ndarray:
    """Pixels of a preview in a lit shade of the bone's ivory (pcc.outputs.preview.BONE)."""
    return (image[..., 0] > 0.45) & (image[..., 0] >= image[..., 2]) & (image[..., 0] - image[..., 2] < 0.25)


def preview_panels(image: np.ndarray) -> dict[str, np.ndarray]:
    """The seven panels of a pcc.outputs.preview picture (figure layout of render_preview): four 3-D views in the
    upper row (view0..view3: top, side, front, facing the defect / back) and the axial, coronal and
    sagittal slices in the lower row; the heading with its colour legend (top 10 %) is left out."""
    height, width = image.shape[:2]
    upper, lower = image[int(0.10 * height) : int(0.55 * height)], image[int(0.58 * height) :]
    panels = {f"view{i}": upper[:, i * width // 4 : (i + 1) * width // 4] for i in range(4)}
    slices = ("axial", "coronal", "sagittal")
    panels |= {name: lower[:, i * width // 3 : (i + 1) * width // 3] for i, name in enumerate(slices)}
    return panels


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
    """The real data folder ($PCC_DATA, else ../shared/data beside the repository); skips the test without it."""
    if not (SHARED_DATA / "skullfix").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set PCC_DATA, or put shared/data/skullfix beside the repository)")
    return SHARED_DATA


def hollow_skull(spacing=(2.0, 2.0, 2.5), directions=None, semi=(72.0, 92.0, 80.0), thickness=9.0) -> Volume:
    """A hollow ellipsoid 'skull' (world mm, LPS) with its lowest fifth cut off, centred in its grid."""
    spacing = np.asarray(spacing, float)
    shape = tuple(int(np.ceil(2 * s / sp)) + 6 for s, sp in zip(semi, spacing))
    directions = np.diag(spacing) if directions is None else np.asarray(directions, float)
    origin = -np.asarray(shape) / 2 @ directions
    vol = Volume(np.zeros(shape, np.int32), directions, origin)
    world = vol.index_to_world(np.indices(shape).reshape(3, -1).T)
    r = np.sqrt(((world / np.asarray(semi)) ** 2).sum(axis=1))
    shell = (r <= 1.0) & (r >= 1.0 - thickness / min(semi)) & (world[:, 2] > -0.6 * semi[2])
    return vol.with_array(shell.reshape(shape).astype(np.int32))


def tiny_nets():
    """A small (global, local) network pair for fast training and loading tests."""
    from pcc.models import PointCompletionNet

    global_net = PointCompletionNet(width=16, feature_dim=32, coarse_points=32, children=1, neighbours=0)
    local_net = PointCompletionNet(width=16, feature_dim=32, coarse_points=32, children=4, neighbours=4)
    return global_net, local_net


def craniotomy_training_set(root: Path, cases: int = 3) -> Volume:
    """Write a tiny training set in the challenge layout under `root` (ROOT/defective_skull/NNN.nrrd and
    ROOT/implant/NNN.nrrd): craniotomy defects of hollow_skull(), seeds 0, 1, …; returns the skull."""
    import nrrd

    from pcc.learning.defects import make_defect

    skull = hollow_skull()
    header = {"space": "left-posterior-superior", "space directions": skull.directions, "space origin": skull.origin}
    for folder in ("defective_skull", "implant"):
        (root / folder).mkdir(parents=True)
    for i in range(cases):
        defective, implant = make_defect(skull, shape="craniotomy", rng=np.random.default_rng(i))
        nrrd.write(str(root / "defective_skull" / f"{i:03d}.nrrd"), defective.astype(np.uint8), header)
        nrrd.write(str(root / "implant" / f"{i:03d}.nrrd"), implant.astype(np.uint8), header)
    return skull
