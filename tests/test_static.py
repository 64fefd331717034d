"""The house checks run with the tests: formatting, lint and mypy --strict on the whole tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TREE = ["bots", "routing", "feedback", "tests"]


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "format", "--check", *TREE],
        ["ruff", "check", *TREE],
        ["mypy", *TREE],
    ],
    ids=["ruff-format", "ruff-lint", "mypy-strict"],
)
def test_tree_passes(command: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
