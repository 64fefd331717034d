"""Protocols the routing core needs from the outside; implementations are wired in by `bots`."""

from __future__ import annotations

from typing import Protocol

from routing.types import SignalResult


class ComplexityScorer(Protocol):
    """Scores how hard a request is, in [0, 1], with the reasons for the score."""

    def __call__(self, text: str, /) -> SignalResult: ...
