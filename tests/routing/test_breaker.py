"""The `Breaker` contract over the memory and Redis implementations, then Redis-only behaviour."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from routing.breaker import Breaker, BreakerConfig, BreakerState, MemoryBreaker, Permit
from routing.breaker_redis import RedisBreaker
from routing.errors import ConfigError

REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_SERVER = "/usr/bin/redis-server"
START_HINT = "start it with: redis-server --port 6379 --save '' --appendonly no"
ROOT = Path(__file__).resolve().parents[2]
KEY = "openai:gpt-4o"
T0 = 1_000_000.0
REDIS_LOGGER = "routing.breaker_redis"


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


MakeBreaker = Callable[[BreakerConfig], Breaker]


async def _connect(url: str) -> Redis:
    client = Redis.from_url(url, socket_connect_timeout=1)
    try:
        async with asyncio.timeout(2):
            await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        pytest.fail(f"Redis is not reachable at {url} ({exc}); {START_HINT}")
    return client


@pytest.fixture
async def redis_client() -> AsyncIterator[Redis]:
    client = await _connect(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(redis_client: Redis) -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    name = f"test:{uuid.uuid4().hex}:breaker:"
    yield name
    keys = [key async for key in redis_client.scan_iter(match=f"{name}*")]
    if keys:
        await redis_client.delete(*keys)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "redis"])
def make_breaker(request: pytest.FixtureRequest, clock: FakeClock) -> MakeBreaker:
    """Build breakers of one implementation on the test's clock (Redis: sharing one prefix)."""
    if request.param == "memory":
        return lambda config: MemoryBreaker(config=config, clock=clock)
    client: Redis = request.getfixturevalue("redis_client")
    name: str = request.getfixturevalue("prefix")
    return lambda config: RedisBreaker(client, config=config, clock=clock, prefix=name)


@pytest.fixture
def breaker(make_breaker: MakeBreaker) -> Breaker:
    return make_breaker(BreakerConfig())


async def record(breaker: Breaker, outcomes: str, key: str = KEY) -> None:
    """Make one permitted call per letter: F fails, S succeeds."""
    for outcome in outcomes:
        permit = await breaker.allow(key)
        assert permit == Permit(key=key)
        await (breaker.failure(permit) if outcome == "F" else breaker.success(permit))


async def probe(breaker: Breaker, key: str = KEY) -> Permit:
    permit = await breaker.allow(key)
    assert permit == Permit(key=key, probe=True)
    return permit


def opened(until: float, trips: int = 1) -> BreakerState:
    return BreakerState(key=KEY, status="open", until=until, trips=trips)


# --- the contract, over both implementations ----------------------------------------------


async def test_trips_after_five_consecutive_failures(breaker: Breaker, clock: FakeClock) -> None:
    await record(breaker, "FFFF")
    assert await breaker.state(KEY) == BreakerState(
        key=KEY, status="closed", consecutive_failures=4, window_calls=4, window_failures=4
    )
    await record(breaker, "F")
    assert await breaker.allow(KEY) is None
    assert await breaker.state(KEY) == opened(T0 + 30)


async def test_trips_when_more_than_half_of_ten_calls_fail(breaker: Breaker) -> None:
    await record(breaker, "FSFSFSFSFS")
    assert await breaker.state(KEY) == BreakerState(
        key=KEY, status="closed", window_calls=10, window_failures=5
    )
    await record(breaker, "F")
    assert await breaker.state(KEY) == opened(T0 + 30)


async def test_four_failures_then_a_success_do_not_trip(breaker: Breaker) -> None:
    await record(breaker, "FFFFSFFFF")
    assert await breaker.state(KEY) == BreakerState(
        key=KEY, status="closed", consecutive_failures=4, window_calls=9, window_failures=8
    )
    assert await breaker.allow(KEY) == Permit(key=KEY)


async def test_one_probe_after_the_open_period(breaker: Breaker, clock: FakeClock) -> None:
    await record(breaker, "FFFFF")
    clock.advance(29.999)
    assert await breaker.allow(KEY) is None
    clock.advance(0.001)
    assert await breaker.state(KEY) == BreakerState(key=KEY, status="half_open", trips=1)
    permits = await asyncio.gather(*(breaker.allow(KEY) for _ in range(20)))
    assert [p for p in permits if p is not None] == [Permit(key=KEY, probe=True)]
    assert await breaker.state(KEY) == BreakerState(
        key=KEY, status="half_open", until=clock.now + 60, trips=1
    )


async def test_successful_probe_closes_and_resets_the_backoff(
    breaker: Breaker, clock: FakeClock
) -> None:
    await record(breaker, "FFFFF")
    clock.advance(30)
    await breaker.success(await probe(breaker))
    assert await breaker.state(KEY) == BreakerState(key=KEY, status="closed")
    await record(breaker, "SFFFFF")
    assert await breaker.state(KEY) == opened(clock.now + 30)


async def test_failed_probes_double_the_open_period_up_to_300s(
    breaker: Breaker, clock: FakeClock
) -> None:
    await record(breaker, "FFFFF")
    clock.advance(30)
    for trips, open_s in enumerate([60, 120, 240, 300, 300], start=2):
        await breaker.failure(await probe(breaker))
        assert await breaker.state(KEY) == opened(clock.now + open_s, trips)
        clock.advance(open_s - 1)
        assert await breaker.allow(KEY) is None
        clock.advance(1)


async def test_a_probe_that_never_reports_loses_its_lease(
    make_breaker: MakeBreaker, clock: FakeClock
) -> None:
    breaker = make_breaker(BreakerConfig(probe_lease_s=5))
    await record(breaker, "FFFFF")
    clock.advance(30)
    await probe(breaker)
    clock.advance(4.9)
    assert await breaker.allow(KEY) is None
    clock.advance(0.1)
    await breaker.success(await probe(breaker))
    assert await breaker.state(KEY) == BreakerState(key=KEY, status="closed")


async def test_cooldown_skips_the_key_without_counting_a_failure(
    breaker: Breaker, clock: FakeClock
) -> None:
    await record(breaker, "FFFF")
    for seconds in (10, 1, 0, -5):  # a shorter cooldown never cuts a longer one short
        await breaker.cooldown(KEY, seconds)
    assert await breaker.allow(KEY) is None
    assert await breaker.allow("anthropic:claude") == Permit(key="anthropic:claude")
    assert await breaker.state(KEY) == BreakerState(
        key=KEY,
        status="cooldown",
        until=T0 + 10,
        consecutive_failures=4,
        window_calls=4,
        window_failures=4,
    )
    clock.advance(10)
    await record(breaker, "S")
    assert (await breaker.state(KEY)).status == "closed"


async def test_cooldown_holds_back_the_half_open_probe(breaker: Breaker, clock: FakeClock) -> None:
    await record(breaker, "FFFFF")
    await breaker.cooldown(KEY, 40)
    assert (await breaker.state(KEY)).status == "open"
    clock.advance(30)
    assert await breaker.state(KEY) == BreakerState(
        key=KEY, status="cooldown", until=T0 + 40, trips=1
    )
    assert await breaker.allow(KEY) is None
    clock.advance(10)
    await breaker.failure(await probe(breaker))
    assert await breaker.state(KEY) == opened(clock.now + 60, trips=2)


async def test_window_forgets_calls_older_than_60s(breaker: Breaker, clock: FakeClock) -> None:
    await record(breaker, "FSFSFSFSF")
    clock.advance(60)
    await record(breaker, "FF")
    assert await breaker.state(KEY) == BreakerState(
        key=KEY, status="closed", consecutive_failures=2, window_calls=2, window_failures=2
    )


async def test_a_quiet_minute_ends_a_run_of_failures(breaker: Breaker, clock: FakeClock) -> None:
    await record(breaker, "FFFF")
    clock.advance(60)
    assert (await breaker.state(KEY)).consecutive_failures == 0
    await record(breaker, "F")
    assert (await breaker.state(KEY)).consecutive_failures == 1


async def test_outcomes_of_calls_admitted_before_the_trip_are_ignored(breaker: Breaker) -> None:
    early = [await breaker.allow(KEY) for _ in range(2)]
    await record(breaker, "FFFFF")
    for permit in early:
        assert permit is not None
        await breaker.failure(permit)
        await breaker.success(permit)
    assert await breaker.state(KEY) == opened(T0 + 30)


async def test_a_late_probe_report_after_closing_counts_as_an_ordinary_call(
    breaker: Breaker, clock: FakeClock
) -> None:
    await record(breaker, "FFFFF")
    clock.advance(30)
    permit = await probe(breaker)
    await breaker.success(permit)
    await breaker.failure(permit)
    assert await breaker.state(KEY) == BreakerState(
        key=KEY, status="closed", consecutive_failures=1, window_calls=1, window_failures=1
    )


async def test_keys_are_independent(breaker: Breaker) -> None:
    await record(breaker, "FFFFF", key="groq:llama")
    assert await breaker.state(KEY) == BreakerState(key=KEY, status="closed")
    assert await breaker.allow(KEY) == Permit(key=KEY)


# --- settings --------------------------------------------------------------------------------


def test_bad_settings_are_refused_with_their_names() -> None:
    with pytest.raises(ConfigError, match=r"failure_rate=1\.5, max_open_s=10"):
        BreakerConfig(failure_rate=1.5, max_open_s=10)


def test_open_period_doubles_up_to_the_cap() -> None:
    config = BreakerConfig()
    assert [config.open_for(n) for n in (1, 2, 3, 4, 5, 100)] == [30, 60, 120, 240, 300, 300]


# --- Redis only ------------------------------------------------------------------------------


async def test_two_instances_share_a_trip(redis_client: Redis, prefix: str) -> None:
    other = await _connect(REDIS_URL)
    try:
        a = RedisBreaker(redis_client, config=BreakerConfig(), prefix=prefix)
        b = RedisBreaker(other, config=BreakerConfig(), prefix=prefix)
        assert await b.allow(KEY) == Permit(key=KEY)
        await record(a, "FFFFF")
        assert await b.allow(KEY) is None
        assert (await b.state(KEY)).status == "open"
    finally:
        await other.aclose()


async def test_exactly_one_probe_across_instances(
    redis_client: Redis, prefix: str, clock: FakeClock
) -> None:
    other = await _connect(REDIS_URL)
    try:
        instances = [
            RedisBreaker(client, config=BreakerConfig(), clock=clock, prefix=prefix)
            for client in (redis_client, other)
        ]
        await record(instances[0], "FFFFF")
        clock.advance(30)
        permits = await asyncio.gather(*(b.allow(KEY) for _ in range(25) for b in instances))
        assert [p for p in permits if p is not None] == [Permit(key=KEY, probe=True)]
    finally:
        await other.aclose()


async def test_keys_carry_the_prefix_and_expire(
    redis_client: Redis, prefix: str, clock: FakeClock
) -> None:
    breaker = RedisBreaker(redis_client, config=BreakerConfig(), clock=clock, prefix=prefix)
    base = f"{prefix}{{{KEY}}}"
    await record(breaker, "F")
    assert 59_000 < await redis_client.pttl(base) <= 60_000
    await record(breaker, "FFFF")
    assert 329_000 < await redis_client.pttl(base) <= 330_000
    clock.advance(30)
    await probe(breaker)
    assert 59_000 < await redis_client.pttl(f"{base}:probe") <= 60_000
    await breaker.cooldown(KEY, 120)
    assert 119_000 < await redis_client.pttl(f"{base}:cooldown") <= 120_000
    assert sorted([k async for k in redis_client.scan_iter(match=f"{prefix}*")]) == [
        base.encode(),
        f"{base}:cooldown".encode(),
        f"{base}:probe".encode(),
    ]


async def _line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    async with asyncio.timeout(10):
        return (await process.stdout.readline()).decode().strip()


async def test_another_os_process_sees_a_trip_within_one_second(
    redis_client: Redis, prefix: str
) -> None:
    worker = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "tests.routing.breaker_worker"),
        *("--url", REDIS_URL, "--prefix", prefix, "--key", KEY, "--hold", "1.0"),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert await _line(worker) == "ready"
        await record(RedisBreaker(redis_client, config=BreakerConfig(), prefix=prefix), "FFFFF")
        tripped = time.monotonic()
        assert await _line(worker) == "blocked"
        assert time.monotonic() - tripped < 1.0
        assert await _line(worker) == "permits 0"
        assert await worker.wait() == 0
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()


class PrivateRedis:
    """A redis-server of the test's own, on a free loopback port, that the test may kill."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port: int = sock.getsockname()[1]
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        if shutil.which(REDIS_SERVER) is None:
            pytest.fail(f"{REDIS_SERVER} is missing; install it with: apt-get install redis-server")
        self.process = await asyncio.create_subprocess_exec(
            *(REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", str(self.directory)),
            stdout=asyncio.subprocess.DEVNULL,
        )
        async with asyncio.timeout(5):
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                except OSError:
                    await asyncio.sleep(0.02)
                    continue
                writer.close()
                await writer.wait_closed()
                return

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    await server.start()
    yield server
    await server.kill()


def _outage_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == REDIS_LOGGER]


async def test_killed_redis_falls_back_to_a_local_breaker_and_back(
    private_redis: PrivateRedis, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=REDIS_LOGGER)
    url = f"redis://127.0.0.1:{private_redis.port}/0"
    client = await _connect(url)
    config = BreakerConfig()
    breaker = RedisBreaker(client, config=config, clock=clock, prefix="t:", timeout_s=0.25)
    try:
        await record(breaker, "FF")
        await private_redis.kill()
        started = time.monotonic()
        await record(breaker, "FFFF")  # the local breaker starts from scratch
        await record(breaker, "SFFFFF", key="groq:llama")
        await breaker.cooldown("anthropic:claude", 5)
        assert await breaker.allow("anthropic:claude") is None
        assert await breaker.state(KEY) == BreakerState(
            key=KEY, status="closed", consecutive_failures=4, window_calls=4, window_failures=4
        )
        assert (await breaker.state("groq:llama")).status == "open"
        assert time.monotonic() - started < 0.25 + 0.2
        clock.advance(1)  # time to try Redis again: it is still down
        assert await breaker.allow("groq:llama") is None
        assert len(_outage_logs(caplog)) == 1

        await private_redis.start()
        clock.advance(1)
        assert await breaker.allow("groq:llama") == Permit(key="groq:llama")  # Redis is empty
        other = await _connect(url)  # another process, tripping a key in the shared state
        try:
            await record(RedisBreaker(other, config=config, clock=clock, prefix="t:"), "FFFFF")
        finally:
            await other.aclose()
        assert await breaker.allow(KEY) is None
        assert [m.split(" prefix")[0] for m in _outage_logs(caplog)] == [
            "breaker redis unavailable",
            "breaker redis answers again",
            "breaker open key=openai:gpt-4o for=30s trips=1",
        ]
    finally:
        await client.aclose()


async def test_blackholed_redis_falls_back_within_the_timeout(clock: FakeClock) -> None:
    writers: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.read()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = Redis(host="127.0.0.1", port=port)
    breaker = RedisBreaker(client, config=BreakerConfig(), clock=clock, timeout_s=0.2)
    try:
        started = time.monotonic()
        assert await breaker.allow(KEY) == Permit(key=KEY)
        assert 0.2 <= time.monotonic() - started < 0.4
        started = time.monotonic()
        await record(breaker, "FFFFF")
        assert await breaker.allow(KEY) is None
        assert time.monotonic() - started < 0.05  # no more waiting until the retry time
    finally:
        await client.aclose()
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()
