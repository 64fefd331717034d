"""The stop switch: one flag per streaming draft, raised when the user presses its stop button.

A Telegram draft streamed with `can_stop` gets a stop button; pressing it sends
`stopped_message_generation` with the chat and the draft's id. That press must reach the worker
that streams the draft while it holds the chat's lock, so it cannot wait in the queue behind the
chat: the webhook `press`es the switch at once, and the delivery's `stopped` poll sees it.

Flags are keyed by chat and draft, so a press stops only the generation of its own draft. The
delivery `open`s a draft before its first update reaches the user and `close`s it when the
stream ends; a press for a draft that is not open (finished, expired, or never ours) is ignored,
counted in `ignored` and logged at DEBUG. An open draft expires after `ttl_s` on its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

from bots.constants import STOP_PREFIX
from bots.errors import store_call

logger = logging.getLogger(__name__)

Clock = Callable[[], float]

DEFAULT_TTL_S = 300.0
"""Longer than any answer may stream (the executor's total deadline is 120 s by default)."""
_OPEN = b"open"
_STOPPED = b"stop"


class StopSwitch(Protocol):
    """Stop flags per (chat, draft); satisfies `bots.delivery.StopSignal`."""

    @property
    def ignored(self) -> int:
        """Presses this instance ignored: their draft was not streaming."""
        ...

    async def open(self, chat_id: str, draft_id: str) -> None:
        """The draft starts streaming: a press for it is taken from now on."""
        ...

    async def press(self, chat_id: str, draft_id: str) -> bool:
        """The user pressed the draft's stop button: True if it is streaming (it will stop);
        False, and nothing changes, if it is not."""
        ...

    async def stopped(self, chat_id: str, draft_id: str) -> bool:
        """Whether the draft's generation should stop."""
        ...

    async def close(self, chat_id: str, draft_id: str) -> None:
        """The draft's stream ended: later presses are ignored."""
        ...


def _ignored(draft_id: str) -> None:
    logger.debug("stop press ignored draft=%s: no such draft is streaming", draft_id)


@dataclass(slots=True)
class _Draft:
    until: float
    stopped: bool = False


class MemoryStopSwitch:
    """A `StopSwitch` in this process's memory; `clock` (monotonic seconds) expires drafts."""

    def __init__(self, *, ttl_s: float = DEFAULT_TTL_S, clock: Clock = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._drafts: dict[tuple[str, str], _Draft] = {}
        self._ignored = 0

    @property
    def ignored(self) -> int:
        """Presses ignored so far."""
        return self._ignored

    async def open(self, chat_id: str, draft_id: str) -> None:
        """Take presses for the draft until `ttl_s` from now (forgetting expired drafts)."""
        now = self._clock()
        self._drafts = {key: draft for key, draft in self._drafts.items() if draft.until > now}
        self._drafts[chat_id, draft_id] = _Draft(until=now + self._ttl_s)

    async def press(self, chat_id: str, draft_id: str) -> bool:
        """Raise the draft's flag if it is open; else count and ignore the press."""
        draft = self._live(chat_id, draft_id)
        if draft is None:
            self._ignored += 1
            _ignored(draft_id)
            return False
        draft.stopped = True
        return True

    async def stopped(self, chat_id: str, draft_id: str) -> bool:
        """Whether the draft is open and its flag is up."""
        draft = self._live(chat_id, draft_id)
        return draft is not None and draft.stopped

    async def close(self, chat_id: str, draft_id: str) -> None:
        """Forget the draft."""
        self._drafts.pop((chat_id, draft_id), None)

    def _live(self, chat_id: str, draft_id: str) -> _Draft | None:
        draft = self._drafts.get((chat_id, draft_id))
        return draft if draft is not None and draft.until > self._clock() else None


class RedisStopSwitch:
    """A `StopSwitch` shared through Redis: one key per open draft, with a TTL; the client is
    the caller's."""

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
        self._ignored = 0

    @property
    def ignored(self) -> int:
        """Presses this process ignored so far."""
        return self._ignored

    async def open(self, chat_id: str, draft_id: str) -> None:
        """Create the draft's key; it expires after `ttl_s`."""
        async with store_call("stop open", self._timeout_s):
            await self._redis.set(self._key(chat_id, draft_id), _OPEN, px=self._ttl_ms)

    async def press(self, chat_id: str, draft_id: str) -> bool:
        """Raise the flag only if the draft's key exists (one atomic SET XX)."""
        async with store_call("stop press", self._timeout_s):
            raised = await self._redis.set(
                self._key(chat_id, draft_id), _STOPPED, xx=True, keepttl=True
            )
        if not raised:
            self._ignored += 1
            _ignored(draft_id)
        return bool(raised)

    async def stopped(self, chat_id: str, draft_id: str) -> bool:
        """Whether the draft's flag is up."""
        async with store_call("stop read", self._timeout_s):
            return await self._redis.get(self._key(chat_id, draft_id)) == _STOPPED

    async def close(self, chat_id: str, draft_id: str) -> None:
        """Delete the draft's key."""
        async with store_call("stop close", self._timeout_s):
            await self._redis.delete(self._key(chat_id, draft_id))

    def _key(self, chat_id: str, draft_id: str) -> str:
        return f"{self._prefix}{chat_id}:{draft_id}"
