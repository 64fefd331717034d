"""The whole service for the full-pipeline chaos runs: a durable private redis-server behind the
fault proxy, the fake LLM and Telegram servers, our web app in this process (the real webhook
handler, built from the environment as `tierbot serve --role web` builds it) and worker
processes running `tierbot serve --role worker`, forked by the launcher so they can be
SIGKILLed and replaced quickly. Every Redis client of the service goes through the proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from tests.bots.conftest import LLM_KEY
from tests.bots.e2e_support import WA_PHONE, WA_TOKEN, environment, start
from tests.bots.pipeline_kit import BOT_TOKEN
from tests.chaos.fault_proxy import FaultProxy
from tests.chaos.services import DurableRedis, Fleet, Zygote, clean_environ
from tests.fakes.llm import FakeLLM
from tests.fakes.telegram import FakeTelegram
from tests.fakes.whatsapp import FakeWhatsApp

SETTINGS = {
    "TIERBOT_QUEUE_MIN_IDLE_SECONDS": "4",
    "TIERBOT_QUEUE_CLAIM_INTERVAL_SECONDS": "0.5",
    "TIERBOT_CHAT_LOCK_TTL_SECONDS": "3",
    "TIERBOT_WORKER_SHUTDOWN_GRACE_SECONDS": "2",
    "TIERBOT_RATE_LIMIT_PER_MINUTE": "100000",
    "TIERBOT_DAILY_BUDGET_USD": "100000",
    "TIERBOT_TTFT_SLO_SECONDS": "2",
    "TIERBOT_INTER_TOKEN_TIMEOUT_SECONDS": "1.5",
    "TIERBOT_TOTAL_TIMEOUT_SECONDS": "10",
    "TIERBOT_CONNECT_TIMEOUT_SECONDS": "1",
}
"""Fast recovery (a dead worker's messages are claimed after 4 s; T4's test setting is 2 s, but
with its 1 s chat lock a worker whose event loop stalls for 0.7 s loses its chats, and on this
loaded 2-core machine workers stall for 1-4 s: their turns would then stop and wait for the
chats' new holders, see `test_duplicate_paths.py`, slowing the run down), short provider
deadlines so hung and stalled streams fall back within the run, and limits no test user
reaches."""
WORKER_ARGV = ["--log-level", "INFO", "serve", "--role", "worker", "--port", "0"]
READY = "serving on"
ID_KEY = b"e2e-id-hash-key-0123456789"
"""`TIERBOT_ID_HASH_KEY` of `environment()`: turn ids are keyed hashes under it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Stack:
    """The running service and what surrounds it."""

    redis: DurableRedis
    proxy: FaultProxy
    llm: FakeLLM
    telegram: FakeTelegram
    web: TestServer
    fleet: Fleet

    @property
    def webhook(self) -> str:
        return str(self.web.make_url("/telegram/webhook"))


@asynccontextmanager
async def running_stack(
    directory: Path, monkeypatch: pytest.MonkeyPatch, zygote: Zygote, *, workers: int
) -> AsyncIterator[Stack]:
    """Start everything (workers ready); stop and kill everything at the end."""
    redis = DurableRedis(directory)
    await redis.start()
    try:
        async with (
            FaultProxy(redis.port) as proxy,
            FakeLLM(api_key=LLM_KEY) as llm,
            FakeTelegram(token=BOT_TOKEN) as telegram,
            FakeWhatsApp(access_token=WA_TOKEN, phone_number_id=WA_PHONE) as whatsapp,
        ):
            shared = environment(llm, telegram, whatsapp, directory / "web.sqlite3")
            shared |= SETTINGS | {"REDIS_URL": proxy.url()}
            for name, value in shared.items():
                monkeypatch.setenv(name, value)

            def launch(name: str) -> tuple[str, list[str], dict[str, str]]:
                database = f"sqlite+aiosqlite:///{directory / name}.sqlite3"
                env = clean_environ() | shared | {"DATABASE_URL": database}
                return "bots.__main__", WORKER_ARGV, env

            fleet = Fleet(zygote, directory, launch, ready=READY)
            web = await start("web")
            try:
                await zygote.warm()
                await fleet.start(workers)
                yield Stack(
                    redis=redis, proxy=proxy, llm=llm, telegram=telegram, web=web, fleet=fleet
                )
            finally:
                await fleet.close()
                await web.close()
    finally:
        await redis.kill()
