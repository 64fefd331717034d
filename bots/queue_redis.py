"""The Redis Streams queue: durable, shared by every web and worker process (one consumer group).

`enqueue` is one Lua script per message: dedupe check, the chat's next sequence number, `XADD`
and the dedupe key with its TTL; concurrent enqueues share a script call
(bots/queue_redis_enqueue.py). Acknowledged entries are deleted (`XACK` + `XDEL`), so the
stream holds only unfinished work and is never trimmed: `MAXLEN` would silently drop pending
entries on Redis < 8.2. Should entries vanish anyway, `XAUTOCLAIM` reports their ids; `claim`
counts them (`dropped_pending`, fleet-wide in `stats`) and logs them at ERROR.

Every call runs inside `asyncio.timeout` (an enqueue: `enqueue_timeout_s` from its own start,
waiting for its script call included) and turns Redis and socket errors into `QueueUnavailable`.
A consumer group lost with its data (Redis restarted without persistence) is recreated on first
use. Recommended client: `Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=None)`.
These timeouts bound every call, so no socket timeout is needed; and with one set, redis-py 8
writes through `asyncio.wait_for`, which on Python 3.11 can swallow a task's cancellation
(measured: 55 of 300 cancels lost).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import ResponseError
from redis.typing import KeyT, StreamEntry, StreamIdT

from bots.constants import CONSUMER_GROUP, PIPELINE_PREFIX
from bots.errors import DeadLetterNotFound, QueueUnavailable, store_call
from bots.queue import DeadEntry, Entry, QueueSettings, QueueStats
from bots.queue_redis_enqueue import BatchedEnqueue, chat_key
from bots.types import InboundMessage

logger = logging.getLogger(__name__)

T = TypeVar("T")
# KEYS: stream, dropped. ARGV: group, consumer, min idle ms, cursor, count.
# Returns {next cursor, {{id, fields, deliveries}...}, {deleted ids}}.
_CLAIM = """
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local claimed = {}
for i, e in ipairs(r[2]) do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
  claimed[i] = {e[1], e[2], p[1][4]}
end
if #r[3] > 0 then redis.call('INCRBY', KEYS[2], #r[3]) end
return {r[1], claimed, r[3]}
"""

# KEYS: stream, dead. ARGV: group, id, seq, reason, deliveries, message json.
_DEAD_LETTER = """
redis.call('XADD', KEYS[2], '*', 'id', ARGV[2], 'seq', ARGV[3], 'reason', ARGV[4],
           'deliveries', ARGV[5], 'm', ARGV[6])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
"""

# KEYS: dead, stream, chat. ARGV: dead id, chat id, message json, chat ttl s.
_REPLAY = """
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return false end
local seq = redis.call('HINCRBY', KEYS[3], 'next', 1)
redis.call('EXPIRE', KEYS[3], ARGV[4])
return redis.call('XADD', KEYS[2], '*', 'chat', ARGV[2], 'seq', seq, 'm', ARGV[3])
"""

# KEYS: stream, dead, dropped. ARGV: group.
_STATS = """
local pending, oldest = 0, ''
local ok, summary = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1])
if ok and summary[1] > 0 then pending, oldest = summary[1], summary[2] end
local now = redis.call('TIME')
return {redis.call('XLEN', KEYS[1]), pending, oldest, redis.call('XLEN', KEYS[2]),
        tonumber(redis.call('GET', KEYS[3]) or 0), now[1] * 1000 + math.floor(now[2] / 1000)}
"""


class RedisQueue:
    """A `Queue` on a Redis Stream under `prefix`; the client belongs to the caller."""

    def __init__(
        self,
        redis: Redis,
        settings: QueueSettings | None = None,
        *,
        prefix: str = PIPELINE_PREFIX,
    ) -> None:
        self._redis = redis
        self._settings = settings or QueueSettings()
        self._prefix = prefix
        self._stream = f"{prefix}stream"
        self._dead = f"{prefix}dead"
        self._dropped_key = f"{prefix}dropped"
        self._enqueue = BatchedEnqueue(
            redis,
            prefix=prefix,
            timeout_s=self._settings.enqueue_timeout_s,
            chat_ttl_s=self._settings.chat_ttl_s,
        )
        self._claim = redis.register_script(_CLAIM)
        self._dead_letter = redis.register_script(_DEAD_LETTER)
        self._replay = redis.register_script(_REPLAY)
        self._stats = redis.register_script(_STATS)
        self._cursor = "0-0"
        self._dropped = 0

    @property
    def dropped_pending(self) -> int:
        """Pending entries this instance found deleted before their ack."""
        return self._dropped

    async def enqueue(self, message: InboundMessage, dedupe_ttl_s: float) -> bool:
        """Queue `message` unless its `dedupe_key` is still remembered; concurrent calls share
        one script call (bots/queue_redis_enqueue.py)."""
        return await self._enqueue(message, _ms(dedupe_ttl_s))

    async def read(self, consumer: str, *, count: int = 10) -> tuple[Entry, ...]:
        """Hand out up to `count` new entries, waiting up to `block_ms` for the first."""
        block_ms = self._settings.block_ms

        async def call() -> Any:
            streams: dict[KeyT, StreamIdT] = {self._stream: ">"}
            return await self._redis.xreadgroup(
                CONSUMER_GROUP, consumer, streams, count=count, block=block_ms
            )

        async with self._call("read", self._settings.timeout_s + block_ms / 1000):
            reply = await self._in_group(call)
        return tuple(
            _entry(entry_id, _fields(fields), 1)
            for _, entries in reply or ()
            for entry_id, fields in entries
        )

    async def claim(self, consumer: str) -> tuple[Entry, ...]:
        """Take over entries idle for `min_idle_s`, counting a delivery each (`XAUTOCLAIM`)."""
        settings = self._settings
        args = (
            CONSUMER_GROUP,
            consumer,
            _ms(settings.min_idle_s),
            self._cursor,
            settings.claim_count,
        )

        async def call() -> Any:
            return await self._claim((self._stream, self._dropped_key), args)

        async with self._call("claim", settings.timeout_s):
            cursor, claimed, deleted = await self._in_group(call)
        self._cursor = _text(cursor)
        if deleted:
            self._dropped += len(deleted)
            logger.error(
                "queue lost %d pending entries before their ack (trimmed or deleted) "
                "stream=%s ids=%s",
                len(deleted),
                self._stream,
                ",".join(_text(i) for i in deleted),
            )
        return tuple(
            _entry(entry_id, _pairs(flat), int(deliveries))
            for entry_id, flat, deliveries in claimed
        )

    async def heartbeat(self, consumer: str, entry_ids: Sequence[str]) -> None:
        """Re-claim the still-pending `entry_ids` for `consumer` (`XCLAIM … JUSTID`)."""
        if not entry_ids:
            return

        async def call() -> Any:
            return await self._redis.xclaim(
                self._stream, CONSUMER_GROUP, consumer, 0, list(entry_ids), justid=True
            )

        async with self._call("heartbeat", self._settings.timeout_s):
            await self._in_group(call)

    async def ack(self, entry_ids: Sequence[str]) -> None:
        """Acknowledge and delete the entries in one transaction."""
        if not entry_ids:
            return
        async with (
            self._call("ack", self._settings.timeout_s),
            self._redis.pipeline(transaction=True) as pipe,
        ):
            pipe.xack(self._stream, CONSUMER_GROUP, *entry_ids)
            pipe.xdel(self._stream, *entry_ids)
            await pipe.execute()

    async def dead_letter(self, entry: Entry, reason: str) -> None:
        """Move `entry` to the dead-letter stream, acknowledging and deleting it."""
        message = entry.message.to_json()
        args = (CONSUMER_GROUP, entry.id, entry.seq, reason, entry.deliveries, message)
        async with self._call("dead_letter", self._settings.timeout_s):
            await self._dead_letter((self._stream, self._dead), args)

    async def list_dead(self, *, count: int = 100) -> tuple[DeadEntry, ...]:
        """The oldest `count` dead-letter entries."""
        async with self._call("list_dead", self._settings.timeout_s):
            reply = await self._redis.xrange(self._dead, "-", "+", count=count)
        return _dead_entries(reply)

    async def replay(self, dead_id: str) -> str:
        """Queue a dead entry's message again under a new sequence number, bypassing dedupe."""
        async with self._call("replay", self._settings.timeout_s):
            found = _dead_entries(await self._redis.xrange(self._dead, dead_id, dead_id))
            if not found:
                raise DeadLetterNotFound(f"no dead-letter entry {dead_id}")
            message = found[0].message
            keys = (self._dead, self._stream, chat_key(self._prefix, message.chat_id))
            args = (dead_id, message.chat_id, message.to_json(), self._settings.chat_ttl_s)
            new_id = await self._replay(keys, args)
        if new_id is None:
            raise DeadLetterNotFound(f"dead-letter entry {dead_id} was replayed meanwhile")
        return _text(new_id)

    async def discard(self, dead_id: str) -> bool:
        """Delete a dead-letter entry."""
        async with self._call("discard", self._settings.timeout_s):
            deleted = await self._redis.xdel(self._dead, dead_id)
        return bool(deleted)

    async def stats(self) -> QueueStats:
        """Current gauges; the age uses the Redis server's clock, like the entry ids."""
        keys = (self._stream, self._dead, self._dropped_key)
        async with self._call("stats", self._settings.timeout_s):
            depth, pending, oldest, dead, dropped, now_ms = await self._stats(
                keys, (CONSUMER_GROUP,)
            )
        oldest_id = _text(oldest)
        age = (int(now_ms) - int(oldest_id.split("-")[0])) / 1000 if oldest_id else None
        return QueueStats(
            depth=int(depth),
            pending=int(pending),
            oldest_pending_age_s=age,
            dead=int(dead),
            dropped_pending=int(dropped),
        )

    def _call(self, what: str, timeout_s: float) -> AbstractAsyncContextManager[None]:
        return store_call(f"queue {what} stream={self._stream}", timeout_s, QueueUnavailable)

    async def _in_group(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run `call`, creating the consumer group first if Redis says it does not exist."""
        try:
            return await call()
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
        logger.info(
            "queue creating consumer group stream=%s group=%s", self._stream, CONSUMER_GROUP
        )
        try:
            await self._redis.xgroup_create(self._stream, CONSUMER_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        return await call()


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _pairs(flat: Sequence[bytes | str]) -> dict[str, str]:
    return {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}


def _fields(fields: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    return {_text(key): _text(value) for key, value in fields.items()}


def _entry(entry_id: bytes | str, values: Mapping[str, str], deliveries: int) -> Entry:
    return Entry(
        id=_text(entry_id),
        seq=int(values["seq"]),
        deliveries=deliveries,
        message=InboundMessage.from_json(values["m"]),
    )


def _dead_entries(reply: Sequence[StreamEntry] | None) -> tuple[DeadEntry, ...]:
    return tuple(
        _dead(dead_id, fields)
        for dead_id, fields in reply or ()
        if dead_id is not None and fields is not None
    )


def _dead(dead_id: bytes | str, fields: Mapping[bytes | str, bytes | str]) -> DeadEntry:
    values = _fields(fields)
    return DeadEntry(
        id=_text(dead_id),
        entry_id=values["id"],
        seq=int(values["seq"]),
        reason=values["reason"],
        deliveries=int(values["deliveries"]),
        message=InboundMessage.from_json(values["m"]),
    )
