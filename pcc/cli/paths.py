"""Checks on command-line paths shared by all commands, done before any work starts."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pcc.errors import InputError


def check_output(output: str | Path, *inputs: str | Path) -> Path:
    """An output path that is not one of the inputs and whose folder exists and is writable."""
    out = Path(output)
    for given in inputs:
        if Path(given).exists() and out.exists() and out.resolve() == Path(given).resolve():
            raise InputError(f"output {out} is the same file as the input {given}: choose another output path")
    if out.is_dir():
        raise InputError(f"output {out} is a folder: give a file name")
    folder = out.parent
    if not folder.is_dir():
        raise InputError(f"output folder {folder} does not exist: create it or choose another path")
    if not os.access(folder, os.W_OK):
        raise InputError(f"output folder {folder} is not writable: choose another output path")
    return out


def check_input(path: str | Path, what: str) -> Path:
    """An existing input file."""
    given = Path(path)
    if not given.is_file():
        raise InputError(f"{what} {given} does not exist or is not a file: check the path")
    return given


def whole_number(text: str) -> int:
    """argparse type: an integer (the command checks its range and says what the option needs)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1."""
    value = whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
