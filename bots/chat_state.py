"""Per-chat order: the chat gate and outbox seams, and `ChatTurns`, which runs a chat's turns.

Every entry carries its chat's sequence number (given out at enqueue). A worker `admit`s each
entry it gets: the entry is parked in the chat's state and, in the same atomic step, the worker
either takes the chat's lock or leaves the entry to the lock's holder. The holder repeatedly
takes `next_batch`: the parked entries that directly follow the chat's last finished one, in
sequence order. It answers them as one turn, marks them done (`complete`) and acknowledges
them; when nothing follows, `next_batch` releases the lock in the same atomic step as its check,
so an entry parked meanwhile is never stranded. Messages that arrive while a chat is busy are
therefore answered together, after the current turn, and never out of order; a missing
predecessor (still in flight or in a dead worker's pending list) stops the run until it comes.

If the holder dies, its lock expires (`lock_ttl_s` < the queue's `min_idle_s`) and `claim` hands
its entries to another worker after `min_idle_s`; their admission takes the free lock and the
run resumes from the first unfinished entry. The outbox record of each message (pending, then
sent with the platform's message id, written before the ack) makes a redelivered message that
was already answered only acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar, assert_never

from bots.errors import StoreUnavailable
from bots.queue import Entry, Queue, QueueSettings, dedupe_ttl_s
from bots.turn_fence import fenced

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

Admission = Literal["locked", "parked", "done"]
"""locked: the caller holds the chat's lock and should run `next_batch`; parked: the lock's
holder will take the entry; done: the entry was finished before, only its ack is missing."""

OutboxStatus = Literal["pending", "sent"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatSettings:
    """Knobs of the chat gate and of `ChatTurns`."""

    lock_ttl_s: float = 30.0
    """A chat's lock expires this long after its last extension (must stay below min_idle_s)."""
    heartbeat_s: float = 10.0
    """While answering, the lock and the chat's entries are renewed this often."""
    max_batch: int = 20
    """At most this many messages are answered in one turn."""
    max_deliveries: int = 5
    """An entry delivered more often than this goes to the dead-letter list instead."""
    chat_ttl_s: int = 30 * 86400
    """A chat's state is forgotten after this long without traffic."""
    timeout_s: float = 2.0
    """Bound on each call to the shared store."""
    record_retry_s: float = 1.5
    """How long recording a delivered answer as sent is retried while the store is unreachable:
    the answer is out, and a record left pending makes the redelivery answer again. Up to the
    queue's `min_idle_s` less one heartbeat is useful (until another worker may claim it)."""

    @classmethod
    def for_queue(
        cls, queue: QueueSettings, *, lock_ttl_s: float, max_deliveries: int
    ) -> ChatSettings:
        """The settings a worker runs with: the lock renewed three times per TTL, and a
        delivered answer's sent record retried until the queue may hand its entries to another
        worker (`min_idle_s` after the last heartbeat)."""
        heartbeat_s = lock_ttl_s / 3
        return cls(
            lock_ttl_s=lock_ttl_s,
            heartbeat_s=heartbeat_s,
            max_deliveries=max_deliveries,
            record_retry_s=queue.min_idle_s - heartbeat_s,
        )

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat_s < self.lock_ttl_s:
            raise ValueError(
                f"chat settings need 0 < heartbeat_s < lock_ttl_s, got "
                f"heartbeat_s={self.heartbeat_s} lock_ttl_s={self.lock_ttl_s}"
            )
        numbers = {
            "max_batch": self.max_batch,
            "max_deliveries": self.max_deliveries,
            "chat_ttl_s": self.chat_ttl_s,
            "timeout_s": self.timeout_s,
            "record_retry_s": self.record_retry_s,
        }
        bad = [f"{name}={value}" for name, value in numbers.items() if value <= 0]
        if bad:
            raise ValueError(f"chat settings must be positive: {', '.join(bad)}")


@dataclass(frozen=True, slots=True)
class Renewal:
    """What renewing a chat's lock found."""

    parked: tuple[str, ...]
    """The ids of the chat's parked entries (the holder keeps them claimed)."""
    retaken: bool = False
    """The lock had expired with nobody else taking it, and was taken again."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxRecord:
    """Where the answer to one inbound message stands."""

    status: OutboxStatus
    platform_message_id: str | None = None


class ChatGate(Protocol):
    """Per-chat lock, sequence gate and parking place for entries waiting for the lock."""

    async def admit(self, entry: Entry, token: str) -> Admission:
        """Park `entry` and try to take its chat's lock for `token`, in one atomic step."""
        ...

    async def next_batch(self, chat_id: str, token: str) -> tuple[Entry, ...]:
        """The parked entries directly after the last finished one, in order (renewing the lock).

        Returns () and releases the lock when there are none; () also when `token` no longer
        holds the lock.
        """
        ...

    async def complete(self, chat_id: str, last_seq: int) -> None:
        """Mark every entry up to `last_seq` finished and unpark them (idempotent)."""
        ...

    async def extend(self, chat_id: str, token: str, first_seq: int) -> Renewal | None:
        """Renew the lock of the holder of the batch starting at `first_seq`; None if it was lost.

        A lock that expired (a stalled event loop, a Redis restart that dropped the key) is taken
        again when nobody else holds it and the batch is not finished; lost means another worker
        holds the chat or has finished the batch, so the caller must not deliver its answer.
        """
        ...

    async def release(self, chat_id: str, token: str) -> None:
        """Give the lock up if `token` still holds it (after a failed turn)."""
        ...


class Outbox(Protocol):
    """One record per inbound message (by dedupe key): pending, then sent."""

    async def get(self, dedupe_key: str) -> OutboxRecord | None:
        """The record of one message, or None if no answer was started."""
        ...

    async def get_many(self, dedupe_keys: Sequence[str]) -> tuple[OutboxRecord | None, ...]:
        """The records of several messages, in the same order."""
        ...

    async def mark_pending(self, dedupe_keys: Sequence[str], ttl_s: float) -> None:
        """Record that answers are being produced; a sent record is never downgraded."""
        ...

    async def mark_sent(
        self, dedupe_keys: Sequence[str], platform_message_id: str | None, ttl_s: float
    ) -> None:
        """Record that the answer went out, with the platform's id of our final message."""
        ...


class TurnHandler(Protocol):
    """Answers one turn: the chat's unanswered messages, in order; returns the answer's id."""

    async def __call__(self, entries: tuple[Entry, ...], /) -> str | None: ...


def check_timing(queue: QueueSettings, chat: ChatSettings) -> None:
    """Refuse a chat lock that outlives `min_idle_s`: a dead holder's chat would stay locked
    when `claim` hands its entries to another worker, delaying them by another `min_idle_s`.
    """
    if chat.lock_ttl_s >= queue.min_idle_s:
        raise ValueError(
            f"chat lock_ttl_s={chat.lock_ttl_s} must be below the queue's "
            f"min_idle_s={queue.min_idle_s}"
        )


def coalesced_text(entries: Sequence[Entry]) -> str:
    """The texts of a turn's messages, one per line, in order."""
    return "\n".join(entry.message.text for entry in entries if entry.message.text)


_RETRY_FIRST_S, _RETRY_MAX_S = 0.05, 0.25
"""Backoff of the store calls that must get through (the fence, the sent record): short, so
an answer is recorded within a quarter second of the store's return."""


async def _retrying(call: Callable[[], Awaitable[_T]], *, for_s: float, what: str) -> _T:
    """`call()`, retried while the store is unreachable for up to `for_s` seconds, backing off
    from 50 to 250 ms; the last StoreUnavailable is raised when the time is up."""
    deadline = time.monotonic() + for_s
    delay = _RETRY_FIRST_S
    while True:
        try:
            return await call()
        except StoreUnavailable as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            delay = min(delay, left)
            logger.warning("%s failed, retrying in %.2fs: %s", what, delay, exc)
            await asyncio.sleep(delay)
            delay = min(2 * delay, _RETRY_MAX_S)


class _LockLost(Exception):
    """The turn was stopped because another worker holds its chat now."""


class ChatTurns:
    """Runs a chat's turns for a worker: admission, batches, outbox, ack, dead letters."""

    def __init__(
        self,
        *,
        queue: Queue,
        gate: ChatGate,
        outbox: Outbox,
        handler: TurnHandler,
        settings: ChatSettings | None = None,
    ) -> None:
        self._queue = queue
        self._gate = gate
        self._outbox = outbox
        self._handler = handler
        self._settings = settings or ChatSettings()

    async def handle(self, entry: Entry, consumer: str) -> int:
        """Admit `entry` and, if this worker gets the chat, run its turns; return how many."""
        chat_id = entry.message.chat_id
        token = secrets.token_hex(8)
        admission = await self._gate.admit(entry, token)
        match admission:
            case "done":
                logger.info("entry already finished entry=%s: ack", entry.id)
                await self._queue.ack([entry.id])
                return 0
            case "parked":
                return 0
            case "locked":
                pass
            case _:
                assert_never(admission)
        turns = 0
        try:
            while batch := await self._gate.next_batch(chat_id, token):
                await self._turn(batch, consumer, token)
                turns += 1
        except _LockLost:  # the chat's new holder answers these entries and acks them
            return turns
        except BaseException:
            await self._release(chat_id, token)
            raise
        return turns

    async def _turn(self, batch: tuple[Entry, ...], consumer: str, token: str) -> None:
        chat_id = batch[0].message.chat_id
        live: list[Entry] = []
        for entry in batch:
            if entry.deliveries > self._settings.max_deliveries:
                logger.error(
                    "dead-lettering entry=%s seq=%d deliveries=%d",
                    entry.id,
                    entry.seq,
                    entry.deliveries,
                )
                await self._queue.dead_letter(entry, "max_deliveries")
            else:
                live.append(entry)
        fresh = await self._unanswered(live)
        if fresh:
            keys = [entry.message.dedupe_key for entry in fresh]
            ttl_s = dedupe_ttl_s(fresh[0].message.channel)
            await self._outbox.mark_pending(keys, ttl_s)
            sent_id = await self._answer(fresh, consumer, token, batch)
            await self._mark_sent(keys, sent_id, ttl_s)
        await self._gate.complete(chat_id, batch[-1].seq)
        await self._queue.ack([entry.id for entry in live])

    async def _mark_sent(self, keys: list[str], sent_id: str | None, ttl_s: float) -> None:
        """Record the answer as sent, retrying an unreachable store (a blip, a Redis restart) for
        up to `record_retry_s`."""
        await _retrying(
            lambda: self._outbox.mark_sent(keys, sent_id, ttl_s),
            for_s=self._settings.record_retry_s,
            what="outbox mark sent",
        )

    async def _unanswered(self, entries: list[Entry]) -> tuple[Entry, ...]:
        records = await self._outbox.get_many([entry.message.dedupe_key for entry in entries])
        fresh: list[Entry] = []
        for entry, record in zip(entries, records, strict=True):
            if record is not None and record.status == "sent":
                logger.info("entry already answered entry=%s: ack", entry.id)
                continue
            if record is not None:
                logger.warning(
                    "answering again after an unfinished attempt; the earlier answer may have "
                    "gone out entry=%s deliveries=%d",
                    entry.id,
                    entry.deliveries,
                )
            fresh.append(entry)
        return tuple(fresh)

    async def _answer(
        self, fresh: tuple[Entry, ...], consumer: str, token: str, batch: tuple[Entry, ...]
    ) -> str | None:
        """Run the handler while a task keeps the lock and the chat's entries claimed.

        If the lock is lost meanwhile (another worker took the chat after this one stalled past
        the lock's TTL), the handler is cancelled before it delivers more, and `_LockLost` tells
        `handle` to leave the turn to the new holder, which answers the same messages. The
        channel checks the lock once more right before the final answer goes out
        (`bots.turn_fence`), which closes the gap between two heartbeats. An answer the handler
        finished anyway (its cancellation came too late) is recorded as sent.

        The keep-alive task is stopped with an event, not cancelled: redis-py writes with
        `asyncio.wait_for`, which on Python 3.11 can swallow a cancellation.
        """
        finished, lost = asyncio.Event(), asyncio.Event()
        work: asyncio.Task[str | None]

        async def fence() -> None:
            await self._fence(batch, token, lost, work)

        work = asyncio.create_task(self._handler(fresh), context=fenced(fence))
        beat = asyncio.create_task(self._keep_alive(batch, consumer, token, finished, lost, work))
        try:
            return await work
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if lost.is_set() and (task is None or not task.cancelling()):
                raise _LockLost from None
            raise
        finally:
            finished.set()
            await beat

    async def _keep_alive(
        self,
        batch: tuple[Entry, ...],
        consumer: str,
        token: str,
        finished: asyncio.Event,
        lost: asyncio.Event,
        work: asyncio.Task[str | None],
    ) -> None:
        chat_id = batch[0].message.chat_id
        ids = [entry.id for entry in batch]
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.heartbeat_s):
                    await finished.wait()
            if finished.is_set() or lost.is_set():
                return
            try:
                renewal = await self._gate.extend(chat_id, token, batch[0].seq)
                if not self._renewed(renewal, batch, lost, work):
                    return
                parked = () if renewal is None else renewal.parked
                await self._queue.heartbeat(consumer, list(dict.fromkeys([*ids, *parked])))
            except StoreUnavailable as exc:
                logger.warning("heartbeat failed entry=%s: %s", batch[0].id, exc)

    async def _fence(
        self,
        batch: tuple[Entry, ...],
        token: str,
        lost: asyncio.Event,
        work: asyncio.Task[str | None],
    ) -> None:
        """Right before the final answer: renew the lock, retrying an unreachable store for up
        to `record_retry_s` (then the answer goes out unconfirmed, logged); stop the turn if
        another worker holds the chat."""
        try:
            renewal = await _retrying(
                lambda: self._gate.extend(batch[0].message.chat_id, token, batch[0].seq),
                for_s=self._settings.record_retry_s,
                what="chat lock check",
            )
        except StoreUnavailable as exc:
            logger.warning(
                "chat lock not confirmed before the answer entry=%s: sending it: %s",
                batch[0].id,
                exc,
            )
            return
        if not self._renewed(renewal, batch, lost, work):
            raise asyncio.CancelledError

    def _renewed(
        self,
        renewal: Renewal | None,
        batch: tuple[Entry, ...],
        lost: asyncio.Event,
        work: asyncio.Task[str | None],
    ) -> bool:
        """Log what a renewal found; on a lost lock, cancel the turn and return False."""
        if renewal is not None:
            if renewal.retaken:
                logger.warning(
                    "chat lock expired while answering entry=%s: nobody had taken it, taken again",
                    batch[0].id,
                )
            return True
        if not lost.is_set():
            logger.warning(
                "chat lock lost while answering entry=%s deliveries=%d: turn stopped, "
                "left to the lock's new holder",
                batch[0].id,
                batch[0].deliveries,
            )
            lost.set()
            work.cancel()
        return False

    async def _release(self, chat_id: str, token: str) -> None:
        try:
            await self._gate.release(chat_id, token)
        except StoreUnavailable as exc:  # the lock expires on its own
            logger.warning("chat lock release failed: %s", exc)
