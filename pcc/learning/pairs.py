"""Training pairs made on the fly from cached cases, with augmentation: left-right mirroring, small
rotations and scalings about the skull centre, smooth random warps that make new skull shapes
(warp_mm), an independent smooth warp of the mirror image only so the network learns that a
skull's two sides differ (prior_warp_mm), resampling of points and jitter of the defect frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from pcc.geometry.frames import crop_and_sample, crop_indices, defect_frame, global_frame
from pcc.learning.cache import CachedCase
from pcc.models.inputs import SampleSizes


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
