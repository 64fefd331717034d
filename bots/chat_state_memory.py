"""The in-process chat gate and outbox, beside `MemoryQueue` for a single process.

Each method runs without an await inside, so it is atomic within the event loop. The gate keeps
one finished-sequence number per chat for the life of the process, in step with the queue's
counters; parked entries and locks disappear once their chat is idle.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from bots.chat_state import Admission, ChatSettings, OutboxRecord, Renewal
from bots.queue import Entry

Clock = Callable[[], float]


class MemoryChatGate:
    """A `ChatGate` in this process's memory; `clock` (monotonic seconds) expires the locks."""

    def __init__(
        self, settings: ChatSettings | None = None, *, clock: Clock = time.monotonic
    ) -> None:
        self._settings = settings or ChatSettings()
        self._clock = clock
        self._done: dict[str, int] = {}
        self._parked: dict[str, dict[int, Entry]] = {}
        self._locks: dict[str, tuple[str, float]] = {}

    async def admit(self, entry: Entry, token: str) -> Admission:
        """Park `entry`; take the chat's lock for `token` if it is free."""
        chat_id = entry.message.chat_id
        if entry.seq <= self._done.get(chat_id, 0):
            return "done"
        self._parked.setdefault(chat_id, {})[entry.seq] = entry
        if self._holder(chat_id) is not None:
            return "parked"
        self._lock(chat_id, token)
        return "locked"

    async def next_batch(self, chat_id: str, token: str) -> tuple[Entry, ...]:
        """The parked run after the last finished entry; releases the lock when it is empty."""
        if self._holder(chat_id) != token:
            return ()
        parked = self._parked.get(chat_id, {})
        first = self._done.get(chat_id, 0) + 1
        batch: list[Entry] = []
        while len(batch) < self._settings.max_batch and (first + len(batch)) in parked:
            batch.append(parked[first + len(batch)])
        if batch:
            self._lock(chat_id, token)
        else:
            del self._locks[chat_id]
        return tuple(batch)

    async def complete(self, chat_id: str, last_seq: int) -> None:
        """Mark entries up to `last_seq` finished."""
        if last_seq <= self._done.get(chat_id, 0):
            return
        self._done[chat_id] = last_seq
        parked = self._parked.get(chat_id, {})
        for seq in [seq for seq in parked if seq <= last_seq]:
            del parked[seq]
        if not parked:
            self._parked.pop(chat_id, None)

    async def extend(self, chat_id: str, token: str, first_seq: int) -> Renewal | None:
        """Renew the lock (taking it again if it expired and is free while the batch starting at
        `first_seq` is unfinished); the parked entries' ids, or None if the lock is lost."""
        holder = self._holder(chat_id)
        retaken = holder != token
        if retaken and (holder is not None or first_seq <= self._done.get(chat_id, 0)):
            return None
        self._lock(chat_id, token)
        parked = tuple(entry.id for entry in self._parked.get(chat_id, {}).values())
        return Renewal(parked, retaken=retaken)

    async def release(self, chat_id: str, token: str) -> None:
        """Give the lock up if `token` holds it."""
        if self._holder(chat_id) == token:
            del self._locks[chat_id]

    def _holder(self, chat_id: str) -> str | None:
        lock = self._locks.get(chat_id)
        if lock is None:
            return None
        if lock[1] <= self._clock():
            del self._locks[chat_id]
            return None
        return lock[0]

    def _lock(self, chat_id: str, token: str) -> None:
        self._locks[chat_id] = (token, self._clock() + self._settings.lock_ttl_s)


class MemoryOutbox:
    """An `Outbox` in this process's memory; records expire after their TTL."""

    def __init__(self, *, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._records: dict[str, tuple[OutboxRecord, float]] = {}
        self._swept_size = 0

    async def get(self, dedupe_key: str) -> OutboxRecord | None:
        """The record of one message."""
        found = self._records.get(dedupe_key)
        if found is None or found[1] <= self._clock():
            return None
        return found[0]

    async def get_many(self, dedupe_keys: Sequence[str]) -> tuple[OutboxRecord | None, ...]:
        """The records of several messages."""
        return tuple([await self.get(key) for key in dedupe_keys])

    async def mark_pending(self, dedupe_keys: Sequence[str], ttl_s: float) -> None:
        """Record pending answers, keeping records that exist."""
        for key in dedupe_keys:
            if await self.get(key) is None:
                self._put(key, OutboxRecord(status="pending"), ttl_s)

    async def mark_sent(
        self, dedupe_keys: Sequence[str], platform_message_id: str | None, ttl_s: float
    ) -> None:
        """Record sent answers."""
        record = OutboxRecord(status="sent", platform_message_id=platform_message_id)
        for key in dedupe_keys:
            self._put(key, record, ttl_s)

    def _put(self, key: str, record: OutboxRecord, ttl_s: float) -> None:
        now = self._clock()
        if len(self._records) >= 2 * self._swept_size:
            self._records = {k: v for k, v in self._records.items() if v[1] > now}
            self._swept_size = max(len(self._records), 64)
        self._records[key] = (record, now + ttl_s)
