"""The worker loop: bounded concurrency, claims, failures, graceful and abrupt stops; and the
runtime pieces around it (settings, stores, the webhooks' enqueue)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from bots.chat_state import ChatSettings, ChatTurns
from bots.chat_state_memory import MemoryChatGate, MemoryOutbox
from bots.errors import QueueUnavailable
from bots.metrics import Metrics
from bots.queue import Entry, QueueSettings
from bots.queue_memory import MemoryQueue
from bots.queue_redis import RedisQueue
from bots.runtime import build_stores, connect_redis, webhook_enqueue
from bots.serve_cli import build_serving, run_serve
from bots.stop_signal import RedisStopSwitch
from bots.types import InboundMessage
from bots.worker import DeadLetterAlarm, Worker, WorkerOptions
from bots.worker_settings import WorkerSettings, load_worker_settings
from routing.errors import ConfigError
from routing.policy import Policy, build_policy
from routing.router import Router
from routing.settings import load_routing_settings
from routing.signals.complexity import load_complexity_model
from tests.bots.e2e_support import serve_args
from tests.bots.pipeline_kit import until
from tests.bots.pipeline_support import TTL, message
from tests.bots.redis_fixtures import REDIS_URL, connect, delete_prefix, free_port, unique_prefix

FAST = QueueSettings(block_ms=50, min_idle_s=0.3, claim_interval_s=0.1)
CHAT_FAST = ChatSettings(lock_ttl_s=0.25, heartbeat_s=0.05, max_deliveries=2)


class Gate:
    """A turn handler that records turns and how many run at once; `hold` keeps them running."""

    def __init__(self, *, work_s: float = 0.0, fail: bool = False) -> None:
        self.work_s = work_s
        self.fail = fail
        self.hold = asyncio.Event()
        self.hold.set()
        self.running = 0
        self.most = 0
        self.turns: list[str] = []

    async def __call__(self, entries: tuple[Entry, ...], /) -> str:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(self.work_s)
            await self.hold.wait()
            if self.fail:
                raise RuntimeError("the model provider exploded")
            self.turns.extend(entry.message.dedupe_key for entry in entries)
            return "sent"
        finally:
            self.running -= 1


def worker_on(
    queue: MemoryQueue,
    gate: Gate,
    *,
    concurrency: int = 4,
    grace_s: float = 5.0,
    alarm: Callable[[Entry, str], None] | None = None,
    metrics: Metrics | None = None,
) -> Worker:
    watched = DeadLetterAlarm(queue, alarm or (lambda entry, reason: None), metrics=metrics)
    turns = ChatTurns(
        queue=watched,
        gate=MemoryChatGate(CHAT_FAST),
        outbox=MemoryOutbox(),
        handler=gate,
        settings=CHAT_FAST,
    )
    options = WorkerOptions(
        consumer="w1", concurrency=concurrency, claim_interval_s=0.1, shutdown_grace_s=grace_s
    )
    return Worker(queue=watched, handler=turns, options=options)


async def fill(queue: MemoryQueue, chats: int) -> None:
    for n in range(chats):
        assert await queue.enqueue(message(f"c{n}", 1), TTL)


async def test_turns_run_at_most_concurrency_at_once_and_all_are_answered() -> None:
    queue, gate = MemoryQueue(FAST), Gate(work_s=0.05)
    worker = worker_on(queue, gate, concurrency=3)
    running = asyncio.create_task(worker.run())
    await fill(queue, 10)

    await until(lambda: len(gate.turns) == 10)
    worker.stop()
    await running

    assert gate.most == 3
    assert (await queue.stats()).depth == 0
    assert worker.running is False


async def test_a_graceful_stop_finishes_in_flight_turns() -> None:
    queue, gate = MemoryQueue(FAST), Gate()
    gate.hold.clear()
    worker = worker_on(queue, gate)
    running = asyncio.create_task(worker.run())
    await fill(queue, 2)
    await until(lambda: gate.running == 2)

    worker.stop()
    await asyncio.sleep(0.1)
    assert worker.in_flight == 2
    gate.hold.set()
    await running

    assert sorted(gate.turns) == ["tg:c0:1", "tg:c1:1"]
    assert (await queue.stats()).depth == 0


async def test_turns_still_running_after_the_grace_period_stay_queued() -> None:
    queue, gate = MemoryQueue(FAST), Gate()
    gate.hold.clear()
    worker = worker_on(queue, gate, grace_s=0.1)
    running = asyncio.create_task(worker.run())
    await fill(queue, 2)
    await until(lambda: gate.running == 2)

    worker.stop()
    await running

    stats = await queue.stats()
    assert (gate.turns, stats.depth, stats.pending) == ([], 2, 2)


async def test_a_cancelled_worker_cancels_its_turns_at_once() -> None:
    queue, gate = MemoryQueue(FAST), Gate()
    gate.hold.clear()
    worker = worker_on(queue, gate)
    running = asyncio.create_task(worker.run())
    await fill(queue, 1)
    await until(lambda: gate.running == 1)

    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running

    assert (gate.running, worker.in_flight, (await queue.stats()).pending) == (0, 0, 1)


async def test_a_dead_workers_entry_is_claimed_and_a_failing_one_dead_lettered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue, gate, metrics = MemoryQueue(FAST), Gate(fail=True), Metrics()
    dead: list[tuple[str, str]] = []
    assert await queue.enqueue(message("c1", 1), TTL)
    assert await queue.read("dead-worker") != ()  # taken, then its worker died
    worker = worker_on(
        queue,
        gate,
        alarm=lambda e, why: dead.append((e.message.dedupe_key, why)),
        metrics=metrics,
    )
    running = asyncio.create_task(worker.run())

    await until(lambda: bool(dead), timeout_s=10)
    worker.stop()
    await running

    assert dead == [("tg:c1:1", "max_deliveries")]
    assert (await queue.stats()).dead == 1
    assert metrics.registry.get_sample_value("tierbot_dead_letters_total") == 1
    failures = [r for r in caplog.records if "turn failed, entry left" in r.getMessage()]
    assert len(failures) == 1  # delivery 2 (1 went to the dead worker); 3 is dead-lettered


async def test_an_unreachable_queue_is_retried_with_backoff_until_stopped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
    queue = RedisQueue(client, QueueSettings(timeout_s=0.3, block_ms=50))
    options = WorkerOptions(consumer="w1", claim_interval_s=0.1)
    worker = Worker(
        queue=queue,
        handler=ChatTurns(
            queue=queue, gate=MemoryChatGate(), outbox=MemoryOutbox(), handler=Gate()
        ),
        options=options,
    )
    caplog.set_level(logging.DEBUG, "bots.worker")
    running = asyncio.create_task(worker.run())

    await until(lambda: "queue unavailable (try 3)" in caplog.text)
    worker.stop()
    await running
    await client.aclose()

    assert "queue unavailable (try 1)" in caplog.text


def test_worker_settings_are_checked_and_name_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_worker_settings().redis_url is None
    monkeypatch.setenv("REDIS_URL", "http://localhost:6379")
    with pytest.raises(ConfigError, match=r"^invalid configuration: REDIS_URL: must start with"):
        load_worker_settings()
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("TIERBOT_CHAT_LOCK_TTL_SECONDS", "90")
    with pytest.raises(ConfigError, match="TIERBOT_CHAT_LOCK_TTL_SECONDS must be below"):
        load_worker_settings()
    monkeypatch.setenv("TIERBOT_CHAT_LOCK_TTL_SECONDS", "3")
    monkeypatch.setenv("TIERBOT_HISTORY_TTL_HOURS", "2")
    settings = load_worker_settings()
    assert (settings.chat().heartbeat_s, settings.history().ttl_s) == (1.0, 7200.0)


async def test_the_webhooks_enqueue_presses_the_drafts_stop_switch_before_queueing() -> None:
    stores = build_stores(WorkerSettings(), None)
    enqueue = webhook_enqueue(stores)
    await stores.stop.open("c1", "17")
    await stores.stop.open("c1", "18")
    stop = InboundMessage(
        channel="telegram",
        dedupe_key="tg:9",
        chat_id="c1",
        user_id="c1",
        kind="stop",
        payload="17",
    )
    stale = replace(stop, dedupe_key="tg:10", payload="16")

    assert [await enqueue(m, TTL) for m in (stop, stale, message("c2"))] == [True] * 3

    assert (await stores.stop.stopped("c1", "17"), await stores.stop.stopped("c1", "18")) == (
        True,
        False,
    )
    assert stores.stop.ignored == 1
    assert (await stores.queue.stats()).depth == 3


async def test_an_unreachable_stop_switch_is_an_unavailable_queue() -> None:
    settings = WorkerSettings.model_validate({"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    client = connect_redis(settings)
    assert client is not None
    stores = build_stores(settings, client)
    assert isinstance(stores.stop, RedisStopSwitch)
    stop = InboundMessage(
        channel="telegram", dedupe_key="tg:9", chat_id="c1", user_id="c1", kind="stop", payload="1"
    )
    try:
        with pytest.raises(QueueUnavailable, match="stop switch"):
            await webhook_enqueue(stores)(stop, TTL)
    finally:
        await client.aclose()


def _routing() -> tuple[Policy, Router]:
    policy = build_policy(load_routing_settings())
    return policy, Router(policy=policy, complexity=load_complexity_model())


def test_split_roles_need_redis_and_a_bad_database_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    policy, router = _routing()

    assert run_serve(serve_args("--role", "web", "--offline"), policy=policy, router=router) == 2
    assert "--role web needs REDIS_URL" in capsys.readouterr().err
    monkeypatch.setenv("DATABASE_URL", f"postgresql+asyncpg://tierbot@127.0.0.1:{free_port()}/x")
    args = serve_args("--offline", "--host", "127.0.0.1", "--port", "0")
    assert run_serve(args, policy=policy, router=router) == 1
    assert "tierbot: cannot open the feedback database" in capsys.readouterr().err


async def test_a_worker_process_answers_health_and_readiness(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    prefix = unique_prefix("role")
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    monkeypatch.setenv("TIERBOT_REDIS_KEY_PREFIX", prefix)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/f.db")
    policy, router = _routing()
    serving = build_serving(
        serve_args("--role", "worker", "--offline"), policy=policy, router=router
    )
    assert (serving.host, serving.port) == ("127.0.0.1", 8081)
    try:
        async with (
            TestServer(serving.app, host="127.0.0.1", port=0) as server,
            aiohttp.ClientSession() as session,
        ):
            async with session.get(server.make_url("/healthz")) as health:
                assert health.status == 200
            async with session.get(server.make_url("/readyz")) as ready:
                body = await ready.json()
            assert (ready.status, body["queue"], body["worker"]) == (200, "ok", "running")
            async with session.get(server.make_url("/v1/models")) as api:
                assert api.status == 404  # a worker serves no API
    finally:
        client = await connect()
        await delete_prefix(client, prefix)
        await client.aclose()
