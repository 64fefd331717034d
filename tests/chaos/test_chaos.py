"""Chaos on the whole service, one run per seed (reliability T2-T5, and T9/T10 seen from the chat).

Telegram's side (`tests.chaos.platform`) has 24 users write 6 messages each over ~7 s to our
real webhook handler (this process), retrying every update until it gets a 2xx and delivering
some again. Three `tierbot serve --role worker` processes answer through the fake LLM into the
fake Telegram. Redis is a private redis-server with AOF (`appendfsync always`); the web app and
the workers reach it through the fault proxy.

Each seed runs one fault profile (`tests.chaos.scenario`: seed 1 mixed, 2 crash, 3 network,
4 providers, 5 mixed, ...), its faults at seeded times: worker SIGKILLs (each replaced at once,
as a supervisor would), a SIGKILL of redis-server and its restart (a process crash: AOF replay
and reconnection, not fsync durability), proxy blackhole, reset and latency windows, and every
provider failure mode for the next two calls of a model, plus a 429 and a 500 from Telegram.

Pass: every update is acknowledged in the end (no operator action), and every acknowledged
one is answered (one final message in the chat) or dead-lettered; no turn is answered twice
unless a worker logged the retry; turns reach each chat in order; the stream ends empty and no
pending entry is ever dropped.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest

from tests.chaos.conftest import Report
from tests.chaos.platform import TelegramPlatform
from tests.chaos.scenario import HEALTHY, MODELS, Chaos, Probe, drain, faults_for, profile_of
from tests.chaos.schedule import LoopLag, play
from tests.chaos.services import LOCK_LOST, REDO, Zygote
from tests.chaos.stack import ID_KEY, running_stack
from tests.chaos.verdict import judge

CHATS, PER_CHAT, WORKERS = 24, 6, 3
SPAN_S = 7.0


@pytest.mark.timeout(180)
async def test_every_acknowledged_message_is_answered_once_through_the_chaos(
    seed: int,
    service_launcher: Zygote,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    report: Report,
) -> None:
    rng = random.Random(seed)
    profile = profile_of(seed)
    lag = LoopLag()
    async with running_stack(tmp_path, monkeypatch, service_launcher, workers=WORKERS) as stack:
        for model in MODELS:
            stack.llm.script(model, HEALTHY)
        platform = TelegramPlatform(stack.webhook, random.Random(rng.random()))
        chaos = Chaos(stack)
        faults = faults_for(profile, rng, SPAN_S)
        stop = asyncio.Event()
        probe = Probe(stack)
        began = time.monotonic()
        async with asyncio.TaskGroup() as watchers:
            watchers.create_task(lag.watch(stop))
            watchers.create_task(probe.watch(stop))
            try:
                async with asyncio.TaskGroup() as group:
                    chats = list(range(1001, 1001 + CHATS))
                    group.create_task(platform.run(chats, PER_CHAT, SPAN_S))
                    group.create_task(play(faults, chaos.actions(), start=began))
                await stack.fleet.ready()
                records, dead, stats = await drain(stack, platform)
            finally:
                stop.set()
        elapsed = time.monotonic() - began
        figures = judge(
            sent=platform.sent,
            acked=platform.acked,
            records=records,
            dead=dead,
            telegram=stack.telegram,
            id_key=ID_KEY,
        )
        redos, lost_locks = stack.fleet.count(REDO), stack.fleet.count(LOCK_LOST)
        worker_kills = stack.fleet.kills
    row: dict[str, object] = {
        "profile": profile,
        **figures.row(),
        "logged_redos": redos,
        "locks_lost": lost_locks,
        "replays": platform.replays,
        "webhook": dict(sorted(platform.statuses.items())),
        "slowest_webhook_s": round(platform.slowest_s, 2),
        "worker_kills": worker_kills,
        "redis_kills": chaos.redis_kills,
        "faulted_llm_calls": chaos.faulted_calls,
        "dropped_pending": stats.dropped_pending,
        "loop_lag_s": round(lag.worst_s, 2),
        **probe.worst,
        "elapsed_s": round(elapsed, 1),
        "faults": " ".join(fault.describe() for fault in faults),
    }
    report(row)
    assert figures.acked == figures.sent, row  # recovered without an operator
    assert figures.lost == 0, row
    assert figures.phantom == 0, row
    assert figures.duplicated <= redos, row  # a second answer is never silent
    assert figures.inversions == 0, row
    assert (stats.depth, stats.pending, stats.dropped_pending) == (0, 0, 0), stats
