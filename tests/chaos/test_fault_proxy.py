"""The fault proxy itself: each mode against an echo server, and a Redis client through it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bots.errors import QueueUnavailable
from bots.queue import QueueSettings
from bots.queue_redis import RedisQueue
from tests.bots.pipeline_support import TTL, message
from tests.bots.redis_fixtures import PrivateRedis, fixture_private_redis  # noqa: F401
from tests.chaos.fault_proxy import FaultProxy

SILENCE_S = 0.3
"""How long a black-holed request must stay unanswered."""


class Echo:
    """A loopback server that echoes every chunk back."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Echo:
        self._server = await asyncio.start_server(self._echo, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()

    async def stop(self) -> None:
        """Stop listening (a dead upstream)."""
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _echo(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(4096):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


@pytest.fixture(name="proxy")
async def fixture_proxy() -> AsyncIterator[FaultProxy]:
    async with Echo() as echo, FaultProxy(echo.port) as proxy:
        yield proxy


async def connect(proxy: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def round_trip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes, timeout_s: float = 2
) -> bytes:
    writer.write(data)
    await writer.drain()
    async with asyncio.timeout(timeout_s):
        return await reader.readexactly(len(data))


async def test_pass_forwards_both_ways_and_listens_on_loopback_only(proxy: FaultProxy) -> None:
    reader, writer = await connect(proxy)
    assert await round_trip(reader, writer, b"hello") == b"hello"
    big = bytes(range(256)) * 1024  # several chunks
    assert await round_trip(reader, writer, big) == big
    assert writer.get_extra_info("peername")[0] == "127.0.0.1"
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.2", proxy.port)
    writer.close()
    assert (proxy.mode, proxy.accepted) == ("pass", 1)


async def test_latency_delays_each_direction(proxy: FaultProxy) -> None:
    reader, writer = await connect(proxy)
    proxy.latency(0.1)
    began = time.monotonic()
    assert await round_trip(reader, writer, b"slow") == b"slow"
    assert time.monotonic() - began >= 0.2  # 0.1 s up, 0.1 s down
    proxy.passthrough()
    assert await round_trip(reader, writer, b"fast") == b"fast"
    writer.close()


async def test_blackhole_keeps_connections_and_delivers_nothing_until_it_heals(
    proxy: FaultProxy,
) -> None:
    old_reader, old_writer = await connect(proxy)
    assert await round_trip(old_reader, old_writer, b"before") == b"before"
    proxy.blackhole()
    with pytest.raises(TimeoutError):
        await round_trip(old_reader, old_writer, b"held", timeout_s=SILENCE_S)
    new_reader, new_writer = await connect(proxy)  # accepted, but silent
    with pytest.raises(TimeoutError):
        await round_trip(new_reader, new_writer, b"queued", timeout_s=SILENCE_S)
    assert proxy.open_connections == 2

    proxy.passthrough()
    async with asyncio.timeout(2):  # what was held arrives late, as after a healed partition
        assert await old_reader.readexactly(4) == b"held"
        assert await new_reader.readexactly(6) == b"queued"
    old_writer.close()
    new_writer.close()


async def test_reset_resets_open_and_new_connections_until_pass(proxy: FaultProxy) -> None:
    reader, writer = await connect(proxy)
    assert await round_trip(reader, writer, b"ok") == b"ok"
    proxy.reset_all()
    with pytest.raises(ConnectionResetError):
        await round_trip(reader, writer, b"x")
    new_reader, new_writer = await connect(proxy)
    with pytest.raises(ConnectionResetError):
        await round_trip(new_reader, new_writer, b"y")
    assert proxy.resets == 2

    proxy.passthrough()
    reader, writer = await connect(proxy)
    assert await round_trip(reader, writer, b"back") == b"back"
    writer.close()


async def test_a_dead_upstream_resets_the_client() -> None:
    async with Echo() as echo, FaultProxy(echo.port) as proxy:
        await echo.stop()
        reader, writer = await connect(proxy)
        with pytest.raises(ConnectionResetError):
            await round_trip(reader, writer, b"anyone?")
        assert proxy.resets == 1


async def test_redis_through_the_proxy_fails_fast_in_every_mode_and_recovers_alone(
    private_redis: PrivateRedis,
) -> None:
    """T5 at the queue: black-holed or reset Redis → QueueUnavailable within 1 s; back to pass,
    the same client enqueues again. The black-holed request reaches Redis once the partition
    heals, so the platform's retry of that message must find it queued, not queue it twice."""
    async with FaultProxy(private_redis.port) as proxy:
        client = Redis.from_url(proxy.url(), socket_connect_timeout=0.5, socket_timeout=None)
        queue = RedisQueue(client, QueueSettings(block_ms=50))
        took: dict[str, float] = {}
        retried: dict[str, bool] = {}
        try:
            assert await queue.enqueue(message(n=1), TTL)
            for n, (mode, fault) in enumerate(
                (("blackhole", proxy.blackhole), ("reset", proxy.reset_all)), start=2
            ):
                fault()
                began = time.monotonic()
                with pytest.raises(QueueUnavailable):
                    await queue.enqueue(message(n=n), TTL)
                took[mode] = time.monotonic() - began
                proxy.passthrough()
                await asyncio.sleep(0.1)
                retried[mode] = await queue.enqueue(message(n=n), TTL)  # the platform retries
            proxy.latency(0.05)
            assert await queue.enqueue(message(n=4), TTL)
            proxy.passthrough()
            entries = await queue.read("w1", count=10)
        finally:
            await client.aclose()
    assert max(took.values()) < 1.0, took
    assert retried == {"blackhole": False, "reset": True}  # held request applied late; RST not
    keys = [e.message.dedupe_key for e in entries]
    assert keys == ["tg:c1:1", "tg:c1:2", "tg:c1:3", "tg:c1:4"]
