"""Lightning training of the two-stage implant completion, and the `pcc train` Lightning CLI.

    pcc train fit --config configs/skullfix.yaml [--data.root DIR] [--trainer.max_epochs N]

The LightningModule receives its networks and loss from the config (class_path / init_args);
the optimizer and schedule come from the config's `optimizer` / `lr_scheduler` sections.
Validation scores the held-out cases volumetrically through the whole pipeline (DSC, bDSC, HD95).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytorch_lightning as L
import torch
from torch import nn

from pcc.learning.losses import CompletionLoss, chamfer_distance, choose_backend
from pcc.models import network_state


class ImplantCompletion(L.LightningModule):
    """Global stage (whole skull → coarse implant points, to place the defect frame) and local
    stage (skull near the defect → dense implant points with normals), trained jointly.

    Args:
        global_net: network of the global stage (its coarse output is used).
        local_net: network of the local stage.
        loss: loss of the local stage.
        global_weight: weight of the global stage's Chamfer distance.
        score_volumes: score validation cases through voxelization (slower, the real figure).
        init_weights: start from the networks of this checkpoint (.ckpt or exported .pt, same
            architecture), e.g. to fine-tune the shipped model; None starts from random weights.
    """

    def __init__(
        self,
        global_net: nn.Module,
        local_net: nn.Module,
        loss: nn.Module | None = None,
        global_weight: float = 1.0,
        score_volumes: bool = True,
        init_weights: str | None = None,
    ):
        super().__init__()
        self.global_net, self.local_net = global_net, local_net
        self.loss = loss if loss is not None else CompletionLoss()
        self.global_weight, self.score_volumes = global_weight, score_volumes
        self.save_hyperparameters(ignore=["global_net", "local_net", "loss"])
        if init_weights is not None:
            self.load_networks(init_weights)

    def load_networks(self, path: str) -> None:
        """Copy both networks' weights from a pcc checkpoint; its architecture must match the config's."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"model.init_weights: {path} not found; give --model.init_weights CHECKPOINT "
                                    "(the .ckpt or .pt to start from)")
        try:  # weights_only: a file that would run code on unpickling is refused, not run
            state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        except Exception as error:
            raise ValueError(f"model.init_weights: {path} is not a pcc checkpoint ({type(error).__name__}); "
                             "give a .ckpt written by pcc train or a pcc weights file") from None
        for name in ("global_net", "local_net"):
            try:
                missing, unexpected = getattr(self, name).load_state_dict(network_state(state, name), strict=False)
            except RuntimeError as error:
                raise ValueError(f"{path}: its {name} does not match the configured one ({error}); "
                                 "use the init_args the checkpoint was trained with") from None
            # A network given the mirror prior (prior=True) may start from one trained without it: its
            # prior layers keep their initial values, which leave the output unchanged (pcc.models).
            missing = [key for key in missing if not key.startswith("prior_")]
            if missing or unexpected:
                raise ValueError(f"{path}: its {name} does not match the configured one (missing {missing[:4]}, "
                                 f"unexpected {unexpected[:4]}); use the init_args the checkpoint was trained with")

    def training_step(self, batch: dict[str, torch.Tensor], batch_index: int) -> torch.Tensor:
        g_coarse, _, _ = self.global_net(batch["global_input"])
        backend = choose_backend(getattr(self.loss, "backend", "auto"), g_coarse.device)
        global_loss, _, _ = chamfer_distance(g_coarse, batch["global_target"], backend=backend)
        coarse, fine, normals = self.local_net(batch["local_input"], batch.get("local_prior"))
        local = self.loss(coarse, fine, normals, batch["local_target"], batch["local_target_normals"])
        total = local["loss"] + self.global_weight * global_loss
        size = batch["local_input"].shape[0]
        self.log("train/loss", total, prog_bar=True, batch_size=size)
        self.log("train/global_chamfer", global_loss, batch_size=size)
        for key in ("fine", "coarse", "normal"):
            self.log(f"train/local_{key}", local[key], batch_size=size)
        return total

    def validation_step(self, case: dict, batch_index: int) -> None:
        from pcc.challenge.metrics import score_case
        from pcc.design.prediction import predict_implant_cloud
        from pcc.design.reconstruction import implant_from_points
        from pcc.volume import Volume

        cached = case["case"]
        sizes = getattr(getattr(self.trainer, "datamodule", None), "sizes", None)
        cloud = predict_implant_cloud(
            self.global_net, self.local_net, cached.skull_points, cached.skull_normals, **({"sizes": sizes} if sizes else {})
        )
        gt = torch.from_numpy(cached.implant_points[None]).float()
        chamfer, _, _ = chamfer_distance(torch.from_numpy(cloud.points[None]).float(), gt)
        # sync_dist: under DDP each process scores its share of the cases; the logged figure (and the one
        # ModelCheckpoint selects on) is the mean over all of them.
        self.log("val/chamfer_mm", chamfer, batch_size=1, sync_dist=True)
        if not self.score_volumes:
            return
        defective = Volume(case["defective"].astype(np.uint8), case["directions"], case["origin"])
        predicted = implant_from_points(cloud, defective)
        scores = score_case(predicted, case["implant"], case["defective"], defective.spacing)
        self.log("val/dsc", scores.dsc, batch_size=1, prog_bar=True, sync_dist=True)
        self.log("val/bdsc", scores.bdsc, batch_size=1, sync_dist=True)
        self.log("val/hd95", min(scores.hd95, 100.0), batch_size=1, sync_dist=True)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Record the networks' constructor arguments so the checkpoint loads without the config."""
        checkpoint["pcc_networks"] = {
            name: {"class_path": f"{type(net).__module__}.{type(net).__qualname__}", "init_args": dict(net.init_args)}
            for name, net in (("global_net", self.global_net), ("local_net", self.local_net))
        }
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is not None and hasattr(datamodule, "sizes"):
            checkpoint["pcc_sizes"] = asdict(datamodule.sizes)


def cosine_factor(fraction: float, final_lr_fraction: float, warmup_fraction: float) -> float:
    """Learning-rate factor at `fraction` (0..1) of a schedule: a linear warm-up over the first
    `warmup_fraction`, times a cosine from 1 down to `final_lr_fraction` over the whole schedule."""
    fraction = min(1.0, max(0.0, fraction))
    factor = final_lr_fraction + (1 - final_lr_fraction) * 0.5 * (1 + math.cos(math.pi * fraction))
    if warmup_fraction > 0:
        factor *= min(1.0, fraction / warmup_fraction)
    return factor


def set_learning_rates(trainer: L.Trainer, pl_module: L.LightningModule, base_lrs: list[float], factor: float) -> None:
    """Set every optimizer parameter group's learning rate to its base rate times `factor`, and log it."""
    groups = [group for opt in trainer.optimizers for group in opt.param_groups]
    for group, base in zip(groups, base_lrs):
        group["lr"] = base * factor
    pl_module.log("train/lr", groups[0]["lr"], batch_size=1)


class StepSchedule(L.Callback):
    """A schedule fixed in optimizer steps: the learning rate is its configured value times a cosine
    from 1 down to `final_lr_fraction` at `trainer.max_steps` (where training ends), times a linear
    warm-up from 0 to 1 over the first `warmup_steps`. The same config gives the same schedule on any machine
    (use it instead of an lr_scheduler; set trainer.max_steps and a high trainer.max_epochs).
    A resumed run goes on from its checkpoint's step.
    """

    def __init__(self, warmup_steps: int = 0, final_lr_fraction: float = 0.01):
        self.warmup_steps, self.final_lr_fraction = warmup_steps, final_lr_fraction
        self.base_lrs: list[float] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.max_steps is None or trainer.max_steps <= 0:
            raise ValueError("StepSchedule needs trainer.max_steps (the schedule's length in optimizer steps); "
                             "set it in the config or give --trainer.max_steps N")
        if not self.base_lrs:  # a resumed run keeps the learning rates it started with
            self.base_lrs = [group["lr"] for opt in trainer.optimizers for group in opt.param_groups]

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        total = trainer.max_steps  # step k (counted from 0) trains at the rate of fraction (k + 1) / total
        factor = cosine_factor((trainer.global_step + 1) / total, self.final_lr_fraction, self.warmup_steps / total)
        set_learning_rates(trainer, pl_module, self.base_lrs, factor)

    def state_dict(self) -> dict:
        return {"base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.base_lrs = list(state_dict["base_lrs"])


class TimeBudget(L.Callback):
    """Train for a fixed wall time: the learning rate follows a cosine from its configured value down
    to `final_lr_fraction` of it over `minutes` (after an optional linear warm-up over
    `warmup_minutes`), and training stops when the time is spent.

    A schedule that ends exactly when the time does, whatever the machine's speed (use it instead of
    an lr_scheduler; set trainer.max_epochs high). The elapsed time is saved in checkpoints, so a
    resumed run goes on where it stopped.
    """

    def __init__(self, minutes: float, final_lr_fraction: float = 0.01, warmup_minutes: float = 0.0):
        self.seconds, self.final_lr_fraction = 60.0 * minutes, final_lr_fraction
        self.warmup_seconds = 60.0 * warmup_minutes
        self.elapsed_before = 0.0
        self.started = time.monotonic()
        self.base_lrs: list[float] = []

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.started

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started = time.monotonic()
        if not self.base_lrs:  # a resumed run keeps the learning rates it started with
            self.base_lrs = [group["lr"] for opt in trainer.optimizers for group in opt.param_groups]

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        # linear warm-up, e.g. while a fine-tune's fresh optimizer state settles
        factor = cosine_factor(self.elapsed() / self.seconds, self.final_lr_fraction, self.warmup_seconds / self.seconds)
        set_learning_rates(trainer, pl_module, self.base_lrs, factor)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        done = self.elapsed() >= self.seconds
        if trainer.strategy.reduce_boolean_decision(done, all=False):
            trainer.should_stop = True

    def state_dict(self) -> dict:
        return {"elapsed": self.elapsed(), "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.elapsed_before = float(state_dict["elapsed"])
        self.base_lrs = list(state_dict["base_lrs"])


def train_cli(args: list[str]) -> int:
    """`pcc train ...`: the Lightning CLI over ImplantCompletion and SkullCompletionData."""
    import warnings

    from pytorch_lightning.cli import LightningCLI

    from pcc.learning.data import SkullCompletionData

    # Full float32 matrix products (no TF32 on GPUs): Chamfer's nearest-neighbour search compares squared
    # distances of sub-millimetre size, which TF32's 10-bit mantissa would blur.
    torch.set_float32_matmul_precision("highest")
    # `pcc train ARGS` passes ARGS explicitly; sys.argv stays whole so DDP can relaunch the same command.
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    LightningCLI(
        ImplantCompletion,
        SkullCompletionData,
        args=args,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=True,
    )
    return 0
