"""Checks on command-line paths shared by all commands."""

from __future__ import annotations

from pathlib import Path

from pcc.errors import InputError


def check_output(output: str | Path, *inputs: str | Path) -> Path:
    """An output path that is not one of the inputs and whose folder exists and is writable."""
    out = Path(output)
    for given in inputs:
        if Path(given).exists() and out.exists() and out.resolve() == Path(given).resolve():
            raise InputError(f"output {out} is the same file as the input: choose another output path")
    if out.is_dir():
        raise InputError(f"output {out} is a folder: give a file name")
    return out
