"""The `pcc` command line: parses arguments and calls one Python function per command.

Each area registers its commands from its own module (convert, toolkit, learned). Exit status:
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
    from pcc.cli import convert, learned, toolkit

    parser = _Parser(
        prog="pcc",
        description="Automatic cranial implant design by point-cloud completion.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'pcc COMMAND --help' for a command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"pcc {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in (learned, convert, toolkit):
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
    """The `pcc` console script: main() with NumPy's memory settings (numpy_memory_settings), then exit
    with its status. What is left in memory (torch's many objects) is frozen first, so that the
    interpreter's last garbage collection at exit does not walk it: 0.55 s → 0.15 s from the command's
    end to its exit on the 2-core development CPU."""
    numpy_memory_settings()
    status = main()
    gc.freeze()
    sys.exit(status)


def numpy_memory_settings() -> None:
    """Turn NumPy's transparent huge pages off unless the user chose (NUMPY_MADVISE_HUGEPAGE); call it
    before NumPy is imported, which reads the variable.

    NumPy asks Linux for huge pages for every array of 4 MB or more. Where the kernel is slow to
    provide them, first use of fresh memory costs several times more: on the 2-core development VM,
    800 MB of new arrays took 2.3–5.6 s with huge pages and 0.4–0.7 s without, and `pcc implant` on the
    example case 6.4–9.1 s against 5.9–6.7 s (docs/benchmarks.md, Speed). Results do not depend on it;
    NUMPY_MADVISE_HUGEPAGE=1 restores NumPy's default.
    """
    os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")


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
        sys.stderr.write("pcc: interrupted\n")
        return 130
    except Exception as error:  # internal failure: short message, traceback only on request
        if os.environ.get("PCC_DEBUG"):
            raise
        sys.stderr.write(f"pcc: internal error: {type(error).__name__}: {error} (set PCC_DEBUG=1 for a traceback)\n")
        return 1
    return int(status or 0)

