"""A short run of every atheris target of `fuzz_webhooks.py`, each in its own process.

Long runs are on demand: `python3 -m uv run python -m tests.fuzz.fuzz_webhooks TARGET
-max_total_time=600`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.fuzz_webhooks import TARGETS

ROOT = Path(__file__).resolve().parents[2]
RUNS = {"telegram-json": 1000, "whatsapp-json": 1000}
"""Runs per target; the hypothesis-driven ones cost about a millisecond each."""
DEFAULT_RUNS = 20_000
COVERAGE = re.compile(r"^#\d+\s+DONE\s+cov: (\d+)", re.MULTILINE)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_the_target_runs_clean_with_coverage_feedback(target: str, tmp_path: Path) -> None:
    runs = RUNS.get(target, DEFAULT_RUNS)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fuzz.fuzz_webhooks",
            target,
            f"-runs={runs}",
            "-seed=1",
            f"-artifact_prefix={tmp_path}/",
        ],
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # the seeded corpus goes there
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    coverage = COVERAGE.search(done.stderr)
    assert coverage is not None, done.stderr[-3000:]
    assert int(coverage.group(1)) > 0  # `bots` is instrumented: the fuzzer is guided
    assert not list(tmp_path.glob("crash-*"))
