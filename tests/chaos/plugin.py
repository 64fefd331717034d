"""pytest plugin of the chaos suite: the `--seeds N` option (how many seeded runs of each chaos
scenario; 3 by default, the CI smoke run, `--seeds 20` for the full run of reliability.md).

Registered from `tests/conftest.py` (`pytest_plugins = ["tests.chaos.plugin"]`) or with
`-p tests.chaos.plugin`; without it the chaos tests run their default 3 seeds.
"""

from __future__ import annotations

import pytest

DEFAULT_SEEDS = 3


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add `--seeds`."""
    parser.getgroup("chaos").addoption(
        "--seeds",
        type=int,
        default=DEFAULT_SEEDS,
        metavar="N",
        help=f"seeded runs of each chaos scenario (default {DEFAULT_SEEDS}; 20 for the full run)",
    )
