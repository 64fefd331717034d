"""The retry budget: a floor for quiet times, a ratio of first attempts under load."""

from __future__ import annotations

from routing.budget import RetryBudget


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_quiet_bot_still_gets_the_floor_of_retries() -> None:
    budget = RetryBudget(clock=Clock(), ratio=0.2, floor=3)
    budget.first_attempt()
    assert [budget.try_retry() for _ in range(4)] == [True, True, True, False]


def test_under_load_retries_stay_within_the_ratio_of_requests() -> None:
    budget = RetryBudget(clock=Clock(), ratio=0.2, floor=3)
    allowed = 0
    for _ in range(100):
        budget.first_attempt()
        allowed += budget.try_retry()
    assert allowed == 20


def test_the_window_forgets_old_requests_and_retries() -> None:
    clock = Clock()
    budget = RetryBudget(clock=clock, ratio=0.2, floor=1, window_s=60.0)
    budget.first_attempt()
    assert budget.try_retry() is True
    assert budget.try_retry() is False
    clock.now = 60.0
    assert budget.try_retry() is True
