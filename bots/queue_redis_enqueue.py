"""The Redis queue's enqueue: concurrent messages share one Lua script call (a group commit).

While one script call is on the wire, new messages wait; they then go together in the next call,
in arrival order, up to `MAX_BATCH` per call. For each message the script does what a lone
enqueue would: dedupe check, the chat's next sequence number, `XADD`, and the dedupe key with its
TTL. Each caller gets its own answer, once its message is in the stream (or refused as a
duplicate), or its own `QueueUnavailable`: when the call fails, when the script could not store
that message, or when its own timer fires, `enqueue_timeout_s` after its start (waiting included;
a slow call makes no caller give up sooner).
A caller answered `QueueUnavailable` may still find its message queued (its timer fired after
the call left); the platform's retry is then refused as a duplicate: nothing lost or doubled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import NamedTuple

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from redis.typing import EncodableT, KeyT

from bots.errors import QueueUnavailable
from bots.types import InboundMessage

MAX_BATCH = 100
"""At most this many messages go to Redis in one script call."""

# KEYS: stream, then each message's dedupe and chat keys. ARGV: chat ttl s, then each message's
# dedupe ttl ms, chat id and json. Returns {flags, errors...}: a flag per message, in order,
# q (queued), d (duplicate) or e (failed: its error is the next one; the others still go in).
_ENQUEUE = """
local flags, errors = {}, {}
for i = 1, (#KEYS - 1) / 2 do
  local dedupe, chat, a = KEYS[2 * i], KEYS[2 * i + 1], 3 * i - 1
  flags[i] = 'd'
  if redis.call('EXISTS', dedupe) == 0 then
    local r = redis.pcall('HINCRBY', chat, 'next', 1)
    if type(r) == 'number' then
      redis.call('EXPIRE', chat, ARGV[1])
      r = redis.pcall('XADD', KEYS[1], '*', 'chat', ARGV[a + 1], 'seq', r, 'm', ARGV[a + 2])
      if type(r) == 'table' then redis.call('HINCRBY', chat, 'next', -1) end  -- no gap
    end
    if type(r) == 'table' then
      flags[i], errors[#errors + 1] = 'e', r.err
    else
      flags[i] = 'q'
      redis.call('SET', dedupe, r, 'PX', ARGV[a])
    end
  end
end
return {table.concat(flags), unpack(errors)}
"""


def chat_key(prefix: str, chat_id: str) -> str:
    """The hash holding a chat's sequence counter."""
    return f"{prefix}chat:{chat_id}"


class _Waiting(NamedTuple):
    """An enqueue waiting for the script call that takes its message."""

    message: InboundMessage
    ttl_ms: int
    deadline: float
    """On the loop's clock: the caller's timer answers `QueueUnavailable` then, if nothing did."""
    future: asyncio.Future[bool]


class BatchedEnqueue:
    """Enqueue into the stream under `prefix`; one flushing task at a time, while there is work."""

    def __init__(self, redis: Redis, *, prefix: str, timeout_s: float, chat_ttl_s: int) -> None:
        self._script = redis.register_script(_ENQUEUE)
        self._prefix = prefix
        self._stream = f"{prefix}stream"
        self._timeout_s = timeout_s
        self._chat_ttl_s = chat_ttl_s
        self._waiting: list[_Waiting] = []
        self._flusher: asyncio.Task[None] | None = None

    async def __call__(self, message: InboundMessage, ttl_ms: int) -> bool:
        """Queue `message` unless its `dedupe_key` is remembered (then False)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        deadline = loop.time() + self._timeout_s
        timer = loop.call_at(deadline, self._expire, future)
        self._waiting.append(_Waiting(message, ttl_ms, deadline, future))
        if self._flusher is None:
            self._flusher = loop.create_task(self._flush_waiting(), name="queue-enqueue")
        try:
            return await future
        finally:
            timer.cancel()

    async def _flush_waiting(self) -> None:
        """Send the waiting messages, a batch per script call, until none are left."""
        batch: list[_Waiting] = []
        try:
            while self._waiting:
                batch = self._waiting[:MAX_BATCH]
                del self._waiting[:MAX_BATCH]
                await self._flush([w for w in batch if not w.future.done()])
        finally:  # only with waiters left if this task failed or was cancelled
            self._flusher = None
            leftover, self._waiting = batch + self._waiting, []
            stopped = QueueUnavailable(f"queue enqueue stream={self._stream} stopped")
            self._fail([w.future for w in leftover], stopped)

    async def _flush(self, batch: list[_Waiting]) -> None:
        """One script call for `batch`, given until the deadline of its last waiter."""
        if not batch:  # every caller timed out or was cancelled meanwhile
            return
        keys: list[KeyT] = [self._stream]
        args: list[EncodableT] = [self._chat_ttl_s]
        for message, ttl_ms, _, _ in batch:
            keys += (
                f"{self._prefix}dedupe:{message.dedupe_key}",
                chat_key(self._prefix, message.chat_id),
            )
            args += (ttl_ms, message.chat_id, message.to_json())
        try:
            async with asyncio.timeout_at(batch[-1].deadline):
                flags, *errors = await self._script(keys, args)
        except (RedisError, OSError) as exc:  # OSError covers TimeoutError and refused sockets
            self._fail([w.future for w in batch], exc)
            return
        problems = iter(errors)
        for waiting, flag in zip(batch, _text(flags), strict=True):
            if flag == "e":
                self._fail([waiting.future], ResponseError(_text(next(problems))))
            elif not waiting.future.done():
                waiting.future.set_result(flag == "q")

    def _expire(self, future: asyncio.Future[bool]) -> None:
        self._fail([future], TimeoutError())

    def _fail(self, futures: Sequence[asyncio.Future[bool]], exc: Exception) -> None:
        """Answer each caller still waiting with its own `QueueUnavailable`."""
        for future in futures:
            if future.done():
                continue
            if isinstance(exc, QueueUnavailable):
                error = QueueUnavailable(str(exc))
            else:
                what = f"queue enqueue stream={self._stream}"
                error = QueueUnavailable(f"{what} failed: {type(exc).__name__}: {exc}")
                error.__cause__ = exc
            future.set_exception(error)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
