"""Chat history: each chat's turns, capped and expiring; the Protocol, memory and Redis stores.

Trimming to a tier's context window happens in `bots.answer`; this keeps the newest
`max_turns` turns of a chat for `ttl_s` after its last append. An append skips turns whose
`turn_id` is already stored, so a worker that retries a turn does not record it twice.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

from redis.asyncio import Redis

from bots.constants import HISTORY_PREFIX
from bots.errors import store_call
from routing.types import Turn

Clock = Callable[[], float]

# KEYS: list. ARGV: max turns, ttl ms, then (turn id or '', turn json) per turn.
_APPEND = """
local seen = {}
for _, raw in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local id = cjson.decode(raw).turn_id
  if type(id) == 'string' then seen[id] = true end
end
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  if id == '' or not seen[id] then
    redis.call('RPUSH', KEYS[1], ARGV[i + 1])
    seen[id] = true
  end
end
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[1]), -1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('LLEN', KEYS[1])
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class HistorySettings:
    """How much history to keep, and for how long."""

    max_turns: int = 50
    ttl_s: float = 7 * 86400
    """A chat's history is dropped this long after its last turn."""
    timeout_s: float = 2.0
    """Bound on each Redis call."""

    def __post_init__(self) -> None:
        if self.max_turns < 1 or self.ttl_s <= 0 or self.timeout_s <= 0:
            raise ValueError(
                f"history settings must be positive: max_turns={self.max_turns} "
                f"ttl_s={self.ttl_s} timeout_s={self.timeout_s}"
            )


class HistoryStore(Protocol):
    """Where a chat's turns are kept between messages."""

    async def append(self, chat_id: str, turns: Sequence[Turn]) -> None:
        """Add `turns` after the chat's others, skipping turn ids already stored."""
        ...

    async def load(self, chat_id: str) -> tuple[Turn, ...]:
        """The chat's turns, oldest first (empty for an unknown or expired chat)."""
        ...

    async def clear(self, chat_id: str) -> None:
        """Forget the chat's turns."""
        ...


class MemoryHistory:
    """A `HistoryStore` in this process's memory; `clock` (monotonic seconds) expires chats."""

    def __init__(
        self, settings: HistorySettings | None = None, *, clock: Clock = time.monotonic
    ) -> None:
        self._settings = settings or HistorySettings()
        self._clock = clock
        self._chats: dict[str, tuple[deque[Turn], float]] = {}
        self._swept_size = 0

    async def append(self, chat_id: str, turns: Sequence[Turn]) -> None:
        """Add `turns`, keeping the newest `max_turns`."""
        now = self._clock()
        kept = deque(await self.load(chat_id), maxlen=self._settings.max_turns)
        seen = {turn.turn_id for turn in kept if turn.turn_id is not None}
        for turn in turns:
            if turn.turn_id is None:
                kept.append(turn)
            elif turn.turn_id not in seen:
                kept.append(turn)
                seen.add(turn.turn_id)
        if len(self._chats) >= 2 * self._swept_size:
            self._chats = {k: v for k, v in self._chats.items() if v[1] > now}
            self._swept_size = max(len(self._chats), 64)
        self._chats[chat_id] = (kept, now + self._settings.ttl_s)

    async def load(self, chat_id: str) -> tuple[Turn, ...]:
        """The chat's turns, oldest first."""
        found = self._chats.get(chat_id)
        if found is None or found[1] <= self._clock():
            return ()
        return tuple(found[0])

    async def clear(self, chat_id: str) -> None:
        """Forget the chat's turns."""
        self._chats.pop(chat_id, None)


class RedisHistory:
    """A `HistoryStore` in Redis: a list of JSON turns per chat; the client is the caller's."""

    def __init__(
        self, redis: Redis, settings: HistorySettings | None = None, *, prefix: str = HISTORY_PREFIX
    ) -> None:
        self._redis = redis
        self._settings = settings or HistorySettings()
        self._prefix = prefix
        self._append = redis.register_script(_APPEND)

    async def append(self, chat_id: str, turns: Sequence[Turn]) -> None:
        """Add `turns`, keeping the newest `max_turns`; one atomic script."""
        if not turns:
            return
        args: list[str | int] = [self._settings.max_turns, round(self._settings.ttl_s * 1000)]
        for turn in turns:
            args += [turn.turn_id or "", json.dumps(asdict(turn), ensure_ascii=False)]
        async with store_call("history append", self._settings.timeout_s):
            await self._append((self._prefix + chat_id,), args)

    async def load(self, chat_id: str) -> tuple[Turn, ...]:
        """The chat's turns, oldest first."""
        async with store_call("history load", self._settings.timeout_s):
            raw = await self._redis.lrange(self._prefix + chat_id, 0, -1)
        return tuple(Turn(**json.loads(item)) for item in raw)

    async def clear(self, chat_id: str) -> None:
        """Forget the chat's turns."""
        async with store_call("history clear", self._settings.timeout_s):
            await self._redis.delete(self._prefix + chat_id)
