"""The in-process queue: the embedded default for one process, with the Redis queue's semantics.

Nothing survives a restart, so "durable" here means "until the process ends". Dedupe keys expire
lazily; per-chat sequence counters are kept for the life of the process (one int per chat).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bots.errors import DeadLetterNotFound
from bots.queue import DeadEntry, Entry, QueueSettings, QueueStats
from bots.types import InboundMessage

Clock = Callable[[], float]


@dataclass(slots=True, kw_only=True)
class _Stored:
    seq: int
    message: InboundMessage
    enqueued_at: float


@dataclass(slots=True, kw_only=True)
class _Pending:
    consumer: str
    since: float
    deliveries: int


class MemoryQueue:
    """A `Queue` in this process's memory; `clock` (monotonic seconds) drives idle time and TTLs."""

    def __init__(
        self, settings: QueueSettings | None = None, *, clock: Clock = time.monotonic
    ) -> None:
        self._settings = settings or QueueSettings()
        self._clock = clock
        self._counter = 0
        self._entries: dict[str, _Stored] = {}
        self._undelivered: deque[str] = deque()
        self._pending: dict[str, _Pending] = {}
        self._dead: dict[str, DeadEntry] = {}
        self._seq: dict[str, int] = {}
        self._dedupe: dict[str, float] = {}
        self._swept_size = 0
        self._arrived = asyncio.Condition()

    @property
    def dropped_pending(self) -> int:
        """Always 0: nothing here is trimmed."""
        return 0

    async def enqueue(self, message: InboundMessage, dedupe_ttl_s: float) -> bool:
        """Queue `message` unless its `dedupe_key` is still remembered."""
        now = self._clock()
        if self._dedupe.get(message.dedupe_key, now) > now:
            return False
        self._forget_expired(now)
        self._dedupe[message.dedupe_key] = now + dedupe_ttl_s
        await self._append(message)
        return True

    async def read(self, consumer: str, *, count: int = 10) -> tuple[Entry, ...]:
        """Hand out up to `count` new entries, waiting up to `block_ms` for the first."""
        if not self._undelivered:
            try:
                async with asyncio.timeout(self._settings.block_ms / 1000), self._arrived:
                    await self._arrived.wait_for(lambda: bool(self._undelivered))
            except TimeoutError:
                return ()
        now = self._clock()
        entries: list[Entry] = []
        while self._undelivered and len(entries) < count:
            entry_id = self._undelivered.popleft()
            self._pending[entry_id] = _Pending(consumer=consumer, since=now, deliveries=1)
            entries.append(self._entry(entry_id))
        return tuple(entries)

    async def claim(self, consumer: str) -> tuple[Entry, ...]:
        """Take over entries idle for `min_idle_s`, oldest first, counting a delivery each."""
        now = self._clock()
        idle = [
            entry_id
            for entry_id, pending in self._pending.items()
            if now - pending.since >= self._settings.min_idle_s
        ]
        idle.sort(key=_order)
        claimed = idle[: self._settings.claim_count]
        for entry_id in claimed:
            pending = self._pending[entry_id]
            pending.consumer, pending.since = consumer, now
            pending.deliveries += 1
        return tuple(self._entry(entry_id) for entry_id in claimed)

    async def heartbeat(self, consumer: str, entry_ids: Sequence[str]) -> None:
        """Reset the idle time of the still-pending `entry_ids` and make them `consumer`'s."""
        now = self._clock()
        for entry_id in entry_ids:
            pending = self._pending.get(entry_id)
            if pending is not None:
                pending.consumer, pending.since = consumer, now

    async def ack(self, entry_ids: Sequence[str]) -> None:
        """Forget the entries."""
        for entry_id in entry_ids:
            if self._pending.pop(entry_id, None) is not None:
                del self._entries[entry_id]

    async def dead_letter(self, entry: Entry, reason: str) -> None:
        """Move `entry` to the dead-letter list."""
        dead_id = self._next_id()
        self._dead[dead_id] = DeadEntry(
            id=dead_id,
            entry_id=entry.id,
            seq=entry.seq,
            reason=reason,
            deliveries=entry.deliveries,
            message=entry.message,
        )
        await self.ack([entry.id])

    async def list_dead(self, *, count: int = 100) -> tuple[DeadEntry, ...]:
        """The oldest `count` dead-letter entries."""
        return tuple(self._dead.values())[:count]

    async def replay(self, dead_id: str) -> str:
        """Queue a dead entry's message again, bypassing dedupe."""
        dead = self._dead.pop(dead_id, None)
        if dead is None:
            raise DeadLetterNotFound(f"no dead-letter entry {dead_id}")
        return await self._append(dead.message)

    async def discard(self, dead_id: str) -> bool:
        """Delete a dead-letter entry."""
        return self._dead.pop(dead_id, None) is not None

    async def stats(self) -> QueueStats:
        """Current gauges."""
        oldest = min((self._entries[i].enqueued_at for i in self._pending), default=None)
        return QueueStats(
            depth=len(self._entries),
            pending=len(self._pending),
            oldest_pending_age_s=None if oldest is None else self._clock() - oldest,
            dead=len(self._dead),
            dropped_pending=0,
        )

    async def _append(self, message: InboundMessage) -> str:
        seq = self._seq.get(message.chat_id, 0) + 1
        self._seq[message.chat_id] = seq
        entry_id = self._next_id()
        self._entries[entry_id] = _Stored(seq=seq, message=message, enqueued_at=self._clock())
        self._undelivered.append(entry_id)
        async with self._arrived:
            self._arrived.notify_all()
        return entry_id

    def _entry(self, entry_id: str) -> Entry:
        stored = self._entries[entry_id]
        deliveries = self._pending[entry_id].deliveries
        return Entry(id=entry_id, seq=stored.seq, deliveries=deliveries, message=stored.message)

    def _next_id(self) -> str:
        self._counter += 1
        return f"{self._counter}-0"

    def _forget_expired(self, now: float) -> None:
        """Drop expired dedupe keys whenever the table has doubled since the last sweep."""
        if len(self._dedupe) < 2 * self._swept_size:
            return
        self._dedupe = {key: until for key, until in self._dedupe.items() if until > now}
        self._swept_size = max(len(self._dedupe), 64)


def _order(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])
