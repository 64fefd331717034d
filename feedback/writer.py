"""The batched background writer: `record_*` append to a bounded buffer, a task writes batches.

Recording never waits for the database: `record_turn` and `record_event` append to an
in-memory deque (O(1), no I/O). One background task writes the head of the buffer in batches
of `feedback_batch_size`, as soon as a full batch is waiting or every
`feedback_flush_interval_s`. A batch stays in the buffer until it is committed: while the
database is down the same batch is retried with exponential backoff, so nothing is lost as
long as the buffer has room. Writes are idempotent (primary keys, insert-or-skip), so a batch
whose commit succeeded but whose reply was lost is safe to retry.

When the buffer is full the *newest* records are dropped: the incoming record is refused and
counted in `dropped`, and an ERROR is logged at the first drop and again with the total once
the database catches up. Dropping the newest keeps the batch under retry intact and keeps the
log a gap-free prefix of what happened, with one gap at the end of the outage.

A batch the database refuses for its data (a constraint or a bad value) is written record by
record; the records that still fail are dropped and counted, so one bad record cannot block
the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from itertools import islice

from feedback.errors import FeedbackError, StoreError
from feedback.settings import FeedbackSettings
from feedback.store import FeedbackStore, Forgotten
from feedback.types import EventRecord, TurnRecord

logger = logging.getLogger(__name__)

Record = TurnRecord | EventRecord

_FIRST_BACKOFF_S = 0.05


class FeedbackLog:
    """Records turns and events without slowing the answer: the log `bots` hands every turn to."""

    def __init__(self, store: FeedbackStore, settings: FeedbackSettings) -> None:
        self._store = store
        self._batch = settings.feedback_batch_size
        self._interval = settings.feedback_flush_interval_s
        self._limit = settings.feedback_buffer_limit
        self._retry_max = settings.feedback_retry_max_s
        self._write_timeout = settings.feedback_write_timeout_s
        self._shutdown_timeout = settings.feedback_shutdown_timeout_s
        self._purge_interval = settings.feedback_purge_interval_s
        self._query_timeout = settings.feedback_query_timeout_s
        self._buffer: deque[Record] = deque()
        self._wake = asyncio.Event()
        self._appended = 0
        self._done = 0
        self._dropped = 0
        self._dropped_in_outage = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    @property
    def dropped(self) -> int:
        """Records lost so far: refused while the buffer was full, or refused by the database."""
        return self._dropped

    @property
    def pending(self) -> int:
        """Records waiting in the buffer (including a batch being written)."""
        return len(self._buffer)

    def start(self) -> None:
        """Start the background writer on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="feedback-writer")

    def record_turn(self, turn: TurnRecord) -> None:
        """Queue a turn for writing; never blocks, never raises."""
        self._append(turn)

    def record_event(self, event: EventRecord) -> None:
        """Queue an event for writing; never blocks, never raises."""
        self._append(event)

    def _append(self, record: Record) -> None:
        if len(self._buffer) >= self._limit or self._closing:
            self._drop_newest()
            return
        self._buffer.append(record)
        self._appended += 1
        if len(self._buffer) >= self._batch:
            self._wake.set()

    def _drop_newest(self) -> None:
        self._dropped += 1
        self._dropped_in_outage += 1
        if self._dropped_in_outage == 1:
            logger.error(
                "feedback buffer full (limit=%d) or closed: dropping new records until the "
                "database catches up",
                self._limit,
            )

    async def flush(self) -> None:
        """Wait until every record queued before this call is written (or dropped).

        Raises FeedbackError when records are waiting but the writer is not running.
        """
        target = self._appended
        if self._done >= target:
            return
        if self._task is None and not self._closing:
            raise FeedbackError("the feedback writer is not running: call start() first")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, waiter))
        self._wake.set()
        await waiter

    async def forget(self, user_raw_id: str) -> Forgotten:
        """Write what is buffered, then delete the user's turns and events (see the store).

        Raises StoreError if that takes longer than `feedback_query_timeout_s`.
        """
        try:
            async with asyncio.timeout(self._query_timeout):
                await self.flush()
                return await self._store.forget(user_raw_id)
        except TimeoutError:
            limit = f"TIERBOT_FEEDBACK_QUERY_TIMEOUT_S={self._query_timeout:g} s"
            raise StoreError(f"forget took longer than {limit}") from None

    async def aclose(self) -> None:
        """Stop accepting records, write what is buffered, and stop the writer.

        Waits at most `feedback_shutdown_timeout_s`; records still unwritten then (or buffered
        by a writer that never started) are counted as dropped and logged at ERROR.
        """
        self._closing = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                async with asyncio.timeout(self._shutdown_timeout):
                    await asyncio.shield(task)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        lost = len(self._buffer)
        if lost:
            self._dropped += lost
            self._done += lost
            self._buffer.clear()
            logger.error(
                "feedback writer stopped with records=%d unwritten: the database is down or "
                "slower than TIERBOT_FEEDBACK_SHUTDOWN_TIMEOUT_S allows",
                lost,
            )
        self._release_waiters(force=True)

    async def __aenter__(self) -> FeedbackLog:
        self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_purge = loop.time()
        while True:
            if loop.time() >= next_purge:
                await self._purge()
                next_purge = loop.time() + self._purge_interval
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()
            while self._buffer:
                await self._write_head()
            if self._closing:
                return

    async def _write_head(self) -> None:
        batch = list(islice(self._buffer, self._batch))
        refused = await self._write_with_retry(batch)
        written = len(batch) if refused is None else await self._write_singly(batch)
        for _ in batch:
            self._buffer.popleft()
        self._done += len(batch)
        self._dropped += len(batch) - written
        if self._dropped_in_outage:
            logger.error(
                "feedback dropped records=%d while the buffer was full; writing again",
                self._dropped_in_outage,
            )
            self._dropped_in_outage = 0
        self._release_waiters()

    async def _write_singly(self, batch: list[Record]) -> int:
        written = 0
        for record in batch:
            refused = await self._write_with_retry([record])
            if refused is None:
                written += 1
            else:
                logger.error(
                    "feedback record refused by the database, dropped: %s: %s",
                    _ident(record),
                    refused,
                )
        return written

    async def _write_with_retry(self, batch: list[Record]) -> StoreError | None:
        """Write the batch, retrying while failures are transient; the refusal if its data is
        refused, None once it is written."""
        backoff = _FIRST_BACKOFF_S
        failures = 0
        while True:
            try:
                async with asyncio.timeout(self._write_timeout):
                    await self._store.write(batch)
            except StoreError as exc:
                if not exc.transient:
                    return exc
                failures += 1
                _log_retry(failures, len(batch), exc)
            except Exception as exc:  # task boundary: an unknown failure is retried, not fatal
                failures += 1
                _log_retry(failures, len(batch), exc)
            else:
                if failures:
                    logger.warning("feedback database back after failures=%d", failures)
                return None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._retry_max)

    async def _purge(self) -> None:
        try:
            async with asyncio.timeout(self._write_timeout):
                await self._store.purge_texts()
        except (StoreError, TimeoutError) as exc:
            logger.warning("feedback text purge failed, will retry: %s", exc)

    def _release_waiters(self, *, force: bool = False) -> None:
        keep: list[tuple[int, asyncio.Future[None]]] = []
        for target, waiter in self._waiters:
            if force or self._done >= target:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                keep.append((target, waiter))
        self._waiters = keep


def _log_retry(failures: int, size: int, exc: BaseException) -> None:
    log = logger.warning if failures == 1 or failures % 20 == 0 else logger.debug
    log("feedback write failed (try %d, batch=%d), retrying: %s", failures, size, exc)


def _ident(record: Record) -> str:
    if isinstance(record, TurnRecord):
        return f"turn={record.turn_id}"
    return f"event={record.event_id} kind={record.kind}"
