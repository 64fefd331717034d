"""Chaos on the real thing: Redis down or black-holed under the webhook (503 within 1 s, never
200, and back without help), and a worker process SIGKILLed mid-stream (another worker answers;
the chat gets exactly one final message).

The web app runs in the test process; worker processes run `python -m bots serve --role worker`
against the fakes, which run in the test process so every worker reaches the same ones. A
killed Redis is a private `redis-server` (a process crash, no persistence).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.bots.conftest import LLM_KEY
from tests.bots.e2e_support import Service, environment, start
from tests.bots.pipeline_kit import BOT_TOKEN, until
from tests.bots.redis_fixtures import (  # noqa: F401
    REDIS_URL,
    ROOT,
    Blackhole,
    PrivateRedis,
    connect,
    delete_prefix,
    fixture_private_redis,
    unique_prefix,
)
from tests.fakes.llm import Behaviour, FakeLLM
from tests.fakes.telegram import FakeTelegram
from tests.fakes.whatsapp import FakeWhatsApp

RECLAIM_BOUND_S = 4.0
"""T4: min_idle (2 s) + claim interval (0.5 s) + the survivor's read/claim cycle and slack."""
WORKER_TIMINGS = {
    "TIERBOT_QUEUE_MIN_IDLE_SECONDS": "2",
    "TIERBOT_QUEUE_CLAIM_INTERVAL_SECONDS": "0.5",
    "TIERBOT_CHAT_LOCK_TTL_SECONDS": "1",
    "TIERBOT_WORKER_SHUTDOWN_GRACE_SECONDS": "2",
}


@asynccontextmanager
async def fakes(tmp_path: Path) -> AsyncIterator[tuple[FakeLLM, FakeTelegram, FakeWhatsApp]]:
    async with (
        FakeLLM(api_key=LLM_KEY) as llm,
        FakeTelegram(token=BOT_TOKEN) as telegram,
        FakeWhatsApp(access_token="EAAFakeAccessToken", phone_number_id="1122334455667") as wa,
    ):
        yield llm, telegram, wa


def service_of(
    llm: FakeLLM, telegram: FakeTelegram, whatsapp: FakeWhatsApp, web: TestServer, db: Path
) -> Service:
    return Service(
        llm=llm,
        telegram=telegram,
        whatsapp=whatsapp,
        web=web,
        database=db,
        backend="redis",
        updates=itertools.count(5000),
    )


async def timed_post(service: Service) -> tuple[int, float]:
    began = time.monotonic()
    status = await service.post_telegram(service.tg_text("Are you there?"))
    return status, time.monotonic() - began


async def readiness(web: TestServer) -> int:
    async with aiohttp.ClientSession() as session, session.get(web.make_url("/readyz")) as ready:
        return ready.status


async def test_a_dead_redis_gets_503_within_a_second_and_recovers_without_help(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, private_redis: PrivateRedis
) -> None:
    async with fakes(tmp_path) as (llm, telegram, whatsapp):
        for name, value in environment(llm, telegram, whatsapp, tmp_path / "f.db").items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("REDIS_URL", private_redis.url)
        web = await start("web")
        service = service_of(llm, telegram, whatsapp, web, tmp_path / "f.db")
        try:
            assert (await timed_post(service))[0] == 200
            await private_redis.kill()
            down = [await timed_post(service) for _ in range(3)]
            unready = await readiness(web)
            await private_redis.start()
            back = await timed_post(service)
        finally:
            await web.close()

    assert [status for status, _ in down] == [503, 503, 503]
    assert max(took for _, took in down) < 1.0
    assert unready == 503
    assert back[0] == 200


async def test_a_black_holed_redis_gets_503_within_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fakes(tmp_path) as (llm, telegram, whatsapp), Blackhole() as hole:
        for name, value in environment(llm, telegram, whatsapp, tmp_path / "f.db").items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{hole.port}/0")
        web = await start("web", ready=False)
        service = service_of(llm, telegram, whatsapp, web, tmp_path / "f.db")
        try:
            results = [await timed_post(service) for _ in range(2)]
            began = time.monotonic()
            unready = await readiness(web)
            readiness_took = time.monotonic() - began
        finally:
            await web.close()

    assert [status for status, _ in results] == [503, 503]
    assert max(took for _, took in results) < 1.0
    assert (unready, readiness_took < 1.5) == (503, True)


class WorkerProcess:
    """`python -m bots serve --role worker` with its stderr read into `lines`."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            self.lines.append(line.decode())

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    async def stop(self, signum: int) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signum)
        code = await self.process.wait()
        await self._reader
        return code


async def spawn(env: Mapping[str, str]) -> WorkerProcess:
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bots", "--log-level", "INFO", "serve", "--role", "worker"),
        *("--port", "0"),
        cwd=ROOT,
        env=dict(env),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    return WorkerProcess(process)


async def test_a_worker_killed_mid_stream_is_replaced_and_the_chat_gets_one_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The victim is a worker process, alone in the group when the message comes; the other
    worker (in the test process) joins while it streams, and takes over once it is killed."""
    prefix = unique_prefix("chaos")
    async with fakes(tmp_path) as (llm, telegram, whatsapp):
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIERBOT_")}
        env |= environment(llm, telegram, whatsapp, tmp_path / "f.db") | WORKER_TIMINGS
        env |= {"REDIS_URL": REDIS_URL, "TIERBOT_REDIS_KEY_PREFIX": prefix}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        words = " ".join(f"word{i}" for i in range(50))
        llm.script("fast-groq", Behaviour(text=words, tokens_per_second=20))
        victim = await spawn(env)
        web = await start("web")
        service = service_of(llm, telegram, whatsapp, web, tmp_path / "f.db")
        survivor: TestServer | None = None
        try:
            await until(lambda: victim.said("serving on"), timeout_s=60)
            assert await service.post_telegram(service.tg_text("Tell me a story")) == 200
            await until(lambda: len(telegram.calls_to("sendMessageDraft")) >= 1)
            survivor = await start("worker")
            killed = await victim.stop(signal.SIGKILL)
            began = time.monotonic()
            await until(lambda: llm.count("fast-groq") == 2, timeout_s=10)
            reclaimed_after = time.monotonic() - began
            await until(lambda: len(service.tg_finals()) >= 1, timeout_s=15)
            await asyncio.sleep(0.5)
            finals = service.tg_finals()
        finally:
            await victim.stop(signal.SIGKILL)
            if survivor is not None:
                await survivor.close()
            await web.close()
            client = await connect()
            await delete_prefix(client, prefix)
            await client.aclose()

    assert victim.said("answering chat=")
    assert killed == -signal.SIGKILL
    assert reclaimed_after < RECLAIM_BOUND_S, reclaimed_after
    assert len(finals) == 1
    assert finals[0].params["text"] == words
    assert llm.count("fast-groq") == 2
