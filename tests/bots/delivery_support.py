"""Test support for the deliveries: the executor's event stream, scripted, and its outcome."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from types import AsyncGeneratorType
from typing import cast

from routing.execution_types import Delta, ExecEvent, Outcome, Restart


def outcome(text: str, *, ok: bool = True) -> Outcome:
    """How the executor ends: answered with `text`, or nobody answered."""
    return Outcome(
        ok=ok,
        tier=1 if ok else None,
        provider="fake" if ok else None,
        model="fake-1" if ok else None,
        text=text if ok else "",
        attempts=(),
        reasons=(),
        input_tokens=3,
        output_tokens=5,
        cost_usd=0.0,
        ttft_s=0.01,
        total_s=0.1,
    )


class Script:
    """The executor's event stream (the deliveries' input, not our code): text pieces, restarts
    and pauses in seconds, then an outcome; it counts the pieces taken."""

    def __init__(
        self, *steps: str | Restart | float, ok: bool = True, with_outcome: bool = True
    ) -> None:
        self.steps = steps
        self.ok = ok
        self.with_outcome = with_outcome
        self.taken = 0
        self.events = cast(AsyncGeneratorType[ExecEvent, None], self._run())

    @property
    def closed(self) -> bool:
        """The generator was closed (or ran to its end)."""
        return self.events.ag_frame is None

    async def _run(self) -> AsyncGenerator[ExecEvent, None]:
        text = ""
        for step in self.steps:
            if isinstance(step, float):
                await asyncio.sleep(step)
            elif isinstance(step, Restart):
                text = ""
                yield step
            else:
                text += step
                self.taken += 1
                yield Delta(text=step)
        if self.with_outcome:
            yield outcome(text, ok=self.ok)
