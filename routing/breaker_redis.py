"""Circuit breakers shared by every process through Redis, with a local fallback while it is away.

Each transition is one Lua script (one EVALSHA round trip, atomic on the server), so `allow`
always reads the fleet-wide state: a trip in one process short-circuits all of them at once.
Per breaker key three Redis keys exist, all with TTLs so idle breakers disappear:

- `{prefix}{key}` (hash): `trips` and `open_until` while tripped; otherwise `consecutive`,
  `seen` (last call) and the window buckets `c:<i>` (calls) and `f:<i>` (failures);
- `{prefix}{key}:probe`: the half-open probe lease, taken only if absent or stale;
- `{prefix}{key}:cooldown`: the end of a 429 cooldown.

The key sits in braces (a Redis Cluster hash tag), so the three share a slot. Timestamps are
milliseconds of the injected clock, passed into the scripts; TTLs only collect garbage.

If Redis errors or does not answer within `timeout_s`, the breaker logs once and answers from
a fresh in-process `MemoryBreaker` (never "all open"), trying Redis again at most every
`retry_s`; the first answer from Redis ends the outage, and the local state is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from routing.breaker import BreakerConfig, BreakerState, Clock, MemoryBreaker, Permit, status_at
from routing.constants import BREAKER_PREFIX

logger = logging.getLogger(__name__)

# Sums the live window buckets of hash `key`; with `prune`, deletes the older ones.
_WINDOW = """
local function window(key, oldest, prune)
  local calls, failures = 0, 0
  local fields = redis.call('HGETALL', key)
  for i = 1, #fields, 2 do
    local kind, index = string.match(fields[i], '^([cf]):(%-?%d+)$')
    if kind and tonumber(index) < oldest then
      if prune then redis.call('HDEL', key, fields[i]) end
    elseif kind == 'c' then
      calls = calls + tonumber(fields[i + 1])
    elseif kind == 'f' then
      failures = failures + tonumber(fields[i + 1])
    end
  end
  return calls, failures
end
"""

# ARGV: now, probe lease ms. Returns {0} refused, {1} permit, {2} half-open probe permit.
_ALLOW = """
local now = tonumber(ARGV[1])
if tonumber(redis.call('GET', KEYS[3]) or 0) > now then return {0} end
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or 0)
if open_until == 0 then return {1} end
if open_until > now then return {0} end
if tonumber(redis.call('GET', KEYS[2]) or 0) > now then return {0} end
redis.call('SET', KEYS[2], now + tonumber(ARGV[2]), 'PX', ARGV[2])
return {2}
"""

# ARGV: now, failed, probe, bucket, buckets, window ms, consecutive failures, failure rate,
# min calls, open ms, max open ms. Returns {0}, {-1} closed by a probe, or {n} tripped n-th time.
_RECORD = (
    _WINDOW
    + """
local now, failed, probe = tonumber(ARGV[1]), ARGV[2] == '1', ARGV[3] == '1'
local bucket, buckets, window_ms = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local max_consecutive, rate, min_calls = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local open_ms, max_open_ms = tonumber(ARGV[10]), tonumber(ARGV[11])

local function trip(n)
  local ms = math.min(open_ms * 2 ^ (n - 1), max_open_ms)
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('HSET', KEYS[1], 'trips', n, 'open_until', now + ms)
  redis.call('PEXPIRE', KEYS[1], ms + max_open_ms)
  return {n}
end

local trips = tonumber(redis.call('HGET', KEYS[1], 'trips') or 0)
if trips > 0 then
  if not probe then return {0} end
  if failed then return trip(trips + 1) end
  redis.call('DEL', KEYS[1], KEYS[2])
  return {-1}
end
local calls, failures = window(KEYS[1], bucket - buckets + 1, true)
local state = redis.call('HMGET', KEYS[1], 'consecutive', 'seen')
local consecutive = tonumber(state[1] or 0)
if now - tonumber(state[2] or 0) >= window_ms then consecutive = 0 end
calls = calls + 1
redis.call('HINCRBY', KEYS[1], 'c:' .. ARGV[4], 1)
if failed then
  failures = failures + 1
  consecutive = consecutive + 1
  redis.call('HINCRBY', KEYS[1], 'f:' .. ARGV[4], 1)
else
  consecutive = 0
end
redis.call('HSET', KEYS[1], 'consecutive', consecutive, 'seen', now)
redis.call('PEXPIRE', KEYS[1], window_ms)
if failed and (consecutive >= max_consecutive
               or (calls >= min_calls and failures > rate * calls)) then
  return trip(1)
end
return {0}
"""
)

# ARGV: cooldown end, its TTL in ms. A shorter cooldown never cuts a longer one short.
_COOLDOWN = """
if tonumber(redis.call('GET', KEYS[3]) or 0) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])
end
return {0}
"""

# ARGV: now, oldest live bucket, window ms. Returns {trips, open_until, probe_until,
# cooldown_until, consecutive, window calls, window failures}; read-only.
_STATE = (
    _WINDOW
    + """
local now = tonumber(ARGV[1])
local calls, failures = window(KEYS[1], tonumber(ARGV[2]), false)
local h = redis.call('HMGET', KEYS[1], 'trips', 'open_until', 'consecutive', 'seen')
local consecutive = tonumber(h[3] or 0)
if now - tonumber(h[4] or 0) >= tonumber(ARGV[3]) then consecutive = 0 end
return {tonumber(h[1] or 0), tonumber(h[2] or 0), tonumber(redis.call('GET', KEYS[2]) or 0),
        tonumber(redis.call('GET', KEYS[3]) or 0), consecutive, calls, failures}
"""
)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


class RedisBreaker:
    """Breakers shared through Redis; a local `MemoryBreaker` answers while Redis does not.

    The Redis client belongs to the caller (the composition root builds and closes it).
    `clock` must be shared by all processes, hence wall time (`time.time`) by default.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        config: BreakerConfig,
        clock: Clock = time.time,
        prefix: str = BREAKER_PREFIX,
        timeout_s: float = 0.25,
        retry_s: float = 1.0,
    ) -> None:
        self._config = config
        self._clock = clock
        self._prefix = prefix
        self._timeout_s = timeout_s
        self._retry_s = retry_s
        self._allow = redis.register_script(_ALLOW)
        self._record = redis.register_script(_RECORD)
        self._cooldown = redis.register_script(_COOLDOWN)
        self._state = redis.register_script(_STATE)
        self._local = MemoryBreaker(config=config, clock=clock)
        self._degraded = False
        self._retry_at = 0.0

    async def allow(self, key: str) -> Permit | None:
        """Return a permit to call `key`, or None to skip it (open, cooldown or probe out)."""
        now = self._clock()
        reply = await self._eval(self._allow, key, now, (_ms(now), _ms(self._config.probe_lease_s)))
        if reply is None:
            return await self._local.allow(key)
        if reply[0] == 0:
            return None
        return Permit(key=key, probe=reply[0] == 2)

    async def success(self, permit: Permit) -> None:
        """Report that the permitted call succeeded."""
        await self._report(permit, failed=False)

    async def failure(self, permit: Permit) -> None:
        """Report a timeout, 5xx or broken stream; never a 400/401/403 or a 429."""
        await self._report(permit, failed=True)

    async def cooldown(self, key: str, seconds: float) -> None:
        """Skip `key` for `seconds` (429 with Retry-After) without counting it as a failure."""
        if seconds <= 0:
            return
        now = self._clock()
        args = (_ms(now + seconds), math.ceil(seconds * 1000))
        if await self._eval(self._cooldown, key, now, args) is None:
            await self._local.cooldown(key, seconds)

    async def state(self, key: str) -> BreakerState:
        """Return a snapshot of the breaker for `key`."""
        now = self._clock()
        cfg = self._config
        oldest = cfg.bucket(now) - cfg.window_buckets + 1
        reply = await self._eval(self._state, key, now, (_ms(now), oldest, _ms(cfg.window_s)))
        if reply is None:
            return await self._local.state(key)
        trips, open_until, probe_until, cooldown_until, consecutive, calls, failures = reply
        status, until = status_at(
            now,
            trips=trips,
            open_until=open_until / 1000,
            probe_until=probe_until / 1000,
            cooldown_until=cooldown_until / 1000,
        )
        return BreakerState(
            key=key,
            status=status,
            until=until,
            consecutive_failures=consecutive,
            window_calls=calls,
            window_failures=failures,
            trips=trips,
        )

    async def _report(self, permit: Permit, *, failed: bool) -> None:
        now = self._clock()
        cfg = self._config
        args = (
            _ms(now),
            int(failed),
            int(permit.probe),
            cfg.bucket(now),
            cfg.window_buckets,
            _ms(cfg.window_s),
            cfg.consecutive_failures,
            repr(cfg.failure_rate),
            cfg.min_calls,
            _ms(cfg.open_s),
            _ms(cfg.max_open_s),
        )
        reply = await self._eval(self._record, permit.key, now, args)
        if reply is None:
            await (self._local.failure(permit) if failed else self._local.success(permit))
        elif reply[0] < 0:
            logger.info("breaker closed key=%s after a successful probe", permit.key)
        elif reply[0] > 0:
            open_s = cfg.open_for(reply[0])
            logger.warning("breaker open key=%s for=%.0fs trips=%d", permit.key, open_s, reply[0])

    async def _eval(
        self, script: AsyncScript, key: str, now: float, args: Sequence[int | str]
    ) -> list[int] | None:
        """Run `script` for `key` within the timeout; None while Redis is unavailable."""
        if self._degraded and now < self._retry_at:
            return None
        base = f"{self._prefix}{{{key}}}"
        try:
            async with asyncio.timeout(self._timeout_s):
                reply = await script(keys=(base, f"{base}:probe", f"{base}:cooldown"), args=args)
        except (RedisError, OSError) as exc:  # OSError covers TimeoutError and refused sockets
            self._retry_at = now + self._retry_s
            if not self._degraded:
                self._degraded = True
                self._local = MemoryBreaker(config=self._config, clock=self._clock)
                logger.warning(
                    "breaker redis unavailable prefix=%s error=%s: %s; using a local breaker",
                    self._prefix,
                    type(exc).__name__,
                    exc,
                )
            return None
        if self._degraded:
            self._degraded = False
            logger.info(
                "breaker redis answers again prefix=%s; using the shared state", self._prefix
            )
        return [int(value) for value in reply]
