"""What the networks see, shared by training (pcc.learning.pairs) and use (pcc.design).

A light module (no Lightning import), so that designing an implant does not pay for the trainer.
"""

from __future__ import annotations

from dataclasses import dataclass

SKULL_POINTS = 32768  # dense surface sample of a skull (world mm), in training and in use
# The network sees points of the exact binary iso-surface (no smoothing), in training and in use.
NETWORK_SURFACE_SMOOTHING = 0.0


@dataclass(frozen=True)
class SampleSizes:
    """Point counts of one training pair (and of the networks' inputs in use)."""

    global_input: int = 1024
    global_target: int = 512
    local_input: int = 1024
    local_target: int = 2048
    frame_jitter: float = 0.15  # standard deviation of the defect-frame centre shift, in defect radii
    prior_input: int = 0  # points of the aligned mirror image given to a local network with prior=True
