"""Loading a trained model: the two networks, their input sizes, their design settings and metadata.

    model = load_model()                 # the shipped weights (pcc/weights/skullfix.pt), offline
    model = load_model("run.ckpt", device="cuda")
"""

from __future__ import annotations

import importlib
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from pcc.design.assessment import SHIPPED_TRUST, TrustModel, load_trust_model
from pcc.design.settings import DesignSettings
from pcc.errors import InputError
from pcc.models import network_state, state_digest
from pcc.models.inputs import SampleSizes

SHIPPED_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "skullfix.pt"


@dataclass
class CompletionModel:
    """The two networks of a trained model, on one device, in eval mode."""

    global_net: nn.Module
    local_net: nn.Module
    device: torch.device
    source: Path
    sizes: SampleSizes = field(default_factory=SampleSizes)
    metadata: dict = field(default_factory=dict)
    settings: DesignSettings = field(default_factory=DesignSettings)
    trust: TrustModel = field(default_factory=TrustModel)


def resolve_device(requested: str = "auto") -> torch.device:
    """'auto' → the first GPU when there is one, else the CPU; 'cuda' without a GPU is an error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda"):
        suffix = requested[len("cuda"):]
        if suffix and not (suffix.startswith(":") and suffix[1:].isdigit()):
            raise InputError(f"unknown device {requested!r}; use auto, cpu, cuda or cuda:N")
        if not torch.cuda.is_available():
            raise InputError(f"--device {requested} was asked for but no CUDA GPU is available; use --device cpu or auto")
        index = int(requested.split(":")[1]) if ":" in requested else 0
        if index >= torch.cuda.device_count():
            raise InputError(f"--device {requested}: this machine has {torch.cuda.device_count()} GPU(s)")
        return torch.device(requested)
    if requested == "cpu":
        return torch.device("cpu")
    raise InputError(f"unknown device {requested!r}; use auto, cpu, cuda or cuda:N")


def load_model(path: str | Path | None = None, *, device: str = "auto") -> CompletionModel:
    """Load shipped weights (path None) or a training checkpoint (.ckpt) / exported .pt file, offline.

    The model's trust model (pcc.design.assessment) is WEIGHTS_trust.json beside the weights when there is
    one, else the shipped weights' (fitted for those: for other weights its figures are only indicative)."""
    source = Path(path) if path is not None else SHIPPED_WEIGHTS
    if not source.is_file():
        raise InputError(f"model file {source} not found; give --model PATH of a pcc checkpoint")
    target = resolve_device(device)
    try:
        # weights_only: tensors and plain containers only; a file that would run code on unpickling is refused
        checkpoint = torch.load(source, map_location="cpu", weights_only=True)
        nets = {name: _instantiate(spec) for name, spec in checkpoint["pcc_networks"].items()}
        state = checkpoint["state_dict"]
        recorded = checkpoint.get("pcc_metadata", {}).get("weights_sha256")
        if recorded is not None and state_digest(state) != recorded:
            raise InputError(f"{source} is damaged: its weights' SHA-256 differs from the one recorded in its "
                             "metadata; download or export the weights again")
        for name, net in nets.items():
            net.load_state_dict(network_state(state, name))
    except InputError:
        raise
    except pickle.UnpicklingError:
        raise InputError(f"{source} is not a pcc model: it holds objects other than tensors and plain values "
                         "(such a file could run code when read, so it is not opened); give a pcc weights file "
                         "or a checkpoint of pcc train") from None
    except Exception as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise InputError(f"{source} is not a pcc model checkpoint ({type(error).__name__}: {first_line})") from None
    for net in nets.values():
        net.to(target).eval()
    sizes = SampleSizes(**checkpoint.get("pcc_sizes", {}))
    try:
        settings = DesignSettings.from_dict(checkpoint.get("pcc_settings"))
    except (TypeError, ValueError) as error:
        raise InputError(f"{source}: its design settings cannot be read ({error}); use a newer pcc or export the "
                         "weights again") from None
    return CompletionModel(nets["global_net"], nets["local_net"], target, source, sizes,
                           checkpoint.get("pcc_metadata", {}), settings, _trust_for(source))


def _trust_for(weights: Path) -> TrustModel:
    """The trust model fitted for these weights (WEIGHTS_trust.json beside them), else the shipped weights' one."""
    own = weights.with_name(f"{weights.stem}_trust.json")
    path = own if own.is_file() else SHIPPED_TRUST
    if not path.is_file():
        return TrustModel()
    try:
        return load_trust_model(path)
    except (OSError, ValueError, TypeError) as error:
        raise InputError(f"{path}: the trust model cannot be read ({error}); restore it from pcc's release") from None


def _instantiate(spec: dict) -> nn.Module:
    module_name, _, class_name = spec["class_path"].rpartition(".")
    if not module_name.startswith("pcc."):
        raise ValueError(f"network class {spec['class_path']} is not a pcc network")
    return getattr(importlib.import_module(module_name), class_name)(**spec["init_args"])
