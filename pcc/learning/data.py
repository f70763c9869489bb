"""Training data: cases in the challenge layout turned into (defective-skull points, implant points).

Folder layout (same file names in each): ROOT/defective_skull/NNN.nrrd, ROOT/implant/NNN.nrrd
(ROOT/complete_skull/ is optional). The expensive volume work (reading, cutting synthetic defects,
marching cubes, sampling) is done once per case and cached as a small .npz file: surface points in
world mm (float16 offsets) and outward normals (int8). Validation cases also cache a cropped copy of
their volumes for volumetric scoring. cache_dir/cases.json lists the cached cases, so the cache
folder alone (without the NRRD files) is enough to train, e.g. on a GPU machine.

Besides each real pair, pcc-made defects of every shape (pcc.toolkit.defects) are cut into the training
cases' complete skulls (defective ∪ implant), so the model is not tied to one defect shape.
Each case also caches its skull's mirror image aligned around the defect (pcc.geometry.symmetry), the prior
that a local network with prior=True sees beside the skull.
Training pairs are made on the fly from the cache with augmentation: left-right mirroring, small
rotations and scalings about the skull centre, smooth random warps that make new skull shapes
(warp_mm), an independent smooth warp of the mirror image only so the network learns that a
skull's two sides differ (prior_warp_mm), resampling of points and jitter of the defect frame.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from pcc.geometry.frames import crop_and_sample, crop_indices, defect_frame, global_frame
from pcc.geometry.masks import widened_box
from pcc.learning.network_inputs import NETWORK_SURFACE_SMOOTHING, SKULL_POINTS, SampleSizes

GLOBAL_POINTS = 4096  # uniform sample of the whole skull for the global stage
IMPLANT_POINTS = 4096
# Training cases keep the dense skull points only within this many defect radii of the defect centre:
# the local stage's crop (CROP_RADII, scaled ≤ 1.2, centre jittered) never reaches further.
LOCAL_KEEP_RADII = 2.5
LOCAL_KEEP_POINTS = 16384  # at most this many of them (a uniform subset), to keep the cache compact
CACHE_VERSION = 4  # 4: the aligned mirror image (mirror_points, mirror_normals)
CROP_MARGIN_MM = 25.0
MANIFEST = "cases.json"


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


@dataclass(frozen=True)
class SyntheticDefect:
    """A pcc-made defect (pcc.toolkit.defects) cut into the complete skull (defective ∪ implant) of case `source`."""

    source: str
    shape: str
    index: int

    @property
    def name(self) -> str:
        return f"{Path(self.source).stem}_{self.shape}_{self.index}"

    @property
    def cache_key(self) -> str:
        """The name, plus the shape's revision once its definition has changed (pcc.toolkit.defects.SHAPE_REVISIONS)."""
        from pcc.toolkit.defects import SHAPE_REVISIONS

        revision = SHAPE_REVISIONS[self.shape]
        return self.name if revision == 1 else f"{self.name}|r{revision}"

    @property
    def seed(self) -> int:
        return zlib.crc32(f"{self.source}|{self.shape}|{self.index}".encode())


def synthetic_defects(names: list[str], per_skull: int) -> list[SyntheticDefect]:
    """`per_skull` defects for each named case, cycling through every shape pcc makes."""
    from pcc.toolkit.defects import SHAPES

    return [
        SyntheticDefect(name, SHAPES[(i * per_skull + k) % len(SHAPES)], k)
        for i, name in enumerate(names) for k in range(per_skull)
    ]


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
    from pcc.toolkit.defects import make_defect
    from pcc.io import read_volume

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
    root: Path, names: list[str], cache_dir: Path, *, with_volumes: bool, per_skull: int = 0, processes: int = 1
) -> tuple[list[str], list[Path]]:
    """Cache every case and `per_skull` synthetic defects of each (skipping files already cached).

    Returns the case names (real ones first, then synthetic ones) and their cache files, in order.
    """
    from tqdm import tqdm

    cache_dir.mkdir(parents=True, exist_ok=True)
    defects = synthetic_defects(names, per_skull)
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


class CompletionPairs(Dataset):
    """Augmented training pairs from cached cases; `repeats` samples per case per epoch."""

    def __init__(self, cases: list[CachedCase], *, sizes: SampleSizes, repeats: int, augment: bool, seed: int = 0,
                 warps: "Warps | None" = None):
        self.cases, self.sizes, self.repeats, self.augment, self.seed = cases, sizes, repeats, augment, seed
        self.warps = warps if warps is not None else Warps()

    def __len__(self) -> int:
        return len(self.cases) * self.repeats

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        # torch's generator differs per epoch and per worker (and is seeded by seed_everything).
        draw = int(torch.randint(0, 2**31 - 1, (1,)).item()) if self.augment else 0
        rng = np.random.default_rng([self.seed, index, draw])
        case = self.cases[index % len(self.cases)]
        return make_pair(case, self.sizes, rng, augment=self.augment, warps=self.warps)


@dataclass(frozen=True)
class Warps:
    """Smooth random warps of training cases (world mm), each a sum of `waves` sine waves.

    shape_mm: amplitude (standard deviation per wave and axis, mm) of the warp of the whole case
        (skull, implant and mirror image together): new skull shapes; 0 disables it.
    shape_wavelength_mm: (shortest, longest) wavelength of its waves.
    prior_mm, prior_wavelength_mm: the same for a second warp of the mirror image alone: the skull's two
        sides differ by millimetres, so the network must not copy the mirror; 0 disables it.
    """

    shape_mm: float = 0.0
    shape_wavelength_mm: tuple[float, float] = (80.0, 200.0)
    prior_mm: float = 0.0
    prior_wavelength_mm: tuple[float, float] = (30.0, 90.0)
    waves: int = 4


@dataclass(frozen=True)
class WarpField:
    """A smooth displacement field d(p) = Σ_k a_k sin(ω_k·p + φ_k) of world-mm points (random: WarpField.random).

    frequencies: (K, 3) ω_k, rad/mm; phases: (K,) φ_k, rad; amplitudes: (K, 3) a_k, mm.
    """

    frequencies: np.ndarray
    phases: np.ndarray
    amplitudes: np.ndarray

    @classmethod
    def random(cls, rng: np.random.Generator, *, amplitude_mm: float, wavelength_mm: tuple[float, float],
               waves: int) -> WarpField:
        """Waves of random directions, wavelengths uniform in wavelength_mm, random phases and a_k ~ N(0, amplitude_mm²) per axis."""
        directions = rng.normal(size=(waves, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        frequencies = directions * (2 * np.pi / rng.uniform(*wavelength_mm, size=(waves, 1)))
        phases = rng.uniform(0, 2 * np.pi, waves)
        return cls(frequencies, phases, rng.normal(0.0, amplitude_mm, size=(waves, 3)))

    def move(self, points: np.ndarray) -> np.ndarray:
        """Points (N, 3) world mm moved by d (float32)."""
        return (points + np.sin(points @ self.frequencies.T + self.phases) @ self.amplitudes).astype(np.float32)

    def turn(self, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
        """Unit normals (N, 3) at the points (N, 3, world mm, before the move) turned with the surface (float32)."""
        waves = len(self.phases)
        angle = points @ self.frequencies.T + self.phases  # (N, K)
        # Jacobian J = I + Σ_k cos(angle_k) a_k ω_kᵀ; normals map by J⁻ᵀ, which is cof(J) / det(J): the
        # cofactor matrix's columns are cross products of J's columns (no per-point solve; direction only).
        per_wave = (self.amplitudes[:, :, None] * self.frequencies[:, None, :]).reshape(waves, 9)
        jacobian = np.eye(3) + (np.cos(angle) @ per_wave).reshape(-1, 3, 3)
        c0, c1, c2 = (jacobian[:, :, i] for i in range(3))
        cofactor_columns = (np.cross(c1, c2), np.cross(c2, c0), np.cross(c0, c1))
        turned = sum(column * normals[:, i : i + 1] for i, column in enumerate(cofactor_columns))
        turned *= np.sign(np.einsum("ni,ni->n", c0, cofactor_columns[0]))[:, None]  # det(J) = c0 · (c1 × c2)
        turned /= np.maximum(np.linalg.norm(turned, axis=1, keepdims=True), 1e-9)
        return turned.astype(np.float32)


def make_pair(case: CachedCase, sizes: SampleSizes, rng: np.random.Generator, *, augment: bool,
              warps: Warps = Warps()) -> dict[str, torch.Tensor]:
    """One training pair: global (whole skull → coarse implant) and local (crop [+ mirror image] → dense implant).

    With warps.shape_mm > 0 one WarpField moves every cloud of the case alike; the normals of the skull, the
    defective skull and the implant are turned only at the points the pair takes (the Jacobian is most of a
    warp's cost), the mirror image's all. With warps.prior_mm > 0 a second one moves the mirror image alone."""
    clouds = [case.global_points, case.global_normals, case.skull_points, case.skull_normals, case.implant_points, case.implant_normals]
    with_prior = sizes.prior_input > 0
    if with_prior:
        if case.mirror_points is None:
            raise ValueError(f"case {case.name} has no mirror image cached: rebuild the cache (data.cache_dir)")
        clouds += [case.mirror_points, case.mirror_normals]
    field: WarpField | None = None
    if augment:
        clouds = _augment(clouds, rng)
        if warps.shape_mm > 0:
            field = WarpField.random(rng, amplitude_mm=warps.shape_mm, wavelength_mm=warps.shape_wavelength_mm,
                                     waves=warps.waves)
            if with_prior:
                clouds[6], clouds[7] = field.move(clouds[6]), field.turn(clouds[6], clouds[7])
        if with_prior and warps.prior_mm > 0:
            prior_field = WarpField.random(rng, amplitude_mm=warps.prior_mm, wavelength_mm=warps.prior_wavelength_mm,
                                           waves=warps.waves)
            clouds[6], clouds[7] = prior_field.move(clouds[6]), prior_field.turn(clouds[6], clouds[7])
    # whole skull, defective skull, implant: positions (warped), and their normals at chosen indices
    whole, skull, implant = (clouds[i] if field is None else field.move(clouds[i]) for i in (0, 2, 4))

    def normals_at(cloud: int, chosen: np.ndarray) -> np.ndarray:
        """Normals of clouds[cloud] (0, 2 or 4) at the chosen indices, turned by the warp if there is one."""
        normals = clouds[cloud + 1][chosen]
        return normals if field is None else field.turn(clouds[cloud][chosen], normals)

    g_frame = global_frame(whole)
    g_in = rng.choice(len(whole), sizes.global_input, replace=len(whole) < sizes.global_input)
    g_target = rng.choice(len(implant), sizes.global_target, replace=len(implant) < sizes.global_target)

    d_frame = defect_frame(implant[rng.choice(len(implant), 512, replace=len(implant) < 512)])
    if augment:  # the global stage's frame is not exact: train the local stage to find the hole in a shifted frame
        shift = rng.normal(0, sizes.frame_jitter * d_frame.scale, 3)
        d_frame = type(d_frame)(d_frame.centre + shift, d_frame.scale * rng.uniform(0.85, 1.2))
    l_in = crop_indices(skull, d_frame, sizes.local_input, rng)
    l_target = rng.choice(len(implant), sizes.local_target, replace=len(implant) < sizes.local_target)
    extra = {"local_prior": torch.from_numpy(crop_and_sample(clouds[6], clouds[7], d_frame, sizes.prior_input, rng))} if with_prior else {}
    return {
        **extra,
        "global_input": torch.from_numpy(np.hstack([g_frame.to_local(whole[g_in]), normals_at(0, g_in)]).astype(np.float32)),
        "global_target": torch.from_numpy(g_frame.to_local(implant[g_target]).astype(np.float32)),
        "local_input": torch.from_numpy(np.hstack([d_frame.to_local(skull[l_in]), normals_at(2, l_in)]).astype(np.float32)),
        "local_target": torch.from_numpy(d_frame.to_local(implant[l_target]).astype(np.float32)),
        "local_target_normals": torch.from_numpy(normals_at(4, l_target).astype(np.float32)),
    }


def _augment(clouds: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Mirror left-right, rotate ≤ 10° and scale 0.92–1.08 about the skull centre (world mm).

    clouds: alternating (points, normals) arrays; the first points array is the whole skull.
    """
    centre = (clouds[0].min(axis=0) + clouds[0].max(axis=0)) / 2.0
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
    moved = []
    for i, array in enumerate(clouds):
        if i % 2 == 0:
            moved.append(((array - centre) @ linear.T * scale + centre).astype(np.float32))
        else:
            moved.append((array @ linear.T).astype(np.float32))
    return moved


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
        root: folder with defective_skull/ and implant/ (same file names). It may be absent when
            cache_dir already holds every case (its cases.json lists them): e.g. on a GPU machine.
        cache_dir: where the per-case surface samples are cached (created when missing).
        validation_cases: how many cases to hold out (a fixed spread over the sorted names).
        synthetic_defects: pcc-made defects cut into each training case's complete skull, cycling
            through every shape of pcc.toolkit.defects (never into validation cases).
        repeats: augmented samples per training case per epoch.
        batch_size: training pairs per batch.
        num_workers: data-loading worker processes (also the processes that build the cache).
        global_input, global_target, local_input, local_target: point counts of each pair.
        frame_jitter: training shift of the defect frame's centre (standard deviation, defect radii).
        prior_input: points of the aligned mirror image in each local input (0: none; for a local
            network with prior=True).
        warp_mm, prior_warp_mm: amplitudes of the smooth random warps (Warps.shape_mm, Warps.prior_mm).
    """

    def __init__(
        self,
        root: str = "../shared/data/skullfix/training_set",
        cache_dir: str = "cache/skullfix",
        validation_cases: int = 10,
        synthetic_defects: int = 0,
        repeats: int = 8,
        batch_size: int = 8,
        num_workers: int = 1,
        global_input: int = 1024,
        global_target: int = 512,
        local_input: int = 1024,
        local_target: int = 2048,
        frame_jitter: float = 0.15,
        prior_input: int = 0,
        warp_mm: float = 0.0,
        prior_warp_mm: float = 0.0,
    ):
        super().__init__()
        self.root, self.cache_dir = Path(root), Path(cache_dir)
        self.validation_cases, self.synthetic_defects, self.repeats = validation_cases, synthetic_defects, repeats
        self.batch_size, self.num_workers = batch_size, num_workers
        self.sizes = SampleSizes(global_input, global_target, local_input, local_target, frame_jitter, prior_input)
        self.warps = Warps(shape_mm=warp_mm, prior_mm=prior_warp_mm)

    def split(self) -> tuple[list[str], list[str]]:
        """(training names, validation names) of the real cases."""
        names = case_names(self.root)
        validation = default_validation_split(names, self.validation_cases)
        return [n for n in names if n not in validation], validation

    def _cached_cases(self) -> dict:
        """Build (or find) the cache; {'training': [[name, file]...], 'validation': [...]}."""
        manifest = self.cache_dir / MANIFEST
        settings = {"root": self.root.name, "validation_cases": self.validation_cases,
                    "synthetic_defects": self.synthetic_defects, "cache_version": CACHE_VERSION}
        if not self.root.is_dir():
            if not manifest.is_file():
                raise FileNotFoundError(
                    f"data folder {self.root} not found and {self.cache_dir} holds no {MANIFEST}: give --data.root "
                    "the folder with defective_skull/ and implant/")
            cases = json.loads(manifest.read_text())
            if cases["settings"] != settings:
                raise ValueError(f"{manifest} was built with {cases['settings']}, not {settings}: rebuild it where the data is")
            return cases
        train, validation = self.split()
        processes = max(1, min(self.num_workers, os.cpu_count() or 1))  # each holds one 512×512×Z case
        train_names, train_paths = ensure_cache(
            self.root, train, self.cache_dir, with_volumes=False, per_skull=self.synthetic_defects, processes=processes)
        val_names, val_paths = ensure_cache(self.root, validation, self.cache_dir, with_volumes=True, processes=processes)
        cases = {
            "settings": settings,
            "training": [[n, p.name] for n, p in zip(train_names, train_paths)],
            "validation": [[n, p.name] for n, p in zip(val_names, val_paths)],
        }
        manifest.write_text(json.dumps(cases, indent=1))
        return cases

    def prepare_data(self) -> None:
        self._cached_cases()

    def setup(self, stage: str | None = None) -> None:
        cases = self._cached_cases()
        self.train_cases = [load_case(self.cache_dir / file, name) for name, file in cases["training"]]
        self.validation_names = [name for name, _ in cases["validation"]]
        self.validation_paths = [self.cache_dir / file for _, file in cases["validation"]]

    def train_dataloader(self) -> DataLoader:
        pairs = CompletionPairs(self.train_cases, sizes=self.sizes, repeats=self.repeats, augment=True, warps=self.warps)
        return DataLoader(
            pairs, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0, drop_last=True,
        )

    def val_dataloader(self) -> DataLoader:
        cases = _VolumeCases(self.validation_paths, self.validation_names)
        return DataLoader(cases, batch_size=None, num_workers=0, collate_fn=_keep_as_is)
