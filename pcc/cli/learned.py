"""Commands of the learned pipeline: implant, demo (train goes straight to the Lightning CLI)."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    """Added by the learned-core work (issue 4)."""
