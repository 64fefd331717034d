"""Per-model circuit breakers: settings, state snapshots, the `Breaker` seam and its in-memory form.

One breaker per key, "provider:model". The rules, shared by every implementation:

- **Closed → open** after `consecutive_failures` failures in a row (the run is broken by a
  success, or by `window_s` without any call), or when more than `failure_rate` of at least
  `min_calls` calls failed within the last `window_s` (counted in `window_buckets` buckets).
- **Open** for `open_s`, doubling on each consecutive re-trip up to `max_open_s`.
- **Half-open** once the open period is over: exactly one caller gets a probe permit (a lease of
  `probe_lease_s`, so a prober that dies does not wedge the breaker); everyone else is refused
  until the probe reports. A successful probe closes the breaker and resets the backoff; a
  failed one re-opens it for twice as long.
- **Cooldown** (429 with `Retry-After`): the key is refused until then, but it is not a failure
  and counts toward neither tripping nor backoff.
- Outcomes of ordinary (non-probe) calls that report while the breaker is open or half-open
  were admitted before the trip; they are ignored.
- Configuration errors (HTTP 400/401/403) are not the provider being down: callers report
  neither `success` nor `failure` for them, so they never trip a breaker.

Callers ask `allow(key)` before each provider call; None means "skip this provider". They
report the permit back with exactly one of `success` or `failure`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from routing.errors import ConfigError

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
"""Seconds as a float; `time.time` when processes share the state, since they share its origin."""

BreakerStatus = Literal["closed", "open", "half_open", "cooldown"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerConfig:
    """Thresholds and durations of every breaker; the defaults follow Envoy's outlier detection."""

    consecutive_failures: int = 5
    failure_rate: float = 0.5
    min_calls: int = 10
    window_s: float = 60.0
    window_buckets: int = 12
    open_s: float = 30.0
    max_open_s: float = 300.0
    probe_lease_s: float = 60.0

    def __post_init__(self) -> None:
        checks = {
            "consecutive_failures": self.consecutive_failures >= 1,
            "failure_rate": 0.0 < self.failure_rate < 1.0,
            "min_calls": self.min_calls >= 1,
            "window_s": self.window_s > 0,
            "window_buckets": self.window_buckets >= 1,
            "open_s": self.open_s > 0,
            "max_open_s": self.max_open_s >= self.open_s,
            "probe_lease_s": self.probe_lease_s > 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"{name}={getattr(self, name)!r}" for name in bad)
            raise ConfigError(f"invalid breaker setting: {values}")

    def bucket(self, now: float) -> int:
        """Return the index of the window bucket that `now` falls in."""
        return math.floor(now * self.window_buckets / self.window_s)

    def open_for(self, trips: int) -> float:
        """Return how long the breaker stays open after its `trips`-th consecutive trip."""
        return float(min(self.open_s * 2 ** min(trips - 1, 62), self.max_open_s))


@dataclass(frozen=True, slots=True, kw_only=True)
class Permit:
    """Leave to call the provider behind `key`; `probe` marks the single half-open trial call."""

    key: str
    probe: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerState:
    """A snapshot of one breaker, for metrics and `policy show`.

    `until` is when the status ends: the end of the open period or cooldown, or the probe
    lease's deadline while a half-open probe is out (None while half-open and waiting for one).
    """

    key: str
    status: BreakerStatus
    until: float | None = None
    consecutive_failures: int = 0
    window_calls: int = 0
    window_failures: int = 0
    trips: int = 0


def status_at(
    now: float, *, trips: int, open_until: float, probe_until: float, cooldown_until: float
) -> tuple[BreakerStatus, float | None]:
    """Return the status and its end time from stored deadlines (0 = none)."""
    if open_until > now:
        return "open", open_until
    if cooldown_until > now:
        return "cooldown", cooldown_until
    if trips:
        return "half_open", probe_until if probe_until > now else None
    return "closed", None


class Breaker(Protocol):
    """Decides whether a provider model may be called, and learns from the outcomes."""

    async def allow(self, key: str) -> Permit | None:
        """Return a permit to call `key`, or None to skip it (open, cooldown or probe out)."""
        ...

    async def success(self, permit: Permit) -> None:
        """Report that the permitted call succeeded."""
        ...

    async def failure(self, permit: Permit) -> None:
        """Report a timeout, 5xx or broken stream; never a 400/401/403 or a 429."""
        ...

    async def cooldown(self, key: str, seconds: float) -> None:
        """Skip `key` for `seconds` (429 with Retry-After) without counting it as a failure."""
        ...

    async def state(self, key: str) -> BreakerState:
        """Return a snapshot of the breaker for `key`."""
        ...


@dataclass(slots=True)
class _Entry:
    """What one in-memory breaker remembers; deadlines are clock times, 0 = none."""

    consecutive: int = 0
    last_call: float = 0.0
    trips: int = 0
    open_until: float = 0.0
    probe_until: float = 0.0
    cooldown_until: float = 0.0
    buckets: dict[int, list[int]] = field(default_factory=dict)  # index -> [calls, failures]


class MemoryBreaker:
    """Breakers for one process, kept in a dict; also the fallback of the Redis breaker."""

    def __init__(self, *, config: BreakerConfig, clock: Clock = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._entries: dict[str, _Entry] = {}

    async def allow(self, key: str) -> Permit | None:
        """Return a permit to call `key`, or None to skip it (open, cooldown or probe out)."""
        now = self._clock()
        entry = self._entries.get(key)
        if entry is None:
            return Permit(key=key)
        if entry.cooldown_until > now or entry.open_until > now:
            return None
        if not entry.trips:
            return Permit(key=key)
        if entry.probe_until > now:
            return None
        entry.probe_until = now + self._config.probe_lease_s
        return Permit(key=key, probe=True)

    async def success(self, permit: Permit) -> None:
        """Report that the permitted call succeeded."""
        self._record(permit, failed=False)

    async def failure(self, permit: Permit) -> None:
        """Report a timeout, 5xx or broken stream; never a 400/401/403 or a 429."""
        self._record(permit, failed=True)

    async def cooldown(self, key: str, seconds: float) -> None:
        """Skip `key` for `seconds` (429 with Retry-After) without counting it as a failure."""
        entry = self._entries.setdefault(key, _Entry())
        entry.cooldown_until = max(entry.cooldown_until, self._clock() + seconds)

    async def state(self, key: str) -> BreakerState:
        """Return a snapshot of the breaker for `key`."""
        now = self._clock()
        entry = self._entries.get(key) or _Entry()
        status, until = status_at(
            now,
            trips=entry.trips,
            open_until=entry.open_until,
            probe_until=entry.probe_until,
            cooldown_until=entry.cooldown_until,
        )
        oldest = self._config.bucket(now) - self._config.window_buckets + 1
        counts = [c for i, c in entry.buckets.items() if i >= oldest]
        fresh = now - entry.last_call < self._config.window_s
        return BreakerState(
            key=key,
            status=status,
            until=until,
            consecutive_failures=entry.consecutive if fresh else 0,
            window_calls=sum(c[0] for c in counts),
            window_failures=sum(c[1] for c in counts),
            trips=entry.trips,
        )

    def _record(self, permit: Permit, *, failed: bool) -> None:
        now = self._clock()
        entry = self._entries.setdefault(permit.key, _Entry())
        if entry.trips:
            if permit.probe:
                self._settle_probe(permit.key, entry, failed=failed, now=now)
            return
        cfg = self._config
        if now - entry.last_call >= cfg.window_s:
            entry.consecutive = 0
        entry.last_call = now
        bucket = cfg.bucket(now)
        oldest = bucket - cfg.window_buckets + 1
        entry.buckets = {i: c for i, c in entry.buckets.items() if i >= oldest}
        counts = entry.buckets.setdefault(bucket, [0, 0])
        counts[0] += 1
        if not failed:
            entry.consecutive = 0
            return
        counts[1] += 1
        entry.consecutive += 1
        calls = sum(c[0] for c in entry.buckets.values())
        failures = sum(c[1] for c in entry.buckets.values())
        by_rate = calls >= cfg.min_calls and failures > cfg.failure_rate * calls
        if entry.consecutive >= cfg.consecutive_failures or by_rate:
            self._trip(permit.key, entry, trips=1, now=now)

    def _settle_probe(self, key: str, entry: _Entry, *, failed: bool, now: float) -> None:
        if failed:
            self._trip(key, entry, trips=entry.trips + 1, now=now)
            return
        self._entries[key] = _Entry(cooldown_until=entry.cooldown_until)
        logger.info("breaker closed key=%s after a successful probe", key)

    def _trip(self, key: str, entry: _Entry, *, trips: int, now: float) -> None:
        open_s = self._config.open_for(trips)
        self._entries[key] = _Entry(
            trips=trips, open_until=now + open_s, cooldown_until=entry.cooldown_until
        )
        logger.warning("breaker open key=%s for=%.0fs trips=%d", key, open_s, trips)
