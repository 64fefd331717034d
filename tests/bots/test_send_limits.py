"""Per-chat pacing, 429 pauses, typing heartbeats and the streaming answer feed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from bots.send_limits import AnswerFeed, Heartbeats, SendLimits
from routing.execution_types import Delta, ExecEvent, Outcome, Restart


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_chat_is_due_a_spacing_after_its_last_send_and_after_any_pause() -> None:
    clock = Clock()
    limits = SendLimits(clock=clock)

    fresh = limits.due_in("a", 3.0)
    limits.sent("a")
    clock.now += 1.0
    spaced = limits.due_in("a", 3.0)
    limits.pause("a", 10.0)
    limits.pause("a", 2.0)  # a shorter pause does not cut a longer one
    limits.pause("b", -5.0)

    assert (fresh, spaced, limits.due_in("a", 3.0), limits.paused_for("a")) == (
        0.0,
        2.0,
        10.0,
        10.0,
    )
    assert (limits.paused_for("b"), limits.due_in("b"), limits.paused_for("zzz")) == (0, 0, 0)


def test_only_the_most_recent_chats_are_remembered() -> None:
    clock = Clock()
    limits = SendLimits(clock=clock, max_chats=2)

    for chat in ("a", "b", "a", "c"):
        limits.pause(chat, 60.0)

    assert [limits.paused_for(chat) > 0 for chat in ("a", "b", "c")] == [True, False, True]
    with pytest.raises(ValueError, match="max_chats"):
        SendLimits(max_chats=0)


async def test_wait_sleeps_until_the_chat_is_due() -> None:
    limits = SendLimits()
    limits.pause("a", 0.05)
    loop = asyncio.get_running_loop()

    started = loop.time()
    await limits.wait("a")

    assert loop.time() - started >= 0.04


async def test_heartbeats_repeat_until_stopped_or_replaced() -> None:
    beats: list[str] = []
    hearts = Heartbeats()

    async def first() -> None:
        beats.append("first")

    async def second() -> None:
        beats.append("second")

    hearts.start("chat", first, every_s=0.02, for_s=5.0)
    await asyncio.sleep(0.07)
    hearts.start("chat", second, every_s=0.02, for_s=5.0)
    await asyncio.sleep(0.07)
    await hearts.stop("chat")
    count = len(beats)
    await asyncio.sleep(0.05)
    await hearts.stop("nobody")

    assert beats.count("first") >= 2
    assert beats.count("second") >= 2
    assert beats[-1] == "second"
    assert (len(beats), hearts.running("chat")) == (count, False)


async def test_heartbeats_end_on_their_own_and_on_failure(caplog: pytest.LogCaptureFixture) -> None:
    hearts = Heartbeats()

    async def quiet() -> None:
        pass

    async def broken() -> None:
        raise RuntimeError("no network")

    hearts.start("short", quiet, every_s=0.01, for_s=0.03)
    hearts.start("broken", broken, every_s=0.01, for_s=5.0)
    hearts.start("long", quiet, every_s=0.01, for_s=5.0)
    await asyncio.sleep(0.08)

    assert [hearts.running(c) for c in ("short", "broken", "long")] == [False, False, True]
    assert "heartbeat failed" in caplog.text
    await hearts.aclose()
    await hearts.aclose()
    assert not hearts.running("long")


async def test_the_feed_follows_deltas_restarts_and_the_outcome() -> None:
    outcome = Outcome(
        ok=True,
        tier=1,
        provider="p",
        model="m",
        text="new",
        attempts=(),
        reasons=(),
        input_tokens=1,
        output_tokens=1,
        cost_usd=0.0,
        ttft_s=None,
        total_s=0.0,
    )

    async def events() -> AsyncGenerator[ExecEvent, None]:
        yield Delta(text="old")
        yield Restart(reason="fallback")
        yield Delta(text="new")
        yield outcome

    async with AnswerFeed(events()) as feed:
        await feed.changed(since=0, within_s=1.0)
        await feed.finished()
        await feed.ended(within_s=1.0)

    assert (feed.text, feed.version, feed.outcome, feed.done) == ("new", 3, outcome, True)


async def test_the_feed_raises_what_the_executor_raised() -> None:
    async def events() -> AsyncGenerator[ExecEvent, None]:
        yield Delta(text="a")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        async with AnswerFeed(events()) as feed:
            await feed.finished()

    async with AnswerFeed(events()) as unread:
        await unread.ended(within_s=1.0)  # leaving retrieves the error without raising it

    assert unread.done
