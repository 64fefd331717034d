"""Suite-wide fixtures: each test starts from the documented defaults, whatever the shell says."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

pytest_plugins = ["tests.log_scrape", "tests.chaos.plugin"]
"""T14 (tests/log_scrape.py): every log record at DEBUG, of this process and of the children it
starts, and every feedback store cell is scanned for raw ids and secrets after the run."""


@pytest.fixture(autouse=True)
def _clean_tierbot_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drop every `TIERBOT_*` variable so a developer's shell cannot change a test's result."""
    for name in list(os.environ):
        if name.startswith("TIERBOT_"):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """`tierbot`'s main() configures logging for its process; undo that after each test, or
    a handler bound to a closed capture stream breaks the tests that follow."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
