"""The stop switch: a webhook sets it when the user presses stop; streaming deliveries poll it.

A stop press must reach the worker that is streaming the chat's answer while that worker holds
the chat's lock, so it cannot wait in the queue behind the chat. The webhook sets the chat's
switch at once (before it queues the update for the record); the delivery's `stopped` poll
sees it and cancels the stream. The pipeline clears the switch when it starts a new answer, so
a press that came after an answer ended does not stop the next one. A set switch expires after
`ttl_s` on its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis

from bots.constants import STOP_PREFIX
from bots.errors import store_call

Clock = Callable[[], float]

DEFAULT_TTL_S = 300.0
"""Longer than any answer may stream (the executor's total deadline is 120 s by default)."""


class StopSwitch(Protocol):
    """Per-chat stop flags; satisfies `bots.delivery.StopSignal`."""

    async def set(self, chat_id: str) -> None:
        """Ask the chat's current answer to stop."""
        ...

    async def clear(self, chat_id: str) -> None:
        """Forget a stop press (a new answer starts)."""
        ...

    async def stopped(self, chat_id: str) -> bool:
        """Whether the chat's answer should stop."""
        ...


class MemoryStopSwitch:
    """A `StopSwitch` in this process's memory; `clock` (monotonic seconds) expires flags."""

    def __init__(self, *, ttl_s: float = DEFAULT_TTL_S, clock: Clock = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._until: dict[str, float] = {}

    async def set(self, chat_id: str) -> None:
        """Raise the chat's flag until `ttl_s` from now."""
        now = self._clock()
        self._until = {chat: until for chat, until in self._until.items() if until > now}
        self._until[chat_id] = now + self._ttl_s

    async def clear(self, chat_id: str) -> None:
        """Lower the chat's flag."""
        self._until.pop(chat_id, None)

    async def stopped(self, chat_id: str) -> bool:
        """Whether the chat's flag is up."""
        return self._until.get(chat_id, 0.0) > self._clock()


class RedisStopSwitch:
    """A `StopSwitch` shared through Redis: one key per chat with a TTL; the client is the
    caller's."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = STOP_PREFIX,
        ttl_s: float = DEFAULT_TTL_S,
        timeout_s: float = 0.5,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl_ms = max(1, round(ttl_s * 1000))
        self._timeout_s = timeout_s

    async def set(self, chat_id: str) -> None:
        """Raise the chat's flag; it expires after `ttl_s`."""
        async with store_call("stop set", self._timeout_s):
            await self._redis.set(self._prefix + chat_id, 1, px=self._ttl_ms)

    async def clear(self, chat_id: str) -> None:
        """Lower the chat's flag."""
        async with store_call("stop clear", self._timeout_s):
            await self._redis.delete(self._prefix + chat_id)

    async def stopped(self, chat_id: str) -> bool:
        """Whether the chat's flag is up."""
        async with store_call("stop read", self._timeout_s):
            return bool(await self._redis.exists(self._prefix + chat_id))
