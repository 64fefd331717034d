"""When to send to a chat: per-chat pacing and 429 pauses, typing heartbeats, and the paced
updates of a streaming answer with stop checks.

All of it is in-process: each worker process paces the chats it serves. A chat's answers are
streamed by one worker at a time in practice; two processes answering one chat at once could
together exceed the pace, and a 429 then pauses each of them as the platform says.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Self, assert_never

from routing.execution_types import Delta, ExecEvent, Outcome, Restart

logger = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclass(slots=True)
class _Chat:
    sent_at: float = -math.inf
    paused_until: float = -math.inf


class SendLimits:
    """Remembers, per chat, when we last sent and until when the platform asked us to wait."""

    def __init__(self, *, clock: Clock = time.monotonic, max_chats: int = 10_000) -> None:
        if max_chats < 1:
            raise ValueError(f"max_chats must be positive, got {max_chats}")
        self._clock = clock
        self._max_chats = max_chats
        self._chats: OrderedDict[str, _Chat] = OrderedDict()

    def due_in(self, chat_id: str, spacing_s: float = 0.0) -> float:
        """Seconds until the chat may be sent to: `spacing_s` after our last send completed,
        and not before a pause ends; 0.0 when it may be sent to now."""
        chat = self._chats.get(chat_id)
        if chat is None:
            return 0.0
        return max(0.0, chat.sent_at + spacing_s - self._clock(), self.paused_for(chat_id))

    def paused_for(self, chat_id: str) -> float:
        """Seconds left of the chat's pause (0.0 when not paused)."""
        chat = self._chats.get(chat_id)
        return 0.0 if chat is None else max(0.0, chat.paused_until - self._clock())

    def sent(self, chat_id: str) -> None:
        """A call to the chat has just completed (successfully or not)."""
        self._entry(chat_id).sent_at = self._clock()

    def pause(self, chat_id: str, seconds: float) -> None:
        """The platform said to wait `seconds` (429 `retry_after`) before sending to the chat."""
        chat = self._entry(chat_id)
        chat.paused_until = max(chat.paused_until, self._clock() + max(0.0, seconds))

    async def wait(self, chat_id: str, spacing_s: float = 0.0) -> None:
        """Sleep until the chat may be sent to (see `due_in`)."""
        delay = self.due_in(chat_id, spacing_s)
        while delay > 0:  # a pause may have been extended meanwhile
            await asyncio.sleep(delay)
            delay = self.due_in(chat_id, spacing_s)

    def _entry(self, chat_id: str) -> _Chat:
        chat = self._chats.pop(chat_id, None) or _Chat()
        self._chats[chat_id] = chat
        while len(self._chats) > self._max_chats:
            self._chats.popitem(last=False)
        return chat


Beat = Callable[[], Awaitable[None]]


class Heartbeats:
    """Per-chat repeating actions (typing indicators): each runs every `every_s` until stopped,
    replaced by a new one for the same chat, or `for_s` has passed; each task is owned here."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, chat_id: str, beat: Beat, *, every_s: float, for_s: float) -> None:
        """Run `beat` every `every_s` seconds (not now: the caller has just done it)."""
        old = self._tasks.pop(chat_id, None)
        if old is not None:
            old.cancel()
        task = asyncio.create_task(_repeat(beat, every_s, for_s))
        self._tasks[chat_id] = task
        task.add_done_callback(lambda done: self._forget(chat_id, done))

    def running(self, chat_id: str) -> bool:
        """A heartbeat is running for the chat."""
        return chat_id in self._tasks

    async def stop(self, chat_id: str) -> None:
        """Stop the chat's heartbeat, if any, and wait until it has ended."""
        task = self._tasks.pop(chat_id, None)
        if task is not None:
            task.cancel()
            await asyncio.wait({task})

    async def aclose(self) -> None:
        """Stop every heartbeat (at shutdown)."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    def _forget(self, chat_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(chat_id) is task:
            del self._tasks[chat_id]


async def _repeat(beat: Beat, every_s: float, for_s: float) -> None:
    """A task boundary: a failing beat is logged and the heartbeat ends."""
    try:
        async with asyncio.timeout(for_s):
            while True:
                await asyncio.sleep(every_s)
                await beat()
    except TimeoutError:
        return
    except Exception:
        logger.exception("heartbeat failed; it stops")


class AnswerFeed:
    """The answer as the executor streams it, read by a task of its own while the platform
    shows it: the text so far (a `Restart` empties it), a version per change, the outcome.

    `async with` starts the reader; leaving cancels it if it still runs and closes the events,
    which cancels generation (a stopped answer)."""

    def __init__(self, events: AsyncIterator[ExecEvent]) -> None:
        self.text = ""
        self.version = 0
        self.outcome: Outcome | None = None
        self.done = False
        self._events = events
        self._changed = asyncio.Event()
        self._ended = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        reader = self._reader
        if reader is not None and not reader.done():
            reader.cancel()
            await asyncio.wait({reader})
        elif reader is not None and not reader.cancelled():
            reader.exception()  # mark it retrieved: `finished` raised it, or another error won
        if isinstance(self._events, AsyncGenerator):
            await self._events.aclose()

    async def finished(self) -> None:
        """Wait until the events end; raise what the executor raised, if anything."""
        if self._reader is not None:
            await self._reader

    async def changed(self, *, since: int, within_s: float) -> None:
        """Return once the text differs from version `since`, the feed ended, or `within_s`
        seconds have passed."""
        if self.version == since and not self.done:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within_s):
                    await self._changed.wait()

    async def ended(self, *, within_s: float) -> None:
        """Sleep `within_s` seconds, or less if the feed ends meanwhile."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within_s):
                await self._ended.wait()

    async def _read(self) -> None:
        try:
            async for event in self._events:
                match event:
                    case Delta():
                        self.text += event.text
                    case Restart():
                        self.text = ""
                    case Outcome():
                        self.outcome = event
                        continue
                    case _:
                        assert_never(event)
                self.version += 1
                self._changed.set()
        finally:
            self.done = True
            self._changed.set()
            self._ended.set()


async def show_paced(
    feed: AnswerFeed,
    show: Callable[[str], Awaitable[None]],
    *,
    limits: SendLimits,
    chat_id: str,
    spacing_s: float,
    stopped: Callable[[], Awaitable[bool]],
) -> bool:
    """Call `show` with the feed's text whenever it changed, no sooner than `spacing_s` after
    the chat's last send, until the feed ends (False) or `stopped()` says so (True). The stop
    is checked before each update and at least every `spacing_s` while the text stands still;
    the first call comes at once, with the text still empty."""
    shown = -1
    while True:
        await feed.changed(since=shown, within_s=spacing_s)
        if feed.done:
            return False
        if await stopped():
            return True
        if feed.version == shown:
            continue
        if (delay := limits.due_in(chat_id, spacing_s)) > 0:
            await feed.ended(within_s=delay)
            continue
        shown = feed.version
        await show(feed.text)
