"""Per-user cost controls: a sliding-window rate limit and a daily spend budget (memory, Redis).

The rate limit keeps a log of each user's allowed messages over the last `window_s`; a message
is allowed while fewer than `messages_per_window` are in it (refused ones are not logged). In
Redis the check and the insert are one script, so any number of processes share the limit
exactly. The spend budget adds each answer's actual cost (USD) to the user's total for the
current UTC day, which expires at the day's end; `allows` is checked before answering.
"""

from __future__ import annotations

import math
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from redis.asyncio import Redis

from bots.constants import RATE_PREFIX, SPEND_PREFIX
from bots.errors import store_call

Clock = Callable[[], float]

# KEYS: log. ARGV: now ms, window ms, limit, member. Returns {allowed, remaining, retry ms}.
_HIT = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, limit - count - 1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, 0, tonumber(oldest[2]) + window - now}
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitSettings:
    """Per-user limits; the composition root fills them from the environment."""

    messages_per_window: int = 20
    window_s: float = 60.0
    daily_usd: float = 1.0
    """Each user's spend allowance per UTC day."""
    timeout_s: float = 0.5
    """Bound on each Redis call."""

    def __post_init__(self) -> None:
        if min(self.messages_per_window, self.window_s, self.timeout_s) <= 0 or self.daily_usd < 0:
            raise ValueError(
                f"limit settings out of range: messages_per_window={self.messages_per_window} "
                f"window_s={self.window_s} daily_usd={self.daily_usd} timeout_s={self.timeout_s}"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class RateDecision:
    """Whether one message may go through, and if not, when the next one may."""

    allowed: bool
    remaining: int
    """Messages still allowed in the current window after this one."""
    retry_after_s: float = 0.0


class RateLimiter(Protocol):
    """Counts a user's messages against the rate limit."""

    async def hit(self, user_id: str) -> RateDecision:
        """Count one message of `user_id` if the limit allows it."""
        ...


class SpendBudget(Protocol):
    """A user's spend for the current UTC day against `daily_usd`."""

    async def spent(self, user_id: str) -> float:
        """The user's spend so far today, in USD."""
        ...

    async def allows(self, user_id: str, estimate_usd: float = 0.0) -> bool:
        """Whether an answer costing about `estimate_usd` stays within today's budget."""
        ...

    async def add(self, user_id: str, usd: float) -> float:
        """Add an answer's actual cost; return the user's new total for today."""
        ...


class MemoryRateLimiter:
    """A `RateLimiter` for one process; `clock` gives seconds."""

    def __init__(self, settings: LimitSettings | None = None, *, clock: Clock = time.time) -> None:
        self._settings = settings or LimitSettings()
        self._clock = clock
        self._logs: dict[str, deque[float]] = {}
        self._swept_size = 0

    async def hit(self, user_id: str) -> RateDecision:
        """Count one message of `user_id` if fewer than the limit are in the window."""
        now = self._clock()
        window, limit = self._settings.window_s, self._settings.messages_per_window
        if len(self._logs) >= 2 * self._swept_size:
            self._logs = {k: v for k, v in self._logs.items() if v and v[-1] > now - window}
            self._swept_size = max(len(self._logs), 64)
        log = self._logs.setdefault(user_id, deque())
        while log and log[0] <= now - window:
            log.popleft()
        if len(log) < limit:
            log.append(now)
            return RateDecision(allowed=True, remaining=limit - len(log))
        return RateDecision(allowed=False, remaining=0, retry_after_s=log[0] + window - now)


class RedisRateLimiter:
    """A `RateLimiter` shared through Redis (a sorted set per user); the client is the caller's.

    `clock` (wall seconds) must agree across processes, as NTP-synchronised hosts do.
    """

    def __init__(
        self,
        redis: Redis,
        settings: LimitSettings | None = None,
        *,
        clock: Clock = time.time,
        prefix: str = RATE_PREFIX,
    ) -> None:
        self._settings = settings or LimitSettings()
        self._clock = clock
        self._prefix = prefix
        self._hit = redis.register_script(_HIT)

    async def hit(self, user_id: str) -> RateDecision:
        """Count one message of `user_id` if fewer than the limit are in the window."""
        settings = self._settings
        args = (
            round(self._clock() * 1000),
            round(settings.window_s * 1000),
            settings.messages_per_window,
            secrets.token_hex(8),
        )
        async with store_call("rate limit", settings.timeout_s):
            allowed, remaining, retry_ms = await self._hit((self._prefix + user_id,), args)
        return RateDecision(
            allowed=bool(allowed), remaining=int(remaining), retry_after_s=int(retry_ms) / 1000
        )


class MemorySpendBudget:
    """A `SpendBudget` for one process; `clock` gives wall seconds (days are UTC)."""

    def __init__(self, settings: LimitSettings | None = None, *, clock: Clock = time.time) -> None:
        self._settings = settings or LimitSettings()
        self._clock = clock
        self._day = ""
        self._spent: dict[str, float] = {}

    async def spent(self, user_id: str) -> float:
        """The user's spend so far today."""
        return self._today().get(user_id, 0.0)

    async def allows(self, user_id: str, estimate_usd: float = 0.0) -> bool:
        """Whether spend plus `estimate_usd` stays within `daily_usd`."""
        return await self.spent(user_id) + estimate_usd <= self._settings.daily_usd

    async def add(self, user_id: str, usd: float) -> float:
        """Add an answer's actual cost."""
        spent = self._today()
        spent[user_id] = spent.get(user_id, 0.0) + usd
        return spent[user_id]

    def _today(self) -> dict[str, float]:
        day, _ = _utc_day(self._clock())
        if day != self._day:
            self._day, self._spent = day, {}
        return self._spent


class RedisSpendBudget:
    """A `SpendBudget` shared through Redis (`INCRBYFLOAT` on a key per user and UTC day)."""

    def __init__(
        self,
        redis: Redis,
        settings: LimitSettings | None = None,
        *,
        clock: Clock = time.time,
        prefix: str = SPEND_PREFIX,
    ) -> None:
        self._redis = redis
        self._settings = settings or LimitSettings()
        self._clock = clock
        self._prefix = prefix

    async def spent(self, user_id: str) -> float:
        """The user's spend so far today."""
        key, _ = self._key(user_id)
        async with store_call("spend read", self._settings.timeout_s):
            value = await self._redis.get(key)
        return 0.0 if value is None else float(value)

    async def allows(self, user_id: str, estimate_usd: float = 0.0) -> bool:
        """Whether spend plus `estimate_usd` stays within `daily_usd`."""
        return await self.spent(user_id) + estimate_usd <= self._settings.daily_usd

    async def add(self, user_id: str, usd: float) -> float:
        """Add an answer's actual cost; the key expires at the end of the UTC day."""
        key, left_s = self._key(user_id)
        async with (
            store_call("spend add", self._settings.timeout_s),
            self._redis.pipeline(transaction=True) as pipe,
        ):
            pipe.incrbyfloat(key, usd)
            pipe.expire(key, left_s)
            total, _ = await pipe.execute()
        return float(total)

    def _key(self, user_id: str) -> tuple[str, int]:
        """The user's key for today and the whole seconds left until the day ends."""
        now = self._clock()
        day, day_end = _utc_day(now)
        return f"{self._prefix}{user_id}:{day}", max(1, math.ceil(day_end - now))


def _utc_day(now: float) -> tuple[str, int]:
    """The UTC date of `now` as YYYY-MM-DD, and the epoch second at which that day ends."""
    start = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return start.date().isoformat(), int((start + timedelta(days=1)).timestamp())
