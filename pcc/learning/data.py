"""The Lightning DataModule of training: cases in the challenge layout → augmented training pairs
(pcc.learning.pairs) and volumetric validation cases, through the cache (pcc.learning.cache).

Besides each real pair, pcc-made defects of every shape (pcc.learning.defects) are cut into the training
cases' complete skulls (defective ∪ implant), so the model is not tied to one defect shape
(pcc.learning.cases), and optionally more of the hard shapes, some seen as a CT with thicker slices
(hard_defects, hard_slices_mm; issue 30).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytorch_lightning as L
from torch.utils.data import DataLoader, Dataset

from pcc.learning.cache import CACHE_VERSION, MANIFEST, ensure_cache, load_case
from pcc.learning.cases import case_names, default_validation_split, hard_defects, synthetic_defects
from pcc.learning.pairs import CompletionPairs, Warps
from pcc.models.inputs import SampleSizes


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
            through every shape of pcc.learning.defects.SHAPES (never into validation cases).
        hard_defects: more defects per training skull, fresh draws of the harder shapes
            (pcc.learning.cases.hard_defects: frontal, lateral, bilateral, random, temporal, irregular).
        hard_slices_mm: slice thicknesses the hard defects cycle through (0: the scan's own grid; e.g. 1.5:
            the defective skull seen as a CT with 1.5 mm slices, pcc.learning.slices).
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
        hard_defects: int = 0,
        hard_slices_mm: list[float] | None = None,
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
        self.hard_defects, self.hard_slices_mm = hard_defects, list(hard_slices_mm or [0.0])
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
        if self.hard_defects:  # absent otherwise, so caches built before these settings existed still match
            settings |= {"hard_defects": self.hard_defects, "hard_slices_mm": self.hard_slices_mm}
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
        defects = synthetic_defects(train, self.synthetic_defects) + hard_defects(
            train, self.hard_defects, first_index=self.synthetic_defects, slices_mm=self.hard_slices_mm)
        train_names, train_paths = ensure_cache(
            self.root, train, self.cache_dir, with_volumes=False, defects=defects, processes=processes)
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
