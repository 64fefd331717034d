"""Redis fixtures for the pipeline store tests; test modules import the ones they use explicitly.

Each fixture function is named `fixture_<name>` and registered as `<name>`, so importing it does
not shadow the test's parameter (`from tests.bots.redis_fixtures import fixture_prefix`).

`redis_client` connects to the machine's Redis (a missing server fails the test with how to
start it); `prefix` gives the test its own key prefix and deletes its keys afterwards;
`private_redis` runs a `redis-server` of the test's own on a free loopback port, which the test
may kill and restart.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_SERVER = "/usr/bin/redis-server"
START_HINT = "start it with: redis-server --port 6379 --save '' --appendonly no"
ROOT = Path(__file__).resolve().parents[2]


async def connect(url: str = REDIS_URL) -> Redis:
    """A client for `url` that has answered a PING; fails the test if Redis is not there."""
    client = Redis.from_url(url, socket_connect_timeout=1, socket_timeout=None)
    try:
        async with asyncio.timeout(2):
            await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        pytest.fail(f"Redis is not reachable at {url} ({exc}); {START_HINT}")
    return client


async def delete_prefix(client: Redis, prefix: str) -> None:
    """Delete every key under `prefix`."""
    keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
    if keys:
        await client.delete(*keys)


def unique_prefix(kind: str) -> str:
    """A fresh prefix with a hash tag, like the production ones."""
    return f"test:{{{uuid.uuid4().hex}}}:{kind}:"


@pytest.fixture(name="redis_client")
async def fixture_redis_client() -> AsyncIterator[Redis]:
    """A client of the machine's Redis, closed afterwards."""
    client = await connect()
    yield client
    await client.aclose()


@pytest.fixture(name="prefix")
async def fixture_prefix(redis_client: Redis) -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    name = unique_prefix("bots")
    yield name
    await delete_prefix(redis_client, name)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class PrivateRedis:
    """A redis-server of the test's own, on a free loopback port, that the test may kill."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        """Start the server (again, on the same port) and wait until it accepts connections."""
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
        """SIGKILL the server and wait for it to exit."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


@pytest.fixture(name="private_redis")
async def fixture_private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    """A private redis-server, killed at the end of the test."""
    server = PrivateRedis(tmp_path)
    await server.start()
    yield server
    await server.kill()


class Blackhole:
    """A TCP server on loopback that accepts connections and never answers (a hung Redis)."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def __aenter__(self) -> Blackhole:
        self._server = await asyncio.start_server(self._swallow, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _swallow(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        await reader.read()
