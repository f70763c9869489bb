"""The `pcc` command line: parses arguments and calls one Python function per command.

Each area registers its commands from its own module (implant, convert, toolkit). Exit status:
0 success, 2 bad input or arguments (one line on stderr), 1 internal failure.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from pcc import __version__
from pcc.errors import InputError


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see '{self.prog} --help')\n")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    from pcc.cli import convert, implant, toolkit

    parser = _Parser(
        prog="pcc",
        description="Automatic cranial implant design by point-cloud completion.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'pcc COMMAND --help' for a command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"pcc {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in (implant, convert, toolkit):
        module.register(commands)
    # `pcc train ...` is handed to the Lightning CLI in main(); listed here for 'pcc --help' and the
    # example that 'pcc train --help' prints after the Lightning CLI's own help.
    add_command(
        commands, "train", help="Train the point-completion network through the Lightning CLI (see 'pcc train --help').",
        example=("pcc train fit --config configs/skullfix.yaml --data.root ../shared/data/skullfix/training_set",
                 "pcc train fit --config configs/skullfix.yaml --print_config"),
    )
    return parser


def add_command(
    commands: argparse._SubParsersAction, name: str, *, help: str, example: str | Sequence[str]
) -> argparse.ArgumentParser:
    """Add a sub-command whose --help ends with one example command line (a string) or several."""
    examples = [example] if isinstance(example, str) else list(example)
    heading = "example:" if len(examples) == 1 else "examples:"
    return commands.add_parser(
        name,
        help=help,
        description=help,
        epilog=heading + "".join(f"\n  {line}" for line in examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:  # the Lightning CLI parses its own arguments
        from pcc.learning.training import train_cli

        if argv[1:] in (["-h"], ["--help"]):
            return _train_help(train_cli)
        return _guarded(lambda: train_cli(argv[1:]))
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return _guarded(lambda: args.run(args))


def run() -> NoReturn:
    """The `pcc` console script: main() with pcc's memory settings (memory_settings), then exit with its
    status. What is left in memory (torch's many objects) is frozen first, so that the interpreter's last
    garbage collection at exit does not walk it: 0.55 s → 0.15 s from the command's end to its exit on
    the 2-core development CPU."""
    memory_settings(keep_freed_memory=sys.argv[1:2] != ["train"])
    status = main()
    gc.freeze()
    sys.exit(status)


def memory_settings(*, keep_freed_memory: bool = True) -> None:
    """Memory settings for speed where first use of fresh memory is slow (the development VM); results do
    not depend on them. Call before NumPy is imported. Each applies unless the user set its variables.

    - NumPy's transparent huge pages off (NUMPY_MADVISE_HUGEPAGE=0). NumPy asks Linux for huge pages for
      every array of 4 MB or more; on the development VM, 800 MB of new arrays took 2.3–5.6 s with them
      and 0.4–0.7 s without. NUMPY_MADVISE_HUGEPAGE=1 restores NumPy's default.
    - keep_freed_memory: glibc's malloc serves arrays below 1 GiB from its heap and keeps freed memory
      for the next array (mallopt: mmap threshold 1 GiB, trim threshold 2 GiB, top pad 256 MiB), instead
      of mapping fresh pages for each large array and returning them when it is freed. Freed memory goes
      back to the system at exit: the peak resident memory of one case rose by about 0.02 GiB, of folder
      mode on 10 cases by 0.2 GiB (1.6 GiB on 30 cases too). Only in this process (not in `--workers`
      processes); not for `pcc train` (not measured there); only with a glibc that takes a 1 GiB
      threshold; skipped when MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_, MALLOC_TOP_PAD_ or a
      glibc.malloc tunable (GLIBC_TUNABLES) is set. Figures of both settings: docs/benchmarks.md, Speed.
    """
    os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
    user_tuned = any(name in os.environ for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"))
    if not keep_freed_memory or user_tuned or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", "") or not _glibc():
        return
    import ctypes

    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3  # glibc's malloc.h
    # Older glibc refuses an mmap threshold above 32 MiB (mallopt returns 0); the other two settings would
    # then pin the threshold at its 128 KiB start, slower than glibc's own adaptive one: leave all three.
    if mallopt(m_mmap_threshold, 2**30) == 1:
        mallopt(m_trim_threshold, 2**31 - 1)
        mallopt(m_top_pad, 2**28)


def _glibc() -> bool:
    """Whether this process runs on glibc (whose malloc memory_settings tunes)."""
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (ValueError, OSError, AttributeError):
        return False


def _train_help(train_cli) -> int:
    """`pcc train --help`: the Lightning CLI's help (its usage named 'pcc train'), then pcc's examples of
    the train command."""
    program = sys.argv[0]
    sys.argv[0] = "pcc train"  # argparse names the program after sys.argv[0]; restored below
    try:
        train_cli(["--help"])
    except SystemExit as done:
        if done.code not in (0, None):
            raise
    finally:
        sys.argv[0] = program
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    train = commands.choices["train"]
    sys.stdout.write("\npcc train hands its arguments to the Lightning CLI above: 'pcc train fit --help' lists the "
                     f"trainer, model and data options.\n\n{train.epilog}\n")
    return 0


def _guarded(command) -> int:
    try:
        status = command()
    except InputError as error:
        sys.stderr.write(f"pcc: error: {error}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("pcc: interrupted: the cases that finished are kept (and in the report, if one was asked "
                         "for); run the same command again to resume\n")
        return 130
    except Exception as error:  # internal failure: short message, traceback only on request
        if os.environ.get("PCC_DEBUG"):
            raise
        sys.stderr.write(f"pcc: internal error: {type(error).__name__}: {error} (set PCC_DEBUG=1 for a traceback)\n")
        return 1
    return int(status or 0)

