"""Retry budget: retries stay a bounded share of first attempts over a sliding window."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True, kw_only=True)
class RetryBudget:
    """Allows a retry while retries stay within `ratio` of first attempts in the last `window_s`.

    A small `floor` of retries is always allowed per window, so a quiet bot still fails over;
    under load the ratio rules, which caps provider calls at (1 + ratio) times the requests
    when every provider fails (reliability target T10).
    """

    clock: Callable[[], float]
    ratio: float = 0.2
    floor: int = 3
    window_s: float = 60.0
    _requests: deque[float] = field(default_factory=deque)
    _retries: deque[float] = field(default_factory=deque)

    def first_attempt(self) -> None:
        """Count a request's first provider call."""
        self._requests.append(self.clock())

    def try_retry(self) -> bool:
        """Take one retry from the budget; False when the budget is spent."""
        now = self.clock()
        for times in (self._requests, self._retries):
            while times and times[0] <= now - self.window_s:
                times.popleft()
        if len(self._retries) + 1 > max(self.floor, self.ratio * len(self._requests)):
            return False
        self._retries.append(now)
        return True
