"""The chat gate and outbox in Redis, shared by every worker process; each gate step is one script.

The gate lives beside the queue under the same prefix: the chat hash `chat:<id>` holds `next`
(written by the queue's enqueue script), `done` and the parked entries `p:<seq>`; the lock is
`chat:<id>:lock`. `complete` never moves `done` past `next`, so a worker finishing a turn after
Redis lost its data (a restart without persistence) cannot mark newer messages as finished.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager

from redis.asyncio import Redis

from bots.chat_state import Admission, ChatSettings, OutboxRecord, OutboxStatus, Renewal
from bots.constants import PIPELINE_PREFIX
from bots.errors import store_call
from bots.queue import Entry
from bots.types import InboundMessage

# KEYS: chat, lock. ARGV: seq, record, token, lock ms, chat ttl s. Returns 0 done, 1 locked,
# 2 parked.
_ADMIT = """
if tonumber(ARGV[1]) <= tonumber(redis.call('HGET', KEYS[1], 'done') or 0) then return 0 end
redis.call('HSET', KEYS[1], 'p:' .. ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[5])
if redis.call('SET', KEYS[2], ARGV[3], 'NX', 'PX', ARGV[4]) then return 1 end
return 2
"""

# KEYS: chat, lock. ARGV: token, lock ms, max batch. Returns the run of parked records.
_NEXT_BATCH = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return {} end
local done = tonumber(redis.call('HGET', KEYS[1], 'done') or 0)
local batch = {}
for i = 1, tonumber(ARGV[3]) do
  local record = redis.call('HGET', KEYS[1], 'p:' .. (done + i))
  if not record then break end
  batch[i] = record
end
if #batch == 0 then redis.call('DEL', KEYS[2]) else redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
return batch
"""

# KEYS: chat. ARGV: last seq, chat ttl s.
_COMPLETE = """
local last = tonumber(ARGV[1])
local done = tonumber(redis.call('HGET', KEYS[1], 'done') or 0)
if last <= done or last > tonumber(redis.call('HGET', KEYS[1], 'next') or 0) then return 0 end
for seq = done + 1, last do redis.call('HDEL', KEYS[1], 'p:' .. seq) end
redis.call('HSET', KEYS[1], 'done', last)
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS: chat, lock. ARGV: token, lock ms, first seq of the holder's batch. Returns nil if the
# lock is lost (another holder, or the batch finished), else {retaken 0/1, parked ids...}.
_EXTEND = """
local holder = redis.call('GET', KEYS[2])
local out = {0}
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
else
  if holder then return false end
  if tonumber(ARGV[3]) <= tonumber(redis.call('HGET', KEYS[1], 'done') or 0) then return false end
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
  out[1] = 1
end
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 2) == 'p:' then out[#out + 1] = cjson.decode(fields[i + 1]).id end
end
return out
"""

# KEYS: lock. ARGV: token.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_ADMISSIONS: tuple[Admission, ...] = ("done", "locked", "parked")


class RedisChatGate:
    """A `ChatGate` in Redis under `prefix` (the queue's); the client belongs to the caller."""

    def __init__(
        self, redis: Redis, settings: ChatSettings | None = None, *, prefix: str = PIPELINE_PREFIX
    ) -> None:
        self._settings = settings or ChatSettings()
        self._prefix = prefix
        self._admit = redis.register_script(_ADMIT)
        self._next_batch = redis.register_script(_NEXT_BATCH)
        self._complete = redis.register_script(_COMPLETE)
        self._extend = redis.register_script(_EXTEND)
        self._release = redis.register_script(_RELEASE)

    async def admit(self, entry: Entry, token: str) -> Admission:
        """Park `entry`; take the chat's lock for `token` if it is free."""
        record = json.dumps(
            {"id": entry.id, "seq": entry.seq, "d": entry.deliveries, "m": entry.message.to_json()}
        )
        settings = self._settings
        args = (entry.seq, record, token, _ms(settings.lock_ttl_s), settings.chat_ttl_s)
        async with self._call("admit"):
            reply = await self._admit(self._keys(entry.message.chat_id), args)
        return _ADMISSIONS[int(reply)]

    async def next_batch(self, chat_id: str, token: str) -> tuple[Entry, ...]:
        """The parked run after the last finished entry; releases the lock when it is empty."""
        args = (token, _ms(self._settings.lock_ttl_s), self._settings.max_batch)
        async with self._call("next_batch"):
            records = await self._next_batch(self._keys(chat_id), args)
        return tuple(_entry(record) for record in records)

    async def complete(self, chat_id: str, last_seq: int) -> None:
        """Mark entries up to `last_seq` finished."""
        async with self._call("complete"):
            await self._complete(self._keys(chat_id)[:1], (last_seq, self._settings.chat_ttl_s))

    async def extend(self, chat_id: str, token: str, first_seq: int) -> Renewal | None:
        """Renew the lock, or take it again if it expired, is free and the batch starting at
        `first_seq` is unfinished; None if the lock is lost."""
        args = (token, _ms(self._settings.lock_ttl_s), first_seq)
        async with self._call("extend"):
            reply = await self._extend(self._keys(chat_id), args)
        if reply is None:
            return None
        retaken, *ids = reply
        return Renewal(tuple(_text(i) for i in ids), retaken=bool(int(retaken)))

    async def release(self, chat_id: str, token: str) -> None:
        """Give the lock up if `token` holds it."""
        async with self._call("release"):
            await self._release(self._keys(chat_id)[1:], (token,))

    def _keys(self, chat_id: str) -> tuple[str, str]:
        chat = f"{self._prefix}chat:{chat_id}"
        return chat, f"{chat}:lock"

    def _call(self, what: str) -> AbstractAsyncContextManager[None]:
        return store_call(f"chat gate {what}", self._settings.timeout_s)


class RedisOutbox:
    """An `Outbox` in Redis: one string key per message, `outbox:<dedupe_key>`, with a TTL."""

    def __init__(
        self, redis: Redis, *, prefix: str = PIPELINE_PREFIX, timeout_s: float = 2.0
    ) -> None:
        self._redis = redis
        self._prefix = f"{prefix}outbox:"
        self._timeout_s = timeout_s

    async def get(self, dedupe_key: str) -> OutboxRecord | None:
        """The record of one message."""
        return (await self.get_many([dedupe_key]))[0]

    async def get_many(self, dedupe_keys: Sequence[str]) -> tuple[OutboxRecord | None, ...]:
        """The records of several messages (one MGET)."""
        if not dedupe_keys:
            return ()
        async with store_call("outbox get", self._timeout_s):
            values = await self._redis.mget([self._prefix + key for key in dedupe_keys])
        return tuple(None if value is None else _record(value) for value in values)

    async def mark_pending(self, dedupe_keys: Sequence[str], ttl_s: float) -> None:
        """Record pending answers; `SET NX` keeps a record that exists, sent or pending."""
        await self._set(dedupe_keys, "pending", None, ttl_s, only_new=True)

    async def mark_sent(
        self, dedupe_keys: Sequence[str], platform_message_id: str | None, ttl_s: float
    ) -> None:
        """Record sent answers."""
        await self._set(dedupe_keys, "sent", platform_message_id, ttl_s, only_new=False)

    async def _set(
        self,
        dedupe_keys: Sequence[str],
        status: OutboxStatus,
        platform_message_id: str | None,
        ttl_s: float,
        *,
        only_new: bool,
    ) -> None:
        value = json.dumps({"s": status, "id": platform_message_id})
        async with (
            store_call(f"outbox mark {status}", self._timeout_s),
            self._redis.pipeline(transaction=True) as pipe,
        ):
            for key in dedupe_keys:
                pipe.set(self._prefix + key, value, px=_ms(ttl_s), nx=only_new)
            await pipe.execute()


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entry(record: bytes | str) -> Entry:
    data = json.loads(record)
    return Entry(
        id=data["id"],
        seq=data["seq"],
        deliveries=data["d"],
        message=InboundMessage.from_json(data["m"]),
    )


def _record(value: bytes | str) -> OutboxRecord:
    data = json.loads(value)
    status: OutboxStatus = "sent" if data["s"] == "sent" else "pending"
    return OutboxRecord(status=status, platform_message_id=data["id"])
