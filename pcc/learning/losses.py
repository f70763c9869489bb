"""Chamfer-type losses between point sets, with a pykeops backend (CPU) and a pure-torch one.

API in the spirit of PyTorch3D's chamfer_distance: (B, N, 3) and (B, M, 3) tensors in the same
units; distances are Euclidean (not squared) unless `squared=True`, so the loss is in those units.
pykeops is probed once in a child process: if compiling or running its kernel crashes (as seen on
a CUDA 13 machine) the process survives and the torch backend is used.
"""

from __future__ import annotations

import functools
import subprocess
import sys

import torch
from torch import nn

_PROBE = """
import torch
from pykeops.torch import LazyTensor
x = torch.rand(64, 3, dtype=torch.float32)
y = torch.rand(80, 3, dtype=torch.float32)
d = ((LazyTensor(x[:, None, :]) - LazyTensor(y[None, :, :])) ** 2).sum(-1)
i = d.argmin(dim=1).view(-1)
assert i.shape == (64,)
"""


@functools.lru_cache(maxsize=None)
def pykeops_works() -> bool:
    """True when pykeops compiles and runs a CPU nearest-neighbour kernel in a child process."""
    try:
        result = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def choose_backend(requested: str, device: torch.device) -> str:
    """'keops' or 'torch': 'auto' takes pykeops only on the CPU and only when its probe passes."""
    if requested not in ("auto", "keops", "torch"):
        raise ValueError(f"unknown chamfer backend {requested!r}; use auto, keops or torch")
    if requested == "torch" or (requested == "auto" and device.type != "cpu"):
        return "torch"
    if pykeops_works():
        return "keops"
    if requested == "keops":
        raise RuntimeError("pykeops does not work on this machine (its probe failed); use backend 'torch'")
    return "torch"


def nearest_indices(x: torch.Tensor, y: torch.Tensor, *, backend: str = "torch", chunk: int = 4096) -> torch.Tensor:
    """(B, N) index of each x point's nearest y point (no gradient flows through indices)."""
    with torch.no_grad():
        if backend == "keops":
            from pykeops.torch import LazyTensor

            d = ((LazyTensor(x.detach()[:, :, None, :].contiguous()) - LazyTensor(y.detach()[:, None, :, :].contiguous())) ** 2).sum(-1)
            return d.argmin(dim=2).view(x.shape[0], x.shape[1]).long()
        parts = [torch.cdist(x[:, s : s + chunk], y).argmin(dim=2) for s in range(0, x.shape[1], chunk)]
        return torch.cat(parts, dim=1)


def chamfer_distance(
    x: torch.Tensor, y: torch.Tensor, *, squared: bool = False, backend: str = "torch"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Symmetric Chamfer distance between (B, N, 3) x and (B, M, 3) y.

    Returns:
        loss: scalar, mean over x of the distance to the nearest y plus mean over y of the distance
            to the nearest x (units of the inputs; squared units when squared=True);
        x_to_y: (B, N) nearest y index per x point; y_to_x: (B, M) nearest x index per y point.
    """
    x_to_y = nearest_indices(x, y, backend=backend)
    y_to_x = nearest_indices(y, x, backend=backend)
    d_xy = (x - torch.gather(y, 1, x_to_y[..., None].expand(-1, -1, 3))).pow(2).sum(-1)
    d_yx = (y - torch.gather(x, 1, y_to_x[..., None].expand(-1, -1, 3))).pow(2).sum(-1)
    if not squared:
        d_xy, d_yx = (d_xy + 1e-12).sqrt(), (d_yx + 1e-12).sqrt()
    return d_xy.mean() + d_yx.mean(), x_to_y, y_to_x


class CompletionLoss(nn.Module):
    """Loss of a two-stage completion: Chamfer on coarse and fine points plus a normal term.

    Args:
        coarse_weight: weight of the coarse points' Chamfer distance.
        normal_weight: weight of 1 − cos(predicted normal, normal of the nearest target point).
        plane_mix: how the fine points' distance to the target is measured, from 0 (point to point, the
            plain Chamfer distance) to 1 (point to plane: along the normal of the nearest target point).
            Two samples of the same surface lie about a sample spacing apart point to point (the Chamfer
            distance of two disjoint 2,048-point samples of an implant is about 3 mm), which drowns the
            sub-millimetre depth errors the networks must learn; the distance to the nearest target point's
            tangent plane does not depend on where the target's samples fell. The target-to-prediction
            half stays point to point, so the predicted points must still cover the whole surface.
        backend: 'auto' (pykeops on the CPU when it works, else torch), 'keops' or 'torch'.

    The returned "fine" is always the plain Chamfer distance (comparable across settings); "loss" uses plane_mix.
    """

    def __init__(self, coarse_weight: float = 0.5, normal_weight: float = 0.1, backend: str = "auto",
                 plane_mix: float = 0.0):
        super().__init__()
        if not 0.0 <= plane_mix <= 1.0:
            raise ValueError(f"plane_mix must lie in [0, 1], got {plane_mix}")
        self.coarse_weight, self.normal_weight, self.backend = coarse_weight, normal_weight, backend
        self.plane_mix = plane_mix

    def forward(self, coarse, fine, normals, target, target_normals) -> dict[str, torch.Tensor]:
        """coarse (B, M, 3), fine and normals (B, N, 3) predicted; target and target_normals (B, T, 3) (unit normals)."""
        backend = choose_backend(self.backend, fine.device)
        coarse_loss, _, _ = chamfer_distance(coarse, target, backend=backend)
        fine_loss, fine_to_target, target_to_fine = chamfer_distance(fine, target, backend=backend)
        matched = torch.gather(target_normals, 1, fine_to_target[..., None].expand(-1, -1, 3))
        normal_loss = (1.0 - torch.nn.functional.cosine_similarity(normals, matched, dim=-1)).mean()
        fine_term = fine_loss
        if self.plane_mix > 0:
            offset = fine - torch.gather(target, 1, fine_to_target[..., None].expand(-1, -1, 3))  # (B, N, 3)
            point = (offset.pow(2).sum(-1) + 1e-12).sqrt()
            plane = (offset * matched).sum(-1).abs()
            back = target - torch.gather(fine, 1, target_to_fine[..., None].expand(-1, -1, 3))
            fine_term = ((1.0 - self.plane_mix) * point + self.plane_mix * plane).mean() + (back.pow(2).sum(-1) + 1e-12).sqrt().mean()
        total = fine_term + self.coarse_weight * coarse_loss + self.normal_weight * normal_loss
        return {"loss": total, "fine": fine_loss, "coarse": coarse_loss, "normal": normal_loss}
