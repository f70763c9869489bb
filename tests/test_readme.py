"""Every command the README shows exists in the environment its set-up makes (the one running these tests)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    """The command lines of the README's shell blocks (``` without a language), comments and prompts removed."""
    text = (REPO / "README.md").read_text()
    lines = []
    for block in re.findall(r"^```\n(.*?)^```", text, flags=re.S | re.M):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def test_the_readme_activates_the_environment_its_commands_use():
    commands = readme_commands()
    assert ". .venv/bin/activate" in commands, "the set-up must say how to put .venv's pcc and python on the PATH"
    assert any(c.startswith("pcc implant") for c in commands) and any(c.startswith("python -m tools.") for c in commands)


def test_every_pcc_command_in_the_readme_exists():
    from pcc.cli import build_parser

    assert shutil.which("pcc", path=str(Path(sys.executable).parent)), "pcc is not installed beside this python"
    parser = build_parser()
    commands = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    for line in readme_commands():
        words = line.split()
        if words[0] == "pcc" and words[1] not in ("--version",):
            assert words[1] in commands, f"README: {line!r}: pcc has no command {words[1]!r}"
            options = {o for action in commands[words[1]]._actions for o in action.option_strings}
            for word in words[2:]:
                flag = word.strip("[]").split("=")[0]
                if flag.startswith("--") and words[1] != "train":
                    assert flag in options, f"README: {line!r}: pcc {words[1]} has no option {flag}"


@pytest.mark.slow
def test_every_python_tool_in_the_readme_runs_in_this_environment():
    """`python -m tools.GROUP.NAME` lines: the module exists and its --help runs with this environment's python
    from the repository's root (so its imports, e.g. pynrrd, are installed)."""
    modules = sorted({line.split()[2] for line in readme_commands() if line.startswith("python -m tools.")})
    assert modules
    for module in modules:
        result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=REPO,
                                timeout=120)
        assert result.returncode == 0, f"{module} --help failed: {result.stderr[-800:]}"
