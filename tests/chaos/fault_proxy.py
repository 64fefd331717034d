"""A TCP fault proxy on loopback: forwards to an upstream, in a mode switched at run time.

Modes:
- `pass`: bytes flow both ways untouched;
- `latency`: every chunk waits `delay_s` before it is forwarded, in each direction;
- `blackhole`: connections are accepted and kept, nothing is forwarded (bytes already read wait,
  the rest stays in the kernel's buffers) until the mode changes, as in a network partition
  that heals before TCP gives up: held requests then arrive late;
- `reset`: every open connection is reset (RST: `SO_LINGER` 0, then close) on both sides, and
  so is every new one while the mode lasts.

An unreachable upstream (a killed redis-server) resets the client's connection as well. The
proxy listens on 127.0.0.1 only, on a free port. Toxiproxy is not installable here and
`tc netem` is missing from this kernel (reliability.md §4), hence this one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from types import TracebackType
from typing import Literal, Self

logger = logging.getLogger(__name__)

Mode = Literal["pass", "latency", "blackhole", "reset"]
CHUNK = 65536


def reset(writer: asyncio.StreamWriter) -> None:
    """Close the connection with an RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Link:
    """One proxied connection: the client's writer and, once connected, the upstream's."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None

    def reset(self) -> None:
        reset(self.client)
        if self.upstream is not None:
            reset(self.upstream)

    def close(self) -> None:
        self.client.close()
        if self.upstream is not None:
            self.upstream.close()


class FaultProxy:
    """Listens on 127.0.0.1:<free port> and forwards to `upstream_port` on loopback."""

    def __init__(self, upstream_port: int, *, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.accepted = 0
        """Connections accepted so far."""
        self.resets = 0
        """Connections reset so far (mode `reset`, or the upstream refused)."""
        self._mode: Mode = "pass"
        self._delay_s = 0.0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def open_connections(self) -> int:
        return len(self._links)

    def url(self, scheme: str = "redis", path: str = "/0") -> str:
        """`scheme://127.0.0.1:<port><path>`."""
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def passthrough(self) -> None:
        """Forward everything again (held bytes go out now)."""
        self._set("pass", 0.0)

    def latency(self, delay_s: float) -> None:
        """Delay every chunk by `delay_s`, in each direction."""
        self._set("latency", delay_s)

    def blackhole(self) -> None:
        """Accept and keep connections, forward nothing."""
        self._set("blackhole", 0.0)

    def reset_all(self) -> None:
        """Reset every open connection, and every new one until the mode changes."""
        self._set("reset", 0.0)
        for link in list(self._links):
            link.reset()
            self.resets += 1

    def _set(self, mode: Mode, delay_s: float) -> None:
        logger.info("fault proxy port=%d mode=%s delay=%.3f", self.port, mode, delay_s)
        self._mode, self._delay_s = mode, delay_s
        if mode == "blackhole":
            self._flowing.clear()
        else:
            self._flowing.set()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.accepted += 1
        link = _Link(writer)
        self._links.add(link)
        try:
            await self._relay(link, reader)
        except (OSError, asyncio.IncompleteReadError):
            link.reset()
        finally:
            self._links.discard(link)
            link.close()
            self._tasks.discard(task)

    async def _relay(self, link: _Link, reader: asyncio.StreamReader) -> None:
        await self._flowing.wait()
        if link.client.is_closing():  # reset while it waited in the blackhole
            return
        if self._mode == "reset":
            self.resets += 1
            link.reset()
            return
        try:
            up_reader, link.upstream = await asyncio.open_connection(*self.upstream)
        except OSError:
            self.resets += 1
            link.reset()
            return
        pumps = {
            asyncio.create_task(self._pump(reader, link.upstream)),
            asyncio.create_task(self._pump(up_reader, link.client)),
        }
        try:
            done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.wait(pumps)
        for pump in done:
            if (error := pump.exception()) is not None:
                raise error

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while data := await source.read(CHUNK):
            await self._flowing.wait()
            if self._delay_s > 0:
                await asyncio.sleep(self._delay_s)
                await self._flowing.wait()
            sink.write(data)
            await sink.drain()
