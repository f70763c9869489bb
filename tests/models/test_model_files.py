"""Model files cannot run code: a pickle with a payload is refused before anything in it runs."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "pcc" / "examples" / "defective_skull_005.nrrd"


class _Payload:
    """Unpickling this calls os.system(command): what a crafted model file would do."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.mark.parametrize("suffix", [".pt", ".ckpt"])
def test_a_model_file_with_a_code_payload_is_refused_and_the_payload_never_runs(tmp_path, suffix):
    marker = tmp_path / "payload-ran"
    evil = tmp_path / f"evil{suffix}"
    # A file shaped like a pcc checkpoint, with the payload among its entries.
    torch.save({"state_dict": {}, "pcc_networks": {}, "hook": _Payload(f"touch {marker}")}, evil, pickle_module=pickle)
    output = tmp_path / "implant.nrrd"
    result = subprocess.run([sys.executable, "-m", "pcc.cli", "implant", str(EXAMPLE), "-o", str(output),
                             "--model", str(evil), "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "not a pcc model" in lines[0], result.stderr
    assert not marker.exists(), "the model file's payload ran"
    assert not output.exists()


def test_init_weights_refuses_a_payload_too(tmp_path):
    from conftest import tiny_nets

    from pcc.learning.training import ImplantCompletion

    marker = tmp_path / "payload-ran"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hook": _Payload(f"touch {marker}")}, evil)
    with pytest.raises(ValueError, match="not a pcc checkpoint"):
        ImplantCompletion(*tiny_nets(), init_weights=str(evil))
    assert not marker.exists()


def test_resuming_from_a_checkpoint_with_a_payload_is_refused(tmp_path):
    """`pcc train fit --ckpt_path FILE` reads FILE through Lightning, which leaves torch.load's weights_only
    default (True since torch 2.6) in force: the payload is refused, not run."""
    import pickle as _pickle

    import pytorch_lightning as L
    from conftest import tiny_nets

    from pcc.learning.training import ImplantCompletion

    class Trainable(ImplantCompletion):  # pcc train's CLI adds the optimizer from the config
        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters())

    marker = tmp_path / "payload-ran"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hook": _Payload(f"touch {marker}")}, evil)
    batches = torch.utils.data.DataLoader([{"global_input": torch.zeros(64, 6)}])
    trainer = L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, default_root_dir=tmp_path)
    with pytest.raises(_pickle.UnpicklingError):
        trainer.fit(Trainable(*tiny_nets()), train_dataloaders=batches, ckpt_path=str(evil))
    assert not marker.exists(), "the checkpoint's payload ran"
