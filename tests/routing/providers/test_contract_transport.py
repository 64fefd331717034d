"""The `LLMProvider` contract for connections: refusals, timeouts, hangs, cancellation."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import aclosing, contextmanager

import pytest

from routing.errors import ProviderTimeout, ProviderUnavailable
from routing.providers import LLMProvider, StreamEvent, TextDelta
from tests.fakes.llm import Behaviour, FakeLLM, tokens
from tests.routing.providers.support import MakeProvider, Vendor, base_url_for, chat, collect

TEXT = "The quick brown fox jumps over the lazy dog."


async def wait_for_disconnect(fake: FakeLLM, model: str) -> None:
    """Wait until the fake has seen the client close the request's connection."""
    async with asyncio.timeout(2):
        await fake.disconnected(model)


@pytest.mark.parametrize(
    "behaviour",
    [Behaviour(hang="before_headers"), Behaviour(hang="before_first_token")],
    ids=["before-headers", "before-first-token"],
)
async def test_a_hang_ends_at_the_callers_timeout_and_closes_the_request(
    provider: LLMProvider, fake_llm: FakeLLM, behaviour: Behaviour
) -> None:
    fake_llm.script("m", behaviour)
    fake_llm.script("ok", Behaviour(text=TEXT))

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await collect(provider, chat("m"), [])

    await wait_for_disconnect(fake_llm, "m")
    events: list[StreamEvent] = []
    await collect(provider, chat("ok"), events)  # the client is still usable
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == TEXT


async def test_a_stall_mid_stream_times_out_after_the_idle_timeout(
    make_provider: MakeProvider, vendor: Vendor, fake_llm: FakeLLM
) -> None:
    provider = make_provider(vendor, idle_timeout=0.3)
    fake_llm.script("m", Behaviour(text=TEXT, stall_after=2))
    events: list[StreamEvent] = []

    with pytest.raises(ProviderTimeout, match=r"nothing received for 0\.3 s"):
        await collect(provider, chat("m"), events)

    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "".join(tokens(TEXT)[:2])
    await wait_for_disconnect(fake_llm, "m")


async def test_stopping_early_closes_the_request(provider: LLMProvider, fake_llm: FakeLLM) -> None:
    fake_llm.script("m", Behaviour(text=TEXT, tokens_per_second=10))

    async with aclosing(provider.stream(chat("m"))) as events:
        async for event in events:
            assert isinstance(event, TextDelta)
            break

    await wait_for_disconnect(fake_llm, "m")


@contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    yield port


@contextmanager
def unanswered_port() -> Iterator[int]:
    """A loopback port whose accept queue is full, so a new connection attempt just waits."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port: int = server.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        try:
            yield port
        finally:
            for filler in fillers:
                filler.close()


async def test_a_refused_connection_is_unavailable(
    make_provider: MakeProvider, vendor: Vendor
) -> None:
    with refused_port() as port:
        provider = make_provider(vendor, base_url=base_url_for(vendor, f"http://127.0.0.1:{port}"))

        with pytest.raises(ProviderUnavailable, match="connection failed"):
            await collect(provider, chat("m"), [])


async def test_a_connect_timeout_is_a_timeout(make_provider: MakeProvider, vendor: Vendor) -> None:
    with unanswered_port() as port:
        root = f"http://127.0.0.1:{port}"
        provider = make_provider(vendor, base_url=base_url_for(vendor, root), connect_timeout=0.2)

        with pytest.raises(ProviderTimeout, match=r"could not connect within 0\.2 s"):
            await collect(provider, chat("m"), [])
