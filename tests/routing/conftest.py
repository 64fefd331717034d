"""Fixtures for routing tests: a fixed complexity scorer and policy builders from env."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from routing.policy import Policy, build_policy
from routing.router import Router
from routing.settings import load_routing_settings
from routing.types import Reason, SignalResult


@dataclass(frozen=True, slots=True)
class FixedScorer:
    """A complexity scorer that gives every text the same score (the seam is a Protocol)."""

    value: float

    def __call__(self, text: str, /) -> SignalResult:
        return SignalResult(score=self.value, reasons=(Reason(code="fixed", text="fixed score"),))


@pytest.fixture
def make_policy(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], Policy]:
    """Build a Policy from `TIERBOT_*` variables given without their prefix."""

    def build(env: dict[str, str]) -> Policy:
        for key, value in env.items():
            monkeypatch.setenv(f"TIERBOT_{key}", value)
        return build_policy(load_routing_settings())

    return build


@pytest.fixture
def make_router(
    make_policy: Callable[[dict[str, str]], Policy],
) -> Callable[[float, dict[str, str]], Router]:
    """Build a Router with a fixed complexity score and the given variables."""

    def build(score: float, env: dict[str, str]) -> Router:
        return Router(policy=make_policy(env), complexity=FixedScorer(score))

    return build
