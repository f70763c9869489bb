"""Artificial skull defects: turn a complete skull into a (defective skull, implant) training pair.

Every shape is defined in world millimetres (LPS: +x left, +y posterior, +z superior), relative to the
skull's own extent in world space, so a shape means the same on any voxel size or crop (512×512×Z at
0.45 mm, or 128³ at 1.6 mm). Only the bone voxels inside the defect's bounding box are tested, so a
defect on a 512×512×Z skull takes a fraction of a second.

Shapes (``SHAPES``):

- ``craniotomy``: the AutoImplant 2020 (SkullFix) training defect: a box through the top of the skull
  (a third of the skull's height deep; 50–64 % of its left-right width; 36–44 % of its front-back length)
  with a vertical cylinder (radius 2.5–6 mm, i.e. 6–13 voxels at 0.45 mm) at each corner. Placed at one of
  three front-back positions: ``posterior`` (where all 70 public training defects are), ``vertex``,
  ``anterior``; see ``CRANIOTOMY_POSITIONS``.
- ``cube``: the organizers' cubic hole: a cube (side 40–60 mm) through the top quarter of the skull.
- ``sphere``: the organizers' spherical hole: a ball (radius 20–35 mm) centred on the upper skull.
- ``random``: SkullBreak-style: a primary ball (radius 28 ± 8 mm, i.e. 70 ± 20 voxels at 0.4 mm) and 1–7
  satellite balls (radius 16 ± 4 mm) centred on its surface, elastically deformed and morphologically
  opened, centred on a point of the upper skull.
- ``frontoorbital``: an ellipsoidal defect of the forehead (70–110 mm wide) down to about the brows:
  anchored 55–70 mm below the vertex and cut off 20–30 mm lower, above the nasal cavity and the face.
- ``parietotemporal``: a one-sided lateral defect over the parietal/temporal bone (70–110 mm long).
- ``bilateral``: one lateral defect on each side (each 56–90 mm long).

Training-only shapes (``TRAINING_ONLY_SHAPES``, issue 30; not among the benchmarks' classes):

- ``temporal``: a one-sided lateral defect lower down, over the temporal squama towards the skull base
  (centred at 38–52 % of the height of the scan's bone, 60–90 mm long; a scan that reaches lower, e.g. to
  the jaw, puts it lower on the skull: revision 1, as the lateral shapes are placed).
- ``irregular``: a frontal, lateral or upper ellipsoidal defect whose outline is pushed in and out by a
  smooth random displacement (4 mm RMS along each axis, ~10 mm wavelength), as real defects' edges are.

``make_defect`` always returns disjoint boolean arrays whose union is the complete skull, with a
non-empty implant (the draw is repeated when a defect misses the bone).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from pcc.geometry.masks import bounding_box
from pcc.volume import Volume

SHAPES = ("craniotomy", "cube", "sphere", "random", "frontoorbital", "parietotemporal", "bilateral")
TRAINING_ONLY_SHAPES = ("temporal", "irregular")
ALL_SHAPES = SHAPES + TRAINING_ONLY_SHAPES
# The shapes of issue 30's harder training defects (pcc.learning.cases.hard_defects).
HARD_SHAPES = ("frontoorbital", "parietotemporal", "bilateral", "random", *TRAINING_ONLY_SHAPES)
# A shape whose definition changed gets a new revision, so cached training cuts of it are made again.
# frontoorbital 2: the forehead down to about the brows, placed from the vertex (revision 1 was anchored
# at mid-height of the scan and often took the nasal septum, orbital walls and face down to its bottom).
SHAPE_REVISIONS = {shape: 1 for shape in ALL_SHAPES} | {"frontoorbital": 2}
CRANIOTOMY_POSITIONS = {"posterior": 0.62, "vertex": 0.45, "anterior": 0.28}  # box front edge, fraction of AP length
_MAX_TRIES = 25

Region = Callable[[np.ndarray], np.ndarray]  # (N, 3) world mm -> (N,) bool


@dataclass(frozen=True)
class _Skull:
    """World-space description of a skull used to place defects."""

    points: np.ndarray  # (N, 3) world mm of (a subsample of) the bone voxels
    low: np.ndarray  # (3,) world bounding box
    high: np.ndarray

    @property
    def centre(self) -> np.ndarray:
        return (self.low + self.high) / 2

    @property
    def size(self) -> np.ndarray:
        return self.high - self.low


def make_defect(complete: Volume, *, shape: str, rng: np.random.Generator,
                position: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cut a defect of the given shape out of a complete skull.

    Args:
        complete: binary skull (any nonzero voxel is bone) on any grid.
        shape: one of ALL_SHAPES.
        rng: the random generator (the same state gives the same defect).
        position: for ``craniotomy`` only, one of CRANIOTOMY_POSITIONS; default: drawn at random.

    Returns:
        (defective, implant): boolean arrays of the volume's shape; disjoint, union = the complete skull,
        implant non-empty.
    """
    if shape not in ALL_SHAPES:
        raise ValueError(f"unknown defect shape {shape!r}; choose one of {', '.join(ALL_SHAPES)}")
    bone = np.asarray(complete.array) != 0
    if not bone.any():
        raise ValueError("the complete skull is empty")
    skull = _describe(bone, complete)
    for _ in range(_MAX_TRIES):
        region, box_low, box_high = _draw(shape, skull, rng, position)
        hit = _cut(bone, complete, region, box_low, box_high)
        if len(hit):
            implant = np.zeros(bone.shape, bool)
            implant[hit[:, 0], hit[:, 1], hit[:, 2]] = True
            defective = bone if bone is not complete.array else bone.copy()
            defective[hit[:, 0], hit[:, 1], hit[:, 2]] = False
            return defective, implant
    raise ValueError(f"could not place a {shape} defect on this skull in {_MAX_TRIES} tries: is it a skull?")


# -- shapes -------------------------------------------------------------------------------------------

def _draw(shape: str, skull: _Skull, rng: np.random.Generator, position: str | None):
    if shape == "craniotomy":
        return _craniotomy(skull, rng, position)
    if position is not None:
        raise ValueError("position applies to the craniotomy shape only")
    return {"cube": _cube, "sphere": _sphere, "random": _random_spheres, "frontoorbital": _frontoorbital,
            "parietotemporal": _parietotemporal, "bilateral": _bilateral, "temporal": _temporal,
            "irregular": _irregular}[shape](skull, rng)


def _craniotomy(skull: _Skull, rng, position):
    if position is None:
        position = list(CRANIOTOMY_POSITIONS)[rng.integers(len(CRANIOTOMY_POSITIONS))]
    if position not in CRANIOTOMY_POSITIONS:
        raise ValueError(f"unknown craniotomy position {position!r}; choose one of {', '.join(CRANIOTOMY_POSITIONS)}")
    low, size = skull.low, skull.size
    width = size[0] * rng.uniform(0.50, 0.64)
    cx = skull.centre[0] + rng.uniform(-4, 4)
    y0 = low[1] + size[1] * (CRANIOTOMY_POSITIONS[position] + rng.uniform(-0.02, 0.02))
    y1 = y0 + size[1] * rng.uniform(0.36, 0.44)
    x0, x1 = cx - width / 2, cx + width / 2
    z0 = skull.high[2] - size[2] * rng.uniform(0.31, 0.35)
    corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]])
    radii = rng.uniform(2.5, 6.0, 4)
    top = skull.high[2] + 1.0

    def region(p):
        above = p[:, 2] >= z0
        inside = (p[:, 0] >= x0) & (p[:, 0] <= x1) & (p[:, 1] >= y0) & (p[:, 1] <= y1)
        for (cx_, cy_), r in zip(corners, radii):
            inside |= (p[:, 0] - cx_) ** 2 + (p[:, 1] - cy_) ** 2 <= r * r
        return above & inside

    r = radii.max()
    return region, np.array([x0 - r, y0 - r, z0]), np.array([x1 + r, y1 + r, top])


def _cube(skull: _Skull, rng):
    side = rng.uniform(40, 60)
    c = skull.centre + (rng.uniform(-0.25, 0.25, 3) * skull.size)
    z0 = skull.high[2] - skull.size[2] * 0.25
    low = np.array([c[0] - side / 2, c[1] - side / 2, z0])
    high = np.array([c[0] + side / 2, c[1] + side / 2, skull.high[2] + 1.0])
    return _box_region(low, high), low, high


def _sphere(skull: _Skull, rng):
    centre = _upper_point(skull, rng)
    radius = rng.uniform(20, 35)
    return _ellipsoid(centre, np.full(3, radius))


def _smooth_field(shape: tuple[int, ...], rng, *, sigma: float, rms: float) -> np.ndarray:
    """(*shape, 3) smooth random displacement (mm): white noise blurred by sigma voxels, scaled so that each
    component's RMS is `rms`."""
    field = np.stack([ndimage.gaussian_filter(n, sigma) for n in rng.normal(size=(3, *shape))], axis=-1)
    field *= rms / max(float(field.std()), 1e-9)
    return field


def _random_spheres(skull: _Skull, rng, *, grid_mm: float = 1.5):
    centre = _upper_point(skull, rng)
    r1 = float(np.clip(rng.normal(28, 8), 12, 48))
    n_sat = int(rng.integers(1, 8))
    directions = rng.normal(size=(n_sat, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    centres = np.vstack([centre, centre + r1 * directions])
    radii = np.concatenate([[r1], np.clip(rng.normal(16, 4, n_sat), 6, 28)])
    margin = 6.0  # room for the deformation
    low = (centres - radii[:, None]).min(axis=0) - margin
    high = (centres + radii[:, None]).max(axis=0) + margin
    # rasterize on a coarse world grid: deform, union of balls, opening, smooth
    shape = np.ceil((high - low) / grid_mm).astype(int) + 1
    axes = [low[a] + grid_mm * np.arange(shape[a]) for a in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    warped = grid + _smooth_field(tuple(shape), rng, sigma=6.0 / grid_mm, rms=3.0)
    inside = np.zeros(shape, bool)
    for c, r in zip(centres, radii):
        inside |= ((warped - c) ** 2).sum(axis=-1) <= r * r
    inside = ndimage.binary_opening(inside, ndimage.generate_binary_structure(3, 1), iterations=2)
    field = ndimage.gaussian_filter(inside.astype(np.float32), 0.7)

    def region(p):
        coords = ((p - low) / grid_mm).T
        return ndimage.map_coordinates(field, coords, order=1, mode="constant", cval=0.0) > 0.5

    return region, low, high


def _frontoorbital(skull: _Skull, rng):
    # Placed from the vertex (the top of the head is in every head CT; the face and the bottom of the
    # scan are not, and the most anterior bone is the brow on some heads, the face on others): on the
    # forehead 55–70 mm below the vertex, cut off 20–30 mm lower, i.e. never more than 100 mm below
    # the vertex: the frontal bone down to about the brows, not the nasal cavity, the orbits' inner
    # walls or the face (revision 2; see SHAPE_REVISIONS).
    height = skull.high[2] - rng.uniform(55, 70)
    anchor = _extreme_point(skull, axis=1, sign=-1, band={0: (skull.centre[0], 12.0), 2: (height, 6.0)})
    semi = np.array([rng.uniform(35, 55), rng.uniform(25, 35), rng.uniform(30, 40)])  # LR, AP, SI
    inside, low, high = _ellipsoid(anchor + np.array([0.0, semi[1] * 0.2, 0.0]), semi)
    floor = anchor[2] - rng.uniform(20, 30)
    return (lambda p: inside(p) & (p[:, 2] >= floor)), np.array([low[0], low[1], max(low[2], floor)]), high


def _lateral(skull: _Skull, rng, sign: int, scale: float = 1.0):
    height = skull.low[2] + skull.size[2] * rng.uniform(0.50, 0.68)
    ap = skull.centre[1] + skull.size[1] * rng.uniform(-0.08, 0.08)
    anchor = _extreme_point(skull, axis=0, sign=sign, band={1: (ap, 12.0), 2: (height, 8.0)})
    semi = np.array([rng.uniform(20, 30), rng.uniform(35, 55) * scale, rng.uniform(28, 45) * scale])
    return anchor, semi


def _parietotemporal(skull: _Skull, rng):
    sign = 1 if rng.random() < 0.5 else -1
    anchor, semi = _lateral(skull, rng, sign)
    return _ellipsoid(anchor, semi)


def _bilateral(skull: _Skull, rng):
    a1, s1 = _lateral(skull, rng, +1, scale=0.8)
    a2, s2 = _lateral(skull, rng, -1, scale=0.8)
    f1, lo1, hi1 = _ellipsoid(a1, s1)
    f2, lo2, hi2 = _ellipsoid(a2, s2)
    return (lambda p: f1(p) | f2(p)), np.minimum(lo1, lo2), np.maximum(hi1, hi2)


def _temporal(skull: _Skull, rng):
    sign = 1 if rng.random() < 0.5 else -1
    height = skull.low[2] + skull.size[2] * rng.uniform(0.38, 0.52)
    ap = skull.centre[1] + skull.size[1] * rng.uniform(-0.06, 0.06)
    anchor = _extreme_point(skull, axis=0, sign=sign, band={1: (ap, 12.0), 2: (height, 8.0)})
    return _ellipsoid(anchor, np.array([rng.uniform(18, 26), rng.uniform(30, 45), rng.uniform(22, 32)]))


def _irregular(skull: _Skull, rng, *, grid_mm: float = 1.5, rms_mm: float = 4.0):
    base = (_frontoorbital, _parietotemporal, _sphere)[rng.integers(3)]
    inside, low, high = base(skull, rng)
    margin = 3 * rms_mm
    low, high = np.asarray(low, float) - margin, np.asarray(high, float) + margin
    shape = tuple(np.ceil((high - low) / grid_mm).astype(int) + 1)
    axes = [low[a] + grid_mm * np.arange(shape[a]) for a in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    warped = grid + _smooth_field(shape, rng, sigma=5.0 / grid_mm, rms=rms_mm)
    field = ndimage.gaussian_filter(inside(warped.reshape(-1, 3)).reshape(shape).astype(np.float32), 0.7)

    def region(p):
        coords = ((p - low) / grid_mm).T
        return ndimage.map_coordinates(field, coords, order=1, mode="constant", cval=0.0) > 0.5

    return region, low, high


def _box_region(low, high) -> Region:
    return lambda p: np.all((p >= low) & (p <= high), axis=1)


def _ellipsoid(centre: np.ndarray, semi: np.ndarray):
    centre, semi = np.asarray(centre, float), np.asarray(semi, float)
    return (lambda p: (((p - centre) / semi) ** 2).sum(axis=1) <= 1.0), centre - semi, centre + semi


def _upper_point(skull: _Skull, rng) -> np.ndarray:
    """A random bone point of the upper skull (top 40 % of its height)."""
    upper = skull.points[skull.points[:, 2] >= skull.low[2] + 0.6 * skull.size[2]]
    pool = upper if len(upper) else skull.points
    return pool[rng.integers(len(pool))]


def _extreme_point(skull: _Skull, *, axis: int, sign: int, band: dict[int, tuple[float, float]]) -> np.ndarray:
    """The bone point farthest along sign·axis among points near the band (widened until some exist)."""
    points = skull.points
    for widen in (1, 2, 4, 8, 1000):
        keep = np.ones(len(points), bool)
        for a, (value, half) in band.items():
            keep &= np.abs(points[:, a] - value) <= half * widen
        if keep.any():
            chosen = points[keep]
            return chosen[np.argmax(sign * chosen[:, axis])]
    return points[np.argmax(sign * points[:, axis])]


# -- geometry -----------------------------------------------------------------------------------------

def _describe(bone: np.ndarray, volume: Volume, max_points: int = 300_000) -> _Skull:
    """Bone points in world mm (a regular subsample) and the world bounding box of the skull."""
    count = int(np.count_nonzero(bone))
    step = max(1, int(np.ceil((count / max_points) ** (1 / 3))))
    idx = np.argwhere(bone[::step, ::step, ::step]) * step
    points = _to_world(volume, idx)
    # the exact extent: the corners of the index bounding box bound the world box for a parallelepiped grid
    lo_idx, hi_idx = bounding_box(bone)
    hi_idx = hi_idx - 1  # the last bone index on each axis
    box_idx = _box_corners(lo_idx, hi_idx)
    corners = volume.index_to_world(box_idx)
    low = np.maximum(corners.min(axis=0), points.min(axis=0) - step * volume.spacing.max())
    high = np.minimum(corners.max(axis=0), points.max(axis=0) + step * volume.spacing.max())
    return _Skull(points, low, high)


def _box_corners(lo, hi) -> np.ndarray:
    return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])], float)


def _cut(bone: np.ndarray, volume: Volume, region: Region, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """(M, 3) indices of the bone voxels inside region; only those in its world bounding box are tested."""
    corners = volume.world_to_index(_box_corners(low, high))
    start = np.clip(np.floor(corners.min(axis=0)).astype(int) - 1, 0, bone.shape)
    stop = np.clip(np.ceil(corners.max(axis=0)).astype(int) + 2, 0, bone.shape)
    if np.any(stop <= start):
        return np.zeros((0, 3), int)
    box = tuple(slice(a, b) for a, b in zip(start, stop))
    idx = np.argwhere(bone[box]) + start
    if len(idx) == 0:
        return idx
    return idx[region(_to_world(volume, idx))]


def _to_world(volume: Volume, idx: np.ndarray) -> np.ndarray:
    """(N, 3) integer indices -> world mm (faster than a (N,3)@(3,3) product on integer input)."""
    d = np.asarray(volume.directions, float)
    world = np.empty((len(idx), 3))
    for c in range(3):
        world[:, c] = volume.origin[c] + idx[:, 0] * d[0, c] + idx[:, 1] * d[1, c] + idx[:, 2] * d[2, c]
    return world


# -- files --------------------------------------------------------------------------------------------

def write_defects(complete_path_or_dir: str | os.PathLike, out_dir: str | os.PathLike, *, shape: str, seed: int = 0,
                  per_skull: int = 1, progress: Callable[[str], None] | None = None) -> list[tuple[Path, Path]]:
    """Write OUT_DIR/defective_skull/NAME and OUT_DIR/implant/NAME for each complete skull.

    With per_skull > 1 the names get the suffix _k1 … _kK. Each output keeps the complete skull's grid.
    The defect of a skull depends only on (seed, file name, k), not on the other files in the folder.
    """
    from pcc.challenge.evaluation import case_files
    from pcc.errors import InputError
    from pcc.io import read_volume, volume_suffix, write_volume
    from pcc.volume import require_binary

    if shape not in ALL_SHAPES:
        raise InputError(f"unknown defect shape {shape!r}: choose one of {', '.join(ALL_SHAPES)}")
    if per_skull < 1:
        raise InputError("per_skull must be at least 1")
    source = Path(complete_path_or_dir)
    if source.is_dir():
        files = case_files(source, what="complete-skull")
        if not files:
            raise InputError(f"no .nrrd/.nii/.nii.gz volumes in {source}")
    elif source.is_file() and volume_suffix(source):
        files = {source.name[: -len(volume_suffix(source))]: source}
    else:
        raise InputError(f"{source} is neither a .nrrd/.nii/.nii.gz file nor a folder of them")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"output {out} exists and is not a folder: choose a folder path")
    written = []
    for name, path in files.items():
        complete = require_binary(read_volume(path), path)
        suffix = volume_suffix(path)
        for k in range(1, per_skull + 1):
            rng = np.random.default_rng([seed, zlib.crc32(name.encode()), k])
            try:
                defective, implant = make_defect(complete, shape=shape, rng=rng)
            except ValueError as error:
                raise InputError(f"{path}: {error}") from None
            stem = name if per_skull == 1 else f"{name}_k{k}"
            pair = (out / "defective_skull" / f"{stem}{suffix}", out / "implant" / f"{stem}{suffix}")
            for target, mask in zip(pair, (defective, implant)):
                target.parent.mkdir(parents=True, exist_ok=True)
                write_volume(target, complete.with_array(mask.astype(np.uint8)))
            written.append(pair)
            if progress is not None:
                progress(f"{stem}: implant {int(implant.sum())} voxels")
    return written


__all__ = ["ALL_SHAPES", "CRANIOTOMY_POSITIONS", "HARD_SHAPES", "SHAPES", "TRAINING_ONLY_SHAPES", "make_defect", "write_defects"]
