"""The training cache: the expensive volume work of a case (reading, cutting synthetic defects, marching
cubes, sampling) done once and kept as a small .npz file.

Each file holds surface points in world mm (float16 offsets) and outward normals (int8), and the skull's
mirror image aligned around the defect (pcc.geometry.symmetry), the prior that a local network with
prior=True sees beside the skull. Validation cases also cache a cropped copy of their volumes for
volumetric scoring. cache_dir/cases.json lists the cached cases, so the cache folder alone (without the
NRRD files) is enough to train, e.g. on a GPU machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pcc.geometry.frames import defect_frame
from pcc.geometry.masks import widened_box
from pcc.learning.cases import SyntheticDefect
from pcc.models.inputs import NETWORK_SURFACE_SMOOTHING, SKULL_POINTS

GLOBAL_POINTS = 4096  # uniform sample of the whole skull for the global stage
IMPLANT_POINTS = 4096
# Training cases keep the dense skull points only within this many defect radii of the defect centre:
# the local stage's crop (CROP_RADII, scaled ≤ 1.2, centre jittered) never reaches further.
LOCAL_KEEP_RADII = 2.5
LOCAL_KEEP_POINTS = 16384  # at most this many of them (a uniform subset), to keep the cache compact
CACHE_VERSION = 4  # 4: the aligned mirror image (mirror_points, mirror_normals)
CROP_MARGIN_MM = 25.0
MANIFEST = "cases.json"


@dataclass
class CachedCase:
    """Surface samples of one case: world mm points (float32) and unit outward normals (float32).

    skull_*: dense points of the defective skull (near the defect only, for training cases);
    global_*: a uniform sample of the whole defective skull; implant_*: the missing part's surface;
    mirror_*: the skull's mirror image aligned around the defect (pcc.geometry.symmetry), near the defect.
    """

    name: str
    skull_points: np.ndarray
    skull_normals: np.ndarray
    implant_points: np.ndarray
    implant_normals: np.ndarray
    global_points: np.ndarray | None = None
    global_normals: np.ndarray | None = None
    mirror_points: np.ndarray | None = None
    mirror_normals: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.global_points is None:  # a whole-skull sample serves both stages
            self.global_points, self.global_normals = self.skull_points, self.skull_normals


def cache_path(cache_dir: Path, root: Path, name: str, key: str | None = None) -> Path:
    """Cache file of one case (`key`, default the name, is what the file's hash covers); the hash ignores
    where the data folder lies, so a cache folder can be carried to another machine (e.g. a GPU
    machine without the raw NRRD files)."""
    digest = hashlib.sha1(f"{root.name}|{key or name}|{CACHE_VERSION}".encode()).hexdigest()[:10]
    return cache_dir / f"{Path(name).stem}-{digest}.npz"


def _pack(points: np.ndarray, normals: np.ndarray, centre: np.ndarray, key: str) -> dict[str, np.ndarray]:
    """Compact storage: float16 offsets from `centre` (≤ 0.06 mm error within 128 mm) and int8 normals."""
    return {
        f"{key}_points": (points - centre).astype(np.float16),
        f"{key}_normals": np.round(normals * 127).astype(np.int8),
    }


def _unpack(data, key: str) -> tuple[np.ndarray, np.ndarray]:
    points = (data[f"{key}_points"].astype(np.float64) + data["centre"]).astype(np.float32)
    normals = data[f"{key}_normals"].astype(np.float32)
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-6)
    return points, normals


def surface_arrays(defective, implant, *, dense_everywhere: bool) -> dict[str, np.ndarray]:
    """Cache arrays of one (defective, implant) pair of Volumes (see CachedCase)."""
    from pcc.geometry import symmetry
    from pcc.geometry.surface import volume_to_points

    skull = volume_to_points(defective, SKULL_POINTS, seed=1, smoothing_voxels=NETWORK_SURFACE_SMOOTHING)
    part = volume_to_points(implant, IMPLANT_POINTS, seed=2, smoothing_voxels=NETWORK_SURFACE_SMOOTHING)
    uniform = np.random.default_rng(3).choice(SKULL_POINTS, GLOBAL_POINTS, replace=False)
    frame = defect_frame(part.points)
    fit = symmetry.local_mirror(skull.points, skull.normals, symmetry.whole_skull_mirror(skull.points, skull.normals),
                                frame.centre, frame.scale)
    mirror, mirror_normals = symmetry.mirrored_points(skull.points, skull.normals, fit)
    near = np.linalg.norm(skull.points - frame.centre, axis=1) < LOCAL_KEEP_RADII * frame.scale
    mirror_near = np.flatnonzero(np.linalg.norm(mirror - frame.centre, axis=1) < LOCAL_KEEP_RADII * frame.scale)
    keep = slice(None) if dense_everywhere else _at_most(np.flatnonzero(near), LOCAL_KEEP_POINTS, seed=4)
    mirror_keep = _at_most(mirror_near, LOCAL_KEEP_POINTS, seed=5)
    centre = skull.points.mean(axis=0)
    return {
        "centre": centre,
        **_pack(skull.points[keep], skull.normals[keep], centre, "skull"),
        **_pack(skull.points[uniform], skull.normals[uniform], centre, "global"),
        **_pack(part.points, part.normals, centre, "implant"),
        **_pack(mirror[mirror_keep], mirror_normals[mirror_keep], centre, "mirror"),
    }


def _at_most(indices: np.ndarray, count: int, *, seed: int) -> np.ndarray:
    """The indices, or a sorted uniform subset of `count` of them when there are more."""
    if len(indices) <= count:
        return indices
    return np.sort(np.random.default_rng(seed).choice(indices, count, replace=False))


def volume_arrays(defective, implant) -> dict[str, np.ndarray]:
    """Bit-packed crops of the defective skull and implant around the implant (for volumetric scoring)."""
    lower, upper = widened_box(implant.mask(), np.ceil(CROP_MARGIN_MM / implant.spacing).astype(int))
    box = tuple(slice(lo, hi) for lo, hi in zip(lower, upper))
    return {
        "defective_crop": np.packbits(defective.mask()[box]),
        "implant_crop": np.packbits(implant.mask()[box]),
        "crop_lower": np.asarray(lower),
        "crop_shape": np.asarray(upper) - np.asarray(lower),
        "directions": defective.directions,
        "origin": defective.origin,
    }


def build_case_caches(root: Path, name: str, jobs: list[tuple[SyntheticDefect | None, Path]], *, with_volumes: bool) -> None:
    """Read one case once and write its cache files: the real pair (defect None) and synthetic defects."""
    from pcc.io import read_volume
    from pcc.learning.defects import make_defect
    from pcc.learning.slices import thicker_slices

    defective = read_volume(root / "defective_skull" / name)
    implant = read_volume(root / "implant" / name)
    if any(defect is not None for defect, _ in jobs):
        complete = defective.with_array((defective.mask() | implant.mask()).astype(np.uint8))
    for defect, target in jobs:
        if defect is None:
            pair = (defective, implant)
        else:
            cut, part = make_defect(complete, shape=defect.shape, rng=np.random.default_rng(defect.seed))
            pair = (complete.with_array(cut.astype(np.uint8)), complete.with_array(part.astype(np.uint8)))
            if defect.slices_mm:
                pair = (thicker_slices(pair[0], defect.slices_mm), pair[1])
        arrays = surface_arrays(*pair, dense_everywhere=with_volumes)
        if with_volumes:
            arrays.update(volume_arrays(*pair))
        tmp = target.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        tmp.replace(target)


def load_case(path: Path, name: str) -> CachedCase:
    with np.load(path) as data:
        skull, skull_n = _unpack(data, "skull")
        implant, implant_n = _unpack(data, "implant")
        whole, whole_n = _unpack(data, "global")
        mirror, mirror_n = _unpack(data, "mirror")
    return CachedCase(name, skull, skull_n, implant, implant_n, whole, whole_n, mirror, mirror_n)


def ensure_cache(
    root: Path, names: list[str], cache_dir: Path, *, with_volumes: bool, defects: Sequence[SyntheticDefect] = (),
    processes: int = 1,
) -> tuple[list[str], list[Path]]:
    """Cache every case and the synthetic defects cut into them (skipping files already cached).

    Returns the case names (real ones first, then the defects') and their cache files, in order.
    """
    from tqdm import tqdm

    cache_dir.mkdir(parents=True, exist_ok=True)
    all_names = names + [d.name for d in defects]
    paths = [cache_path(cache_dir, root, n) for n in names] + [cache_path(cache_dir, root, d.name, d.cache_key) for d in defects]
    jobs: dict[str, list[tuple[SyntheticDefect | None, Path]]] = {}
    for name, path in zip(names, paths):
        if not path.exists():
            jobs.setdefault(name, []).append((None, path))
    for defect, path in zip(defects, paths[len(names):]):
        if not path.exists():
            jobs.setdefault(defect.source, []).append((defect, path))
    if jobs:
        total = sum(len(j) for j in jobs.values())
        with tqdm(total=total, desc=f"caching surfaces of {root.name}", unit="case") as progress:
            if processes <= 1:
                for name, case_jobs in jobs.items():
                    build_case_caches(root, name, case_jobs, with_volumes=with_volumes)
                    progress.update(len(case_jobs))
            else:
                with ProcessPoolExecutor(processes) as pool:
                    futures = {pool.submit(build_case_caches, root, n, j, with_volumes=with_volumes): len(j) for n, j in jobs.items()}
                    for future in as_completed(futures):
                        future.result()
                        progress.update(futures[future])
    return all_names, paths
