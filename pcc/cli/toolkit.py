"""Challenge toolkit commands: defect, segment, evaluate, rank."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    """Added by the challenge-toolkit work (issue 3)."""
