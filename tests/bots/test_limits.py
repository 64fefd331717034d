"""Rate limit and spend budget contracts over memory and Redis, and the two-process test (T13)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from bots.errors import StoreUnavailable
from bots.limits import (
    LimitSettings,
    MemoryRateLimiter,
    MemorySpendBudget,
    RateDecision,
    RateLimiter,
    RedisRateLimiter,
    RedisSpendBudget,
    SpendBudget,
)
from tests.bots.redis_fixtures import (  # noqa: F401
    REDIS_URL,
    ROOT,
    fixture_prefix,
    fixture_redis_client,
    free_port,
)

NOON = datetime(2026, 3, 14, 12, 0, tzinfo=UTC).timestamp()


class FakeClock:
    """Wall seconds that the test moves by hand."""

    def __init__(self, now: float = NOON) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> tuple[Redis, str] | None:
    if request.param == "memory":
        return None
    return request.getfixturevalue("redis_client"), request.getfixturevalue("prefix")


MakeLimiter = Callable[[LimitSettings], RateLimiter]


@pytest.fixture
def make_limiter(backend: tuple[Redis, str] | None, clock: FakeClock) -> MakeLimiter:
    if backend is None:
        return lambda settings: MemoryRateLimiter(settings, clock=clock)
    client, prefix = backend
    return lambda settings: RedisRateLimiter(client, settings, clock=clock, prefix=prefix)


@pytest.fixture
def budget(backend: tuple[Redis, str] | None, clock: FakeClock) -> SpendBudget:
    settings = LimitSettings(daily_usd=1.0)
    if backend is None:
        return MemorySpendBudget(settings, clock=clock)
    client, prefix = backend
    return RedisSpendBudget(client, settings, clock=clock, prefix=prefix)


# --- rate limit ---------------------------------------------------------------------------------


async def test_the_limit_allows_n_per_window_then_says_when(
    make_limiter: MakeLimiter, clock: FakeClock
) -> None:
    limiter = make_limiter(LimitSettings(messages_per_window=3, window_s=60))
    decisions = []
    for _ in range(4):
        decisions.append(await limiter.hit("u1"))
        clock.advance(10)
    assert decisions == [
        RateDecision(allowed=True, remaining=2),
        RateDecision(allowed=True, remaining=1),
        RateDecision(allowed=True, remaining=0),
        RateDecision(allowed=False, remaining=0, retry_after_s=30.0),
    ]
    assert (await limiter.hit("u2")).allowed


async def test_the_window_slides(make_limiter: MakeLimiter, clock: FakeClock) -> None:
    limiter = make_limiter(LimitSettings(messages_per_window=2, window_s=60))
    assert [(await limiter.hit("u1")).allowed for _ in range(3)] == [True, True, False]
    clock.advance(59.9)
    assert not (await limiter.hit("u1")).allowed
    clock.advance(0.1)
    assert [(await limiter.hit("u1")).allowed for _ in range(3)] == [True, True, False]


async def test_concurrent_hits_get_exactly_the_limit(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(LimitSettings(messages_per_window=20, timeout_s=5))
    decisions = await asyncio.gather(*(limiter.hit("u1") for _ in range(60)))
    assert sum(d.allowed for d in decisions) == 20


async def test_idle_users_are_forgotten(clock: FakeClock) -> None:
    limiter = MemoryRateLimiter(LimitSettings(messages_per_window=1, window_s=60), clock=clock)
    for n in range(200):
        assert (await limiter.hit(f"u{n}")).allowed
    clock.advance(60)
    for n in range(200):
        assert (await limiter.hit(f"v{n}")).allowed
    assert (await limiter.hit("u0")).allowed


async def _line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    async with asyncio.timeout(10):
        return (await process.stdout.readline()).decode().strip()


async def test_two_processes_share_one_limit_exactly(redis_client: Redis, prefix: str) -> None:
    processes = [
        await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "tests.bots.limits_worker", "--url", REDIS_URL),
            *("--prefix", prefix, "--user", "u1", "--hits", "30"),
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    try:
        assert [await _line(p) for p in processes] == ["ready", "ready"]
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            await process.stdin.drain()
        lines = [await _line(p) for p in processes]
        assert sum(int(line.removeprefix("allowed ")) for line in lines) == 20
        assert [await p.wait() for p in processes] == [0, 0]
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()


# --- spend budget ------------------------------------------------------------------------------


async def test_spend_adds_up_and_the_budget_holds(budget: SpendBudget) -> None:
    assert await budget.spent("u1") == 0.0
    assert await budget.allows("u1", 1.0)
    assert await budget.add("u1", 0.3) == pytest.approx(0.3)
    assert await budget.add("u1", 0.45) == pytest.approx(0.75)
    assert await budget.allows("u1", 0.25)
    assert not await budget.allows("u1", 0.26)
    await budget.add("u1", 0.5)
    assert not await budget.allows("u1")
    assert await budget.spent("u2") == 0.0


async def test_spend_starts_again_each_utc_day(budget: SpendBudget, clock: FakeClock) -> None:
    await budget.add("u1", 0.9)
    clock.advance(12 * 3600 - 1)  # 23:59:59
    assert await budget.spent("u1") == pytest.approx(0.9)
    clock.advance(1)
    assert await budget.spent("u1") == 0.0
    assert await budget.allows("u1", 1.0)


async def test_redis_spend_expires_at_the_end_of_the_utc_day(
    redis_client: Redis, prefix: str
) -> None:
    budget = RedisSpendBudget(redis_client, prefix=prefix)  # Redis expires by its own clock
    await budget.add("u1", 0.1)
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    assert [k async for k in redis_client.scan_iter(match=f"{prefix}*")] == [
        f"{prefix}u1:{now.date().isoformat()}".encode()
    ]
    ttl = await redis_client.ttl(f"{prefix}u1:{now.date().isoformat()}")
    assert abs(ttl - (midnight - now).total_seconds()) < 3


# --- settings and failures ---------------------------------------------------------------------


def test_bad_settings_are_refused_with_their_names() -> None:
    with pytest.raises(ValueError, match="messages_per_window=0"):
        LimitSettings(messages_per_window=0)
    with pytest.raises(ValueError, match="daily_usd=-1"):
        LimitSettings(daily_usd=-1)


async def test_an_unreachable_redis_raises_store_unavailable() -> None:
    client = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    settings = LimitSettings(timeout_s=0.5)
    limiter = RedisRateLimiter(client, settings)
    budget = RedisSpendBudget(client, settings)
    try:
        for call, name in (
            (lambda: limiter.hit("u1"), "rate limit"),
            (lambda: budget.spent("u1"), "spend read"),
            (lambda: budget.add("u1", 0.1), "spend add"),
        ):
            with pytest.raises(StoreUnavailable, match=name):
                await call()
    finally:
        await client.aclose()
