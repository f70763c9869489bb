"""Point-completion network: encode a partial surface cloud, predict the missing surface points.

Coarse-to-fine (PCN-style) with local refinement:
1. encoder: a two-stage PointNet over (B, N, 6) points + normals → a (B, F) shape feature;
2. coarse decoder: an MLP from the feature to M coarse points (B, M, 3);
3. fine decoder: each coarse point spawns `children` points; their offsets (bounded by
   offset_scale) and unit normals come from an MLP of the feature, the coarse point, a 2-D seed,
   and a local feature pooled from the coarse point's k nearest input points (positions relative
   to the coarse point, and their normals), so the fine surface can align with nearby bone.
4. optional prior (prior=True): a second input set, the skull's mirror image aligned around the
   defect (pcc.geometry.symmetry), has its own encoder and its own local feature; both enter through layers
   that start at zero, so a network trained without the prior starts out unchanged when the prior
   is added and learns where to trust the mirror (one-sided defects) and where not.
All coordinates are in the caller's normalised frame (pcc.geometry.frames).
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn
from torch.nn import functional as F


def network_state(state_dict: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """The entries of one network ('global_net' or 'local_net') in a checkpoint's state_dict, unprefixed."""
    return {key[len(name) + 1 :]: value for key, value in state_dict.items() if key.startswith(name + ".")}


def state_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 (hex) of a state_dict's names, dtypes, shapes and values, in sorted name order: recorded in
    a weights file's metadata and checked when it is loaded, so damaged weights are refused."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def _mlp(sizes: list[int], *, last_activation: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or last_activation:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


class PointCompletionNet(nn.Module):
    """Args:
        in_features: values per input point (3 coordinates + 3 normal components).
        width: encoder width (per-point layers use width and 2·width channels).
        feature_dim: size of the global shape feature.
        coarse_points: M, points of the coarse output.
        children: fine points per coarse point (fine output has M·children points).
        neighbours: input points pooled into each coarse point's local feature (0 disables it).
        offset_scale: largest offset of a fine point from its coarse point (normalised units).
        prior: take a second (B, P, in_features) input set, the aligned mirror image (module docstring).
    """

    def __init__(
        self,
        in_features: int = 6,
        width: int = 64,
        feature_dim: int = 384,
        coarse_points: int = 512,
        children: int = 4,
        neighbours: int = 16,
        offset_scale: float = 0.1,
        prior: bool = False,
    ):
        super().__init__()
        self.init_args = dict(
            in_features=in_features, width=width, feature_dim=feature_dim, coarse_points=coarse_points,
            children=children, neighbours=neighbours, offset_scale=offset_scale,
        )
        if prior:  # recorded only when used, so checkpoints of networks without it load in older pcc too
            self.init_args["prior"] = True
        self.prior = prior
        if prior and neighbours == 0:
            raise ValueError("prior=True needs neighbours > 0 (the prior's local feature pools its nearest points)")
        self.coarse_points, self.n_children, self.neighbours = coarse_points, children, neighbours
        self.offset_scale = offset_scale
        self.point_mlp = _mlp([in_features, width, 2 * width], last_activation=True)
        self.fuse_mlp = _mlp([4 * width, 4 * width, feature_dim])
        self.coarse_mlp = _mlp([feature_dim, 2 * feature_dim, 2 * feature_dim, 3 * coarse_points])
        local_dim = 64 if neighbours > 0 else 0
        if neighbours > 0:
            self.local_mlp = _mlp([in_features, 32, local_dim], last_activation=True)
        hidden = 256
        self.fine_feature = nn.Linear(feature_dim, hidden)
        self.fine_point = nn.Linear(3 + 2 + local_dim, hidden, bias=False)
        self.fine_mlp = nn.Sequential(nn.GELU(), nn.Linear(hidden, 128), nn.GELU(), nn.Linear(128, 6))
        side = max(1, round(children**0.5))
        grid = torch.stack(torch.meshgrid(torch.linspace(-1, 1, side), torch.linspace(-1, 1, children // side), indexing="ij"), -1)
        self.register_buffer("seeds", grid.reshape(-1, 2)[:children].clone(), persistent=False)
        if prior:
            self.prior_point_mlp = _mlp([in_features, width, 2 * width], last_activation=True)
            self.prior_fuse_mlp = _mlp([4 * width, 4 * width, feature_dim])
            self.prior_feature = nn.Linear(feature_dim, feature_dim)
            self.prior_local_mlp = _mlp([in_features, 32, 64], last_activation=True)
            self.prior_fine = nn.Linear(64, hidden, bias=False)
            for layer in (self.prior_feature, self.prior_fine):  # start as the network without the prior
                nn.init.zeros_(layer.weight)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)

    def encode(self, points: torch.Tensor, point_mlp: nn.Module | None = None, fuse_mlp: nn.Module | None = None) -> torch.Tensor:
        """(B, N, in_features) → (B, feature_dim), by the main encoder or the one given."""
        per_point = (point_mlp or self.point_mlp)(points)
        pooled = per_point.max(dim=1, keepdim=True).values.expand_as(per_point)
        return (fuse_mlp or self.fuse_mlp)(torch.cat([per_point, pooled], dim=-1)).max(dim=1).values

    @staticmethod
    def _float32_head(mlp: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        """mlp(x) with its last (coordinate-producing) layer in float32, also under bf16 autocast (trainer
        precision bf16-mixed): coordinates need sub-millimetre precision, bfloat16 keeps 8 bits. Without
        autocast this is exactly mlp(x)."""
        hidden = mlp[:-1](x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            return mlp[-1](hidden.float())

    def local_features(self, coarse: torch.Tensor, points: torch.Tensor, local_mlp: nn.Module | None = None) -> torch.Tensor:
        """(B, M, 64) pooled from each coarse point's nearest input points (by local_mlp or the one given)."""
        with torch.no_grad():
            nearest = torch.cdist(coarse, points[..., :3]).topk(self.neighbours, dim=-1, largest=False).indices
        batch = torch.arange(points.shape[0], device=points.device)[:, None, None]
        grouped = points[batch, nearest]  # (B, M, k, C)
        relative = torch.cat([grouped[..., :3] - coarse[:, :, None, :], grouped[..., 3:]], dim=-1)
        return (local_mlp or self.local_mlp)(relative).max(dim=2).values

    def forward(self, points: torch.Tensor, prior: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, N, 6) input [and (B, P, 6) prior] → coarse (B, M, 3), fine (B, M·children, 3), fine normals (B, M·children, 3)."""
        if self.prior != (prior is not None):
            raise ValueError("this network takes a prior input set" if self.prior else "this network takes no prior input set")
        feature = self.encode(points)
        if prior is not None:
            feature = feature + self.prior_feature(self.encode(prior, self.prior_point_mlp, self.prior_fuse_mlp))
        coarse = self._float32_head(self.coarse_mlp, feature).view(-1, self.coarse_points, 3)
        per_coarse = [coarse]
        if self.neighbours > 0:
            per_coarse.append(self.local_features(coarse, points))
        per_coarse = torch.cat(per_coarse, dim=-1)  # (B, M, 3 [+ 64])
        b, m, k = coarse.shape[0], self.coarse_points, self.n_children
        seeds = self.seeds[None, None].expand(b, m, k, 2)
        per_child = torch.cat(
            [per_coarse[:, :, None, :3].expand(b, m, k, 3), seeds, per_coarse[:, :, None, 3:].expand(b, m, k, per_coarse.shape[-1] - 3)],
            dim=-1,
        )
        hidden = self.fine_point(per_child) + self.fine_feature(feature)[:, None, None, :]
        if prior is not None:
            prior_local = self.local_features(coarse, prior, self.prior_local_mlp)  # (B, M, 64)
            hidden = hidden + self.prior_fine(prior_local)[:, :, None, :]
        out = self._float32_head(self.fine_mlp, hidden)
        fine = coarse[:, :, None, :] + self.offset_scale * torch.tanh(out[..., :3])
        normals = F.normalize(out[..., 3:], dim=-1)
        return coarse, fine.reshape(b, m * k, 3), normals.reshape(b, m * k, 3)
