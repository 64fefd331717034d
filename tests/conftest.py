"""Suite-wide fixtures: each test starts from the documented defaults, whatever the shell says."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _clean_tierbot_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drop every `TIERBOT_*` variable so a developer's shell cannot change a test's result."""
    for name in list(os.environ):
        if name.startswith("TIERBOT_"):
            monkeypatch.delenv(name)
