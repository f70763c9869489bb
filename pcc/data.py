"""Training data: cases in the challenge layout turned into (defective-skull points, implant points).

Folder layout (same file names in each): ROOT/defective_skull/NNN.nrrd, ROOT/implant/NNN.nrrd
(ROOT/complete_skull/ is optional). The expensive volume work (reading, marching cubes, sampling)
is done once per case and cached as a small .npz file: surface points in world mm and outward
normals. Validation cases also cache a cropped copy of their volumes for volumetric scoring.

Training pairs are made on the fly from the cache with augmentation: left-right mirroring, small
rotations and scalings about the skull centre, resampling of points and jitter of the defect frame.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from pcc.frames import crop_and_sample, defect_frame, global_frame

SKULL_POINTS = 32768
IMPLANT_POINTS = 8192
CACHE_VERSION = 2
CROP_MARGIN_MM = 25.0
# The network sees points of the exact binary iso-surface (no smoothing), in training and in use.
NETWORK_SURFACE_SMOOTHING = 0.0


def case_names(root: Path) -> list[str]:
    """Case file names present in both defective_skull/ and implant/ (sorted)."""
    defective = {p.name for p in (root / "defective_skull").glob("*.nrrd")}
    implant = {p.name for p in (root / "implant").glob("*.nrrd")}
    names = sorted(defective & implant)
    if not names:
        raise FileNotFoundError(f"no cases in {root}: expected defective_skull/*.nrrd and implant/*.nrrd")
    return names


def default_validation_split(names: list[str], count: int = 10) -> list[str]:
    """Every k-th case (k = len // count) from the 4th on, spread over the sorted names: a fixed split.

    For the 70 SkullFix cases: 005 018 028 038 048 061 073 081 089 096.
    """
    step = max(1, len(names) // count)
    return names[min(3, step - 1) :: step][:count]


@dataclass
class CachedCase:
    """Surface samples of one case, world mm (float32) and unit normals (float32)."""

    name: str
    skull_points: np.ndarray
    skull_normals: np.ndarray
    implant_points: np.ndarray
    implant_normals: np.ndarray


def cache_path(cache_dir: Path, root: Path, name: str) -> Path:
    """Cache file of one case; the key ignores where the data folder lies, so a cache folder can be
    carried to another machine (e.g. a GPU machine without the raw NRRD files)."""
    key = hashlib.sha1(f"{root.name}|{name}|{CACHE_VERSION}".encode()).hexdigest()[:10]
    return cache_dir / f"{Path(name).stem}-{key}.npz"


def build_case_cache(root: Path, name: str, target: Path, *, with_volumes: bool) -> None:
    """Read one case, sample its surfaces and save them (and optionally cropped volumes)."""
    from pcc.io import read_volume
    from pcc.surface import volume_to_points

    defective = read_volume(root / "defective_skull" / name)
    implant = read_volume(root / "implant" / name)
    skull = volume_to_points(defective, SKULL_POINTS, seed=1, smoothing_voxels=NETWORK_SURFACE_SMOOTHING)
    implant_cloud = volume_to_points(implant, IMPLANT_POINTS, seed=2, smoothing_voxels=NETWORK_SURFACE_SMOOTHING)
    arrays = {
        "skull_points": skull.points.astype(np.float32),
        "skull_normals": skull.normals.astype(np.float16),
        "implant_points": implant_cloud.points.astype(np.float32),
        "implant_normals": implant_cloud.normals.astype(np.float16),
    }
    if with_volumes:
        lower, upper = crop_box(implant.mask(), implant.spacing, CROP_MARGIN_MM)
        box = tuple(slice(lo, hi) for lo, hi in zip(lower, upper))
        arrays.update(
            defective_crop=np.packbits(defective.mask()[box]),
            implant_crop=np.packbits(implant.mask()[box]),
            crop_lower=np.asarray(lower),
            crop_shape=np.asarray(upper) - np.asarray(lower),
            directions=defective.directions,
            origin=defective.origin,
        )
    np.savez(target, **arrays)


def crop_box(mask: np.ndarray, spacing: np.ndarray, margin_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Index bounds [lower, upper) of mask's nonzero voxels grown by margin_mm, clipped to the array."""
    nonzero = np.argwhere(mask)
    margin = np.ceil(margin_mm / np.asarray(spacing)).astype(int)
    lower = np.maximum(nonzero.min(axis=0) - margin, 0)
    upper = np.minimum(nonzero.max(axis=0) + 1 + margin, mask.shape)
    return lower, upper


def load_case(path: Path, name: str) -> CachedCase:
    with np.load(path) as data:
        return CachedCase(
            name,
            data["skull_points"].astype(np.float32),
            data["skull_normals"].astype(np.float32),
            data["implant_points"].astype(np.float32),
            data["implant_normals"].astype(np.float32),
        )


def ensure_cache(root: Path, names: list[str], cache_dir: Path, *, with_volumes: bool) -> list[Path]:
    """Cache every case (skipping those already cached) and return the cache files in order."""
    from tqdm import tqdm

    cache_dir.mkdir(parents=True, exist_ok=True)
    paths = [cache_path(cache_dir, root, name) for name in names]
    missing = [(n, p) for n, p in zip(names, paths) if not p.exists()]
    for name, path in tqdm(missing, desc=f"caching surfaces of {root.name}", unit="case", disable=not missing):
        tmp = path.with_suffix(".tmp.npz")
        build_case_cache(root, name, tmp, with_volumes=with_volumes)
        tmp.replace(path)
    return paths


@dataclass(frozen=True)
class SampleSizes:
    """Point counts of one training pair."""

    global_input: int = 1024
    global_target: int = 512
    local_input: int = 1024
    local_target: int = 2048
    frame_jitter: float = 0.15  # standard deviation of the defect-frame centre shift, in defect radii


class CompletionPairs(Dataset):
    """Augmented training pairs from cached cases; `repeats` samples per case per epoch."""

    def __init__(self, cases: list[CachedCase], *, sizes: SampleSizes, repeats: int, augment: bool, seed: int = 0):
        self.cases, self.sizes, self.repeats, self.augment, self.seed = cases, sizes, repeats, augment, seed

    def __len__(self) -> int:
        return len(self.cases) * self.repeats

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        # torch's generator differs per epoch and per worker (and is seeded by seed_everything).
        draw = int(torch.randint(0, 2**31 - 1, (1,)).item()) if self.augment else 0
        rng = np.random.default_rng([self.seed, index, draw])
        case = self.cases[index % len(self.cases)]
        return make_pair(case, self.sizes, rng, augment=self.augment)


def make_pair(case: CachedCase, sizes: SampleSizes, rng: np.random.Generator, *, augment: bool) -> dict[str, torch.Tensor]:
    """One training pair: global (whole skull → coarse implant) and local (crop → dense implant)."""
    skull, skull_n = case.skull_points, case.skull_normals
    implant, implant_n = case.implant_points, case.implant_normals
    if augment:
        skull, skull_n, implant, implant_n = _augment(skull, skull_n, implant, implant_n, rng)

    g_frame = global_frame(skull)
    g_in = rng.choice(len(skull), sizes.global_input, replace=False)
    g_target = rng.choice(len(implant), sizes.global_target, replace=False)

    d_frame = defect_frame(implant[rng.choice(len(implant), 512, replace=False)])
    if augment:  # the global stage's frame is not exact: train the local stage to find the hole in a shifted frame
        shift = rng.normal(0, sizes.frame_jitter * d_frame.scale, 3)
        d_frame = type(d_frame)(d_frame.centre + shift, d_frame.scale * rng.uniform(0.85, 1.2))
    l_in = crop_and_sample(skull, skull_n, d_frame, sizes.local_input, rng)
    l_target = rng.choice(len(implant), sizes.local_target, replace=len(implant) < sizes.local_target)
    return {
        "global_input": torch.from_numpy(np.hstack([g_frame.to_local(skull[g_in]), skull_n[g_in]]).astype(np.float32)),
        "global_target": torch.from_numpy(g_frame.to_local(implant[g_target]).astype(np.float32)),
        "local_input": torch.from_numpy(l_in),
        "local_target": torch.from_numpy(d_frame.to_local(implant[l_target]).astype(np.float32)),
        "local_target_normals": torch.from_numpy(implant_n[l_target].astype(np.float32)),
    }


def _augment(skull, skull_n, implant, implant_n, rng):
    """Mirror left-right, rotate ≤ 10° and scale 0.92–1.08 about the skull centre (world mm)."""
    centre = (skull.min(axis=0) + skull.max(axis=0)) / 2.0
    linear = np.eye(3)
    if rng.random() < 0.5:
        linear[0, 0] = -1.0
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.deg2rad(rng.uniform(-10.0, 10.0))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rotation = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k
    linear = rotation @ linear
    scale = rng.uniform(0.92, 1.08)
    # Rotation and mirror keep normals orthonormal; isotropic scaling leaves them unchanged.
    move = lambda p: ((p - centre) @ linear.T * scale + centre).astype(np.float32)  # noqa: E731
    turn = lambda n: (n @ linear.T).astype(np.float32)  # noqa: E731
    return move(skull), turn(skull_n), move(implant), turn(implant_n)


def _volume_case(path: Path, name: str) -> dict:
    """A validation case: its cached points plus cropped defective skull and implant volumes."""
    case = load_case(path, name)
    with np.load(path) as data:
        shape = tuple(int(s) for s in data["crop_shape"])
        unpack = lambda key: np.unpackbits(data[key], count=int(np.prod(shape))).reshape(shape).astype(bool)  # noqa: E731
        lower = data["crop_lower"].astype(float)
        directions = data["directions"]
        return {
            "case": case,
            "defective": unpack("defective_crop"),
            "implant": unpack("implant_crop"),
            "directions": directions,
            "origin": data["origin"] + lower @ directions,
        }


def _keep_as_is(sample: dict) -> dict:
    """Validation cases stay numpy arrays (the pipeline works on them as they are)."""
    return sample


class _VolumeCases(Dataset):
    def __init__(self, paths: list[Path], names: list[str]):
        self.paths, self.names = paths, names

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        return _volume_case(self.paths[index], self.names[index])


class SkullCompletionData(L.LightningDataModule):
    """Cases in the challenge layout → augmented training pairs and volumetric validation cases.

    Args:
        root: folder with defective_skull/ and implant/ (same file names).
        cache_dir: where the per-case surface samples are cached (created when missing).
        validation_cases: how many cases to hold out (a fixed spread over the sorted names).
        repeats: augmented samples per training case per epoch.
        batch_size: training pairs per batch.
        num_workers: data-loading worker processes.
        global_input, global_target, local_input, local_target: point counts of each pair.
        frame_jitter: training shift of the defect frame's centre (standard deviation, defect radii).
    """

    def __init__(
        self,
        root: str = "../shared/data/skullfix/training_set",
        cache_dir: str = "cache/skullfix",
        validation_cases: int = 10,
        repeats: int = 8,
        batch_size: int = 8,
        num_workers: int = 1,
        global_input: int = 1024,
        global_target: int = 512,
        local_input: int = 1024,
        local_target: int = 2048,
        frame_jitter: float = 0.15,
    ):
        super().__init__()
        self.root, self.cache_dir = Path(root), Path(cache_dir)
        self.validation_cases, self.repeats = validation_cases, repeats
        self.batch_size, self.num_workers = batch_size, num_workers
        self.sizes = SampleSizes(global_input, global_target, local_input, local_target, frame_jitter)

    def split(self) -> tuple[list[str], list[str]]:
        """(training names, validation names)."""
        names = case_names(self.root)
        validation = default_validation_split(names, self.validation_cases)
        return [n for n in names if n not in validation], validation

    def prepare_data(self) -> None:
        train, validation = self.split()
        ensure_cache(self.root, train, self.cache_dir, with_volumes=False)
        ensure_cache(self.root, validation, self.cache_dir, with_volumes=True)

    def setup(self, stage: str | None = None) -> None:
        train, validation = self.split()
        train_paths = ensure_cache(self.root, train, self.cache_dir, with_volumes=False)
        self.validation_paths = ensure_cache(self.root, validation, self.cache_dir, with_volumes=True)
        self.train_cases = [load_case(p, n) for p, n in zip(train_paths, train)]
        self.validation_names = validation

    def train_dataloader(self) -> DataLoader:
        pairs = CompletionPairs(self.train_cases, sizes=self.sizes, repeats=self.repeats, augment=True)
        return DataLoader(
            pairs, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0, drop_last=True,
        )

    def val_dataloader(self) -> DataLoader:
        cases = _VolumeCases(self.validation_paths, self.validation_names)
        return DataLoader(cases, batch_size=None, num_workers=0, collate_fn=_keep_as_is)
