"""The full-pipeline chaos scenario: its fault profiles, the actions that inject each fault into
a running stack, and the bounded wait for the service to finish its work.

Profiles (which faults a run gets): `crash` is reliability T2's run (2 worker SIGKILLs and a
SIGKILL of redis-server); `network` is the proxy's blackhole, reset and latency windows (T5);
`providers` is every failure mode of the fake LLM plus a 429 and a 500 from Telegram (T9/T10
seen from the chat); `mixed` is all of them in one run.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from collections.abc import Awaitable
from dataclasses import replace

import aiohttp
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bots.chat_state import OutboxRecord
from bots.chat_state_redis import RedisOutbox
from bots.constants import PIPELINE_PREFIX
from bots.queue import QueueSettings, QueueStats
from bots.queue_redis import RedisQueue
from tests.bots.redis_fixtures import connect
from tests.chaos.platform import Sent, TelegramPlatform
from tests.chaos.schedule import Action, Fault, plan
from tests.chaos.stack import Stack
from tests.fakes.llm import Behaviour
from tests.fakes.telegram import Fault as TelegramFault

PROFILES = ("mixed", "crash", "network", "providers")
"""Seed n runs PROFILES[(n - 1) % 4]: the 3-seed smoke run covers mixed, crash and network."""
CRASH = ("kill_worker", "kill_worker", "kill_redis")
NETWORK = ("blackhole", "reset", "latency")
HEALTHY = Behaviour(text=" ".join(f"word{i}" for i in range(16)), tokens_per_second=40)
PROVIDER_FAULTS = {
    "429": Behaviour(status=429, retry_after="1"),
    "500": Behaviour(status=500),
    "503": Behaviour(status=503),
    "hang_headers": Behaviour(hang="before_headers"),
    "hang_first_token": Behaviour(hang="before_first_token"),
    "stall": replace(HEALTHY, stall_after=3),
    "cut": replace(HEALTHY, cut_after=3),
    "malformed": replace(HEALTHY, malformed_after=3),
    "error_event": replace(HEALTHY, error_event_after=3),
}
TELEGRAM_FAULTS = {
    "tg_429": TelegramFault.too_many_requests(1),
    "tg_500": TelegramFault(status=500, description="Internal Server Error"),
}
MODELS = {"fast-groq": 6, "fast-gpt": 2, "mid-claude": 1, "top-gpt": 1}
"""Which model a provider fault hits, weighted: the fast tier's primary takes most traffic."""
BURST_CALLS = 2
"""A provider fault lasts this many calls: below the breakers' 5, so every mode is met."""
DRAIN_S = 45.0


def profile_of(seed: int) -> str:
    return PROFILES[(seed - 1) % len(PROFILES)]


def faults_for(profile: str, rng: random.Random, span_s: float) -> list[Fault]:
    """The seeded faults of one run of `profile` over about `span_s` seconds."""
    faults: list[Fault] = []
    process = {"crash": CRASH, "network": NETWORK, "mixed": CRASH + NETWORK}.get(profile, ())
    if process:
        faults += plan(rng, process, span_s - 1.5, lead_s=0.7)
    if profile in ("providers", "mixed"):
        faults += _layer_plan(rng, span_s - 1.0, lead_s=0.3)
    return sorted(faults, key=lambda fault: fault.at)


def _layer_plan(rng: random.Random, span_s: float, *, lead_s: float) -> list[Fault]:
    """Every provider fault mode once (on a weighted model) and both Telegram faults."""
    kinds = [*PROVIDER_FAULTS, *TELEGRAM_FAULTS]
    rng.shuffle(kinds)
    slot = span_s / len(kinds)
    models, weights = list(MODELS), list(MODELS.values())
    return [
        Fault(
            kind=kind,
            at=round(lead_s + index * slot + rng.uniform(0, slot / 2), 3),
            hold=round(slot * 0.8, 3),
            target=rng.choices(models, weights)[0] if kind in PROVIDER_FAULTS else "sendMessage",
        )
        for index, kind in enumerate(kinds)
    ]


class Chaos:
    """The fault actions on a running stack, and how many of each really happened."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.faulted_calls = 0
        self.redis_kills = 0

    def actions(self) -> dict[str, Action]:
        return {
            "kill_worker": self.kill_worker,
            "kill_redis": self.kill_redis,
            **dict.fromkeys(NETWORK, self.window),
            **dict.fromkeys(PROVIDER_FAULTS, self.provider),
            **dict.fromkeys(TELEGRAM_FAULTS, self.telegram),
        }

    async def kill_worker(self, fault: Fault) -> None:
        await self.stack.fleet.kill(int(fault.at * 1000))

    async def kill_redis(self, fault: Fault) -> None:
        await self.stack.redis.kill()
        self.redis_kills += 1
        await asyncio.sleep(fault.hold)
        await self.stack.redis.start()

    async def window(self, fault: Fault) -> None:
        proxy = self.stack.proxy
        match fault.kind:
            case "blackhole":
                proxy.blackhole()
            case "reset":
                proxy.reset_all()
            case _:
                proxy.latency(fault.level)
        await asyncio.sleep(fault.hold)
        proxy.passthrough()

    async def provider(self, fault: Fault) -> None:
        """The model misbehaves for its next `BURST_CALLS` calls (or until the slot ends)."""
        llm, model = self.stack.llm, fault.target
        before = llm.count(model)
        llm.script(model, PROVIDER_FAULTS[fault.kind])
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(fault.hold):
                while llm.count(model) < before + BURST_CALLS:  # noqa: ASYNC110 (the fake counts)
                    await asyncio.sleep(0.005)
        llm.script(model, HEALTHY)
        self.faulted_calls += llm.count(model) - before

    async def telegram(self, fault: Fault) -> None:
        self.stack.telegram.fail(fault.target, TELEGRAM_FAULTS[fault.kind])


Records = dict[int, OutboxRecord | None]


async def drain(stack: Stack, platform: TelegramPlatform) -> tuple[Records, set[str], QueueStats]:
    """Wait (bounded) until every acknowledged update is answered or dead and the stream is
    empty; then the outbox records, dead letters and queue stats, read on a connection of the
    judge's own (not through the proxy)."""
    client = await connect(stack.redis.url)
    outbox = RedisOutbox(client, prefix=PIPELINE_PREFIX)
    queue = RedisQueue(client, QueueSettings(), prefix=PIPELINE_PREFIX)
    acked = [item for item in platform.sent if item.update_id in platform.acked]
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_S):
                while not await _settled(stack, outbox, queue, acked):  # noqa: ASYNC110 (polls Redis)
                    await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)  # a late second answer would show up now
        found = await outbox.get_many([item.dedupe_key for item in platform.sent])
        dead = {entry.message.dedupe_key for entry in await queue.list_dead(count=10_000)}
        stats = await queue.stats()
    finally:
        await client.aclose()
    return dict(zip((i.update_id for i in platform.sent), found, strict=True)), dead, stats


async def _settled(stack: Stack, outbox: RedisOutbox, queue: RedisQueue, items: list[Sent]) -> bool:
    records = await outbox.get_many([item.dedupe_key for item in items])
    dead = {entry.message.dedupe_key for entry in await queue.list_dead(count=10_000)}
    messages = stack.telegram.messages
    for item, record in zip(items, records, strict=True):
        shown = (
            record is not None
            and record.status == "sent"
            and record.platform_message_id is not None
            and (item.chat_id, int(record.platform_message_id)) in messages
        )
        if not shown and item.dedupe_key not in dead:
            return False
    return (await queue.stats()).depth == 0


class Probe:
    """How slow the parts of a run got: the worst Redis PING directly and through the proxy,
    and the worst `/healthz` answer of a worker (its event loop's stalls). Diagnostics only:
    they explain a noisy run, they are never asserted."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.worst = {"redis_s": 0.0, "proxy_s": 0.0, "worker_s": 0.0}

    async def watch(self, stop: asyncio.Event) -> None:
        direct = Redis.from_url(self.stack.redis.url, socket_connect_timeout=1)
        proxied = Redis.from_url(self.stack.proxy.url(), socket_connect_timeout=1)
        try:
            async with aiohttp.ClientSession() as session:
                while not stop.is_set():
                    await self._time("redis_s", direct.ping())
                    await self._time("proxy_s", proxied.ping())
                    for proc in self.stack.fleet.current:
                        if (
                            found := re.search(r"serving on (http://\S+)", proc.text())
                        ) is not None:
                            await self._time("worker_s", _get(session, f"{found[1]}/healthz"))
                    await asyncio.sleep(0.25)
        finally:
            await direct.aclose()
            await proxied.aclose()

    async def _time(self, name: str, call: Awaitable[object]) -> None:
        began = time.monotonic()
        with contextlib.suppress(RedisError, OSError, aiohttp.ClientError):
            async with asyncio.timeout(10):
                await call
        self.worst[name] = max(self.worst[name], round(time.monotonic() - began, 3))


async def _get(session: aiohttp.ClientSession, url: str) -> None:
    async with session.get(url) as response:
        await response.read()
