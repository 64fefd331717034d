"""The chat ledger: what the pipeline remembers about a chat between turns, beyond its history.

Two facts per chat: which turn each of our final messages shows (so a reaction or a delivery
status on a platform message can be tied to its turn), and how many times the current
question has been answered again (bounded by `max_retries_per_question`, reset by a new
question). Both expire `ttl_s` after they were last written, like the history.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis

from bots.constants import LEDGER_PREFIX
from bots.errors import store_call

Clock = Callable[[], float]

DEFAULT_TTL_S = 7 * 86400.0


class ChatLedger(Protocol):
    """Per-chat message-to-turn links and the retry count of the current question."""

    async def link(self, chat_id: str, platform_message_id: str, turn_id: str) -> None:
        """Remember that our message `platform_message_id` shows turn `turn_id`."""
        ...

    async def turn_of(self, chat_id: str, platform_message_id: str) -> str | None:
        """The turn our message shows, or None if unknown or forgotten."""
        ...

    async def retries(self, chat_id: str) -> int:
        """How many times the chat's current question was answered again."""
        ...

    async def add_retry(self, chat_id: str) -> int:
        """Count one more retry of the current question; return the new count."""
        ...

    async def new_question(self, chat_id: str) -> None:
        """A new question was asked: the retry count starts again from 0."""
        ...


class MemoryLedger:
    """A `ChatLedger` in this process's memory; `clock` (monotonic seconds) expires entries."""

    def __init__(self, *, ttl_s: float = DEFAULT_TTL_S, clock: Clock = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._values: dict[str, tuple[str | int, float]] = {}
        self._swept_size = 0

    async def link(self, chat_id: str, platform_message_id: str, turn_id: str) -> None:
        """Remember the link until `ttl_s` from now."""
        self._put(f"{chat_id}:m:{platform_message_id}", turn_id)

    async def turn_of(self, chat_id: str, platform_message_id: str) -> str | None:
        """The linked turn, if remembered."""
        value = self._get(f"{chat_id}:m:{platform_message_id}")
        return value if isinstance(value, str) else None

    async def retries(self, chat_id: str) -> int:
        """The current question's retry count."""
        value = self._get(f"{chat_id}:retries")
        return value if isinstance(value, int) else 0

    async def add_retry(self, chat_id: str) -> int:
        """Count one more retry."""
        count = await self.retries(chat_id) + 1
        self._put(f"{chat_id}:retries", count)
        return count

    async def new_question(self, chat_id: str) -> None:
        """Reset the retry count."""
        self._values.pop(f"{chat_id}:retries", None)

    def _get(self, key: str) -> str | int | None:
        found = self._values.get(key)
        if found is None or found[1] <= self._clock():
            return None
        return found[0]

    def _put(self, key: str, value: str | int) -> None:
        now = self._clock()
        if len(self._values) >= 2 * self._swept_size:
            self._values = {k: v for k, v in self._values.items() if v[1] > now}
            self._swept_size = max(len(self._values), 64)
        self._values[key] = (value, now + self._ttl_s)


class RedisLedger:
    """A `ChatLedger` in Redis: one key per fact, each with the TTL; the client is the caller's."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = LEDGER_PREFIX,
        ttl_s: float = DEFAULT_TTL_S,
        timeout_s: float = 0.5,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl_ms = max(1, round(ttl_s * 1000))
        self._timeout_s = timeout_s

    async def link(self, chat_id: str, platform_message_id: str, turn_id: str) -> None:
        """Remember the link for `ttl_s`."""
        key = f"{self._prefix}{chat_id}:m:{platform_message_id}"
        async with store_call("ledger link", self._timeout_s):
            await self._redis.set(key, turn_id, px=self._ttl_ms)

    async def turn_of(self, chat_id: str, platform_message_id: str) -> str | None:
        """The linked turn, if remembered."""
        key = f"{self._prefix}{chat_id}:m:{platform_message_id}"
        async with store_call("ledger read", self._timeout_s):
            value = await self._redis.get(key)
        return None if value is None else _text(value)

    async def retries(self, chat_id: str) -> int:
        """The current question's retry count."""
        async with store_call("ledger read", self._timeout_s):
            value = await self._redis.get(f"{self._prefix}{chat_id}:retries")
        return 0 if value is None else int(value)

    async def add_retry(self, chat_id: str) -> int:
        """Count one more retry (`INCR` and a fresh TTL in one transaction)."""
        key = f"{self._prefix}{chat_id}:retries"
        async with (
            store_call("ledger retry", self._timeout_s),
            self._redis.pipeline(transaction=True) as pipe,
        ):
            pipe.incr(key)
            pipe.pexpire(key, self._ttl_ms)
            count, _ = await pipe.execute()
        return int(count)

    async def new_question(self, chat_id: str) -> None:
        """Reset the retry count."""
        async with store_call("ledger reset", self._timeout_s):
            await self._redis.delete(f"{self._prefix}{chat_id}:retries")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
