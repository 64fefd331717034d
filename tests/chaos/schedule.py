"""Seeded fault plans for the chaos runs, and the player that injects them on time.

A plan spreads its faults over the run: the run is cut into one slot per fault, the faults are
shuffled into the slots, and each starts at a random point of the first half of its slot and
lasts at most most of the slot, so faults rarely overlap but any order can happen.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """One fault: what, when (seconds after the start), for how long, how strong."""

    kind: str
    at: float
    hold: float = 0.0
    level: float = 0.0
    target: str = ""

    def describe(self) -> str:
        extra = f"/{self.target}" if self.target else ""
        return f"{self.kind}{extra}@{self.at:.2f}s+{self.hold:.2f}s"


Action = Callable[[Fault], Awaitable[None]]

HOLDS: Mapping[str, tuple[float, float]] = {
    "kill_worker": (0.0, 0.0),
    "kill_redis": (0.3, 0.8),
    "blackhole": (0.4, 1.0),
    "reset": (0.1, 0.3),
    "latency": (0.5, 1.0),
    "stop_workers": (0.4, 0.8),
}
"""Range of how long each kind lasts, in seconds (capped by the slot)."""
LATENCY_S = (0.005, 0.05)


def plan(rng: random.Random, kinds: Sequence[str], span_s: float, *, lead_s: float) -> list[Fault]:
    """One fault of each of `kinds` (repeats allowed), spread over `lead_s`..`lead_s + span_s`."""
    order = list(kinds)
    rng.shuffle(order)
    slot = span_s / len(order)
    faults = []
    for index, kind in enumerate(order):
        low, high = HOLDS.get(kind, (0.0, 0.0))
        hold = min(rng.uniform(low, high), slot * 0.8)
        level = rng.uniform(*LATENCY_S) if kind == "latency" else 0.0
        at = lead_s + index * slot + rng.uniform(0, slot * 0.5)
        faults.append(Fault(kind=kind, at=round(at, 3), hold=round(hold, 3), level=level))
    return faults


async def play(faults: Sequence[Fault], actions: Mapping[str, Action], *, start: float) -> None:
    """Run each fault's action at its time (relative to the monotonic `start`), concurrently."""

    async def one(fault: Fault) -> None:
        await asyncio.sleep(max(0.0, start + fault.at - time.monotonic()))
        logger.info("chaos: %s", fault.describe())
        await actions[fault.kind](fault)

    async with asyncio.TaskGroup() as group:
        for fault in faults:
            group.create_task(one(fault))


class LoopLag:
    """The worst lag of this process's event loop while `watch` runs (a starved loop delays
    the proxy, the fakes and the webhook alike; the figure says how loaded the machine was)."""

    def __init__(self, every_s: float = 0.05) -> None:
        self.every_s = every_s
        self.worst_s = 0.0

    async def watch(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            began = time.monotonic()
            await asyncio.sleep(self.every_s)
            self.worst_s = max(self.worst_s, time.monotonic() - began - self.every_s)
