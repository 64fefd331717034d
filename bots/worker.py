"""The worker loop: reads and claims queue entries and hands each to `ChatTurns`, a bounded
number at once, until asked to stop; then finishes in-flight turns or leaves them queued.

New entries are read only for free slots, so a busy worker leaves them to the others. Every
`claim_interval_s` the worker also takes over entries whose worker died; those wait in a small
backlog and go first. An unreachable queue is retried with backoff. Each entry runs in its own
task, which is the failure boundary: an error is logged and the entry stays pending, to be
redelivered (and dead-lettered after too many deliveries). Stopping is graceful: no more reads,
in-flight turns may finish for `shutdown_grace_s`, then they are cancelled; their entries stay
pending and another worker claims them after the queue's `min_idle_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from bots.errors import StoreUnavailable
from bots.ids import hash_id
from bots.metrics import Metrics
from bots.queue import DeadEntry, Entry, Queue, QueueStats
from bots.types import InboundMessage

logger = logging.getLogger(__name__)

MAX_BACKOFF_S = 5.0


class EntryHandler(Protocol):
    """Answers one entry's chat; `bots.chat_state.ChatTurns` is one."""

    async def handle(self, entry: Entry, consumer: str) -> int: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerOptions:
    """Who the worker is in the consumer group, and how much it does at once."""

    consumer: str
    concurrency: int = 16
    claim_interval_s: float = 5.0
    shutdown_grace_s: float = 20.0
    id_key: bytes = b""
    """Key of the HMAC that hides chat ids in logs."""


class Worker:
    """One process's consumer of the queue; `run` until `stop`."""

    def __init__(
        self,
        *,
        queue: Queue,
        handler: EntryHandler,
        options: WorkerOptions,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._queue = queue
        self._handler = handler
        self._options = options
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self._backlog: deque[Entry] = deque()
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._reading: asyncio.Task[tuple[Entry, ...]] | None = None
        self.running = False

    @property
    def in_flight(self) -> int:
        """Entries being answered right now."""
        return len(self._tasks)

    def stop(self) -> None:
        """Ask `run` to stop reading and wind down (it returns once in-flight work is done).

        A read waiting for new entries is cancelled; anything it had already taken stays
        pending for another worker to claim.
        """
        self._stopping.set()
        self._wake.set()
        if self._reading is not None:
            self._reading.cancel()

    async def run(self) -> None:
        """Consume until `stop`; cancelled, it cancels its in-flight turns at once."""
        self.running = True
        logger.info(
            "worker started consumer=%s concurrency=%d",
            self._options.consumer,
            self._options.concurrency,
        )
        try:
            await self._loop()
        except asyncio.CancelledError:
            await self._cancel_all()
            raise
        finally:
            self.running = False
        await self._drain()

    async def _loop(self) -> None:
        next_claim = self._clock()
        failures = 0
        while not self._stopping.is_set():
            free = self._options.concurrency - len(self._tasks)
            if free <= 0:
                await self._nap(None)
                continue
            try:
                if self._clock() >= next_claim:
                    self._backlog.extend(await self._queue.claim(self._options.consumer))
                    next_claim = self._clock() + self._options.claim_interval_s
                if not self._backlog:
                    self._backlog.extend(await self._read(free))
                failures = 0
            except StoreUnavailable as exc:
                failures += 1
                log = logger.warning if failures == 1 or failures % 20 == 0 else logger.debug
                log("queue unavailable (try %d), retrying: %s", failures, exc)
                await self._nap(min(0.1 * 2**failures, MAX_BACKOFF_S))
            while self._backlog and len(self._tasks) < self._options.concurrency:
                self._start(self._backlog.popleft())

    async def _read(self, count: int) -> tuple[Entry, ...]:
        """Read new entries; () if `stop` cancelled the read."""
        self._reading = asyncio.create_task(self._queue.read(self._options.consumer, count=count))
        try:
            return await self._reading
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            return ()
        finally:
            self._reading = None

    async def _nap(self, seconds: float | None) -> None:
        """Sleep until a slot frees, `stop` is called, or `seconds` pass."""
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    def _start(self, entry: Entry) -> None:
        task = asyncio.create_task(self._handle(entry), name=f"entry-{entry.id}")
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._wake.set()

    async def _handle(self, entry: Entry) -> None:
        """One entry's task: its failures end here and leave it pending for redelivery."""
        chat = hash_id(self._options.id_key, entry.message.chat_id)
        try:
            await self._handler.handle(entry, self._options.consumer)
        except StoreUnavailable as exc:
            logger.warning(
                "store unavailable, entry left for redelivery chat=%s entry=%s: %s",
                chat,
                entry.id,
                exc,
            )
        except Exception as exc:  # task boundary: the pipeline has logged and apologised
            logger.warning(
                "turn failed, entry left for redelivery chat=%s entry=%s deliveries=%d: %s",
                chat,
                entry.id,
                entry.deliveries,
                type(exc).__name__,
            )

    async def _drain(self) -> None:
        """Let in-flight turns finish for the grace period, then cancel what still runs."""
        if not self._tasks:
            logger.info("worker stopped consumer=%s", self._options.consumer)
            return
        grace = self._options.shutdown_grace_s
        logger.info("worker stopping: finishing %d turns within %.0f s", len(self._tasks), grace)
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
        if pending:
            logger.warning(
                "worker stopped with %d turns unfinished: left queued for redelivery", len(pending)
            )
        await self._cancel_all()

    async def _cancel_all(self) -> None:
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)


class DeadLetterAlarm:
    """A `Queue` that tells `alarm` about every entry it moves to the dead-letter list (so the
    feedback log gets a dead-letter event) and counts it in `metrics` (`tierbot_dead_letters`);
    otherwise it is the queue it wraps."""

    def __init__(
        self,
        queue: Queue,
        alarm: Callable[[Entry, str], None],
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self._queue = queue
        self._alarm = alarm
        self._metrics = metrics

    @property
    def dropped_pending(self) -> int:
        """As the wrapped queue's."""
        return self._queue.dropped_pending

    async def enqueue(self, message: InboundMessage, dedupe_ttl_s: float) -> bool:
        """As the wrapped queue's."""
        return await self._queue.enqueue(message, dedupe_ttl_s)

    async def read(self, consumer: str, *, count: int = 10) -> tuple[Entry, ...]:
        """As the wrapped queue's."""
        return await self._queue.read(consumer, count=count)

    async def claim(self, consumer: str) -> tuple[Entry, ...]:
        """As the wrapped queue's."""
        return await self._queue.claim(consumer)

    async def heartbeat(self, consumer: str, entry_ids: Sequence[str]) -> None:
        """As the wrapped queue's."""
        await self._queue.heartbeat(consumer, entry_ids)

    async def ack(self, entry_ids: Sequence[str]) -> None:
        """As the wrapped queue's."""
        await self._queue.ack(entry_ids)

    async def dead_letter(self, entry: Entry, reason: str) -> None:
        """Dead-letter the entry; once the queue has done it, raise the alarm and count it."""
        await self._queue.dead_letter(entry, reason)
        self._alarm(entry, reason)
        if self._metrics is not None:
            self._metrics.dead_lettered()

    async def list_dead(self, *, count: int = 100) -> tuple[DeadEntry, ...]:
        """As the wrapped queue's."""
        return await self._queue.list_dead(count=count)

    async def replay(self, dead_id: str) -> str:
        """As the wrapped queue's."""
        return await self._queue.replay(dead_id)

    async def discard(self, dead_id: str) -> bool:
        """As the wrapped queue's."""
        return await self._queue.discard(dead_id)

    async def stats(self) -> QueueStats:
        """As the wrapped queue's."""
        return await self._queue.stats()
