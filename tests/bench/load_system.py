"""The running system of the load benchmark, as OS processes on 127.0.0.1: a private
redis-server, a fresh PostgreSQL database, the fakes process, `tierbot serve --role web` and
`--role worker` processes configured by environment, and a bare aiohttp "return 200" server
(the acknowledgement baseline). Everything started here is stopped, and the database dropped,
when the `System` block ends, however it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bots.constants import PIPELINE_PREFIX
from bots.queue import QueueStats
from bots.queue_redis import RedisQueue
from tests.bench.endpoint_procs import die_with_parent, start_child, stop_children
from tests.bench.load_fakes import BOT_TOKEN, LLM_KEY, WA_PHONE, WA_TOKEN
from tests.bench.load_procs import Proc, drain, free_port

REDIS_SERVER = "/usr/bin/redis-server"
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
TG_SECRET = "load-bench-tg-secret_0123"
WA_SECRET = "load-bench-wa-app-secret"
ADMIN_TOKEN = "load-bench-admin-token-0123456789"
ID_HASH_KEY = "load-bench-id-hash-key-0123456789"
START_TIMEOUT_S = 180.0
"""Generous: a busy 2-core machine takes tens of seconds to import the provider SDKs."""
_OURS = (
    "TIERBOT_",
    "OPENAI_",
    "ANTHROPIC_",
    "GROQ_",
    "REDIS_",
    "DATABASE_",
    "TELEGRAM_",
    "WHATSAPP_",
)


class SystemFailure(Exception):
    """A process of the system did not start, or stopped before its time."""


def tierbot_env(
    *,
    fakes: Mapping[str, str],
    redis_url: str,
    database_url: str,
    concurrency: int,
    overrides: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """This environment without any tierbot or provider setting, plus the benchmark's: every
    outside service is a fake on loopback; limits high enough not to block the load; then
    `overrides`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
    return (
        env
        | {
            "OPENAI_API_KEY": LLM_KEY,
            "OPENAI_BASE_URL": fakes["openai"],
            "ANTHROPIC_API_KEY": LLM_KEY,
            "ANTHROPIC_BASE_URL": fakes["llm"],
            "GROQ_API_KEY": LLM_KEY,
            "GROQ_BASE_URL": fakes["llm"],
            "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
            "TELEGRAM_WEBHOOK_SECRET": TG_SECRET,
            "TELEGRAM_API_BASE": fakes["telegram"],
            "WHATSAPP_ACCESS_TOKEN": WA_TOKEN,
            "WHATSAPP_APP_SECRET": WA_SECRET,
            "WHATSAPP_VERIFY_TOKEN": "load-bench-verify",
            "WHATSAPP_PHONE_NUMBER_ID": WA_PHONE,
            "WHATSAPP_API_BASE": fakes["whatsapp"],
            "REDIS_URL": redis_url,
            "DATABASE_URL": database_url,
            "TIERBOT_ID_HASH_KEY": ID_HASH_KEY,
            "TIERBOT_ADMIN_TOKEN": ADMIN_TOKEN,
            "TIERBOT_WORKER_CONCURRENCY": str(concurrency),
            "TIERBOT_RATE_LIMIT_PER_MINUTE": "100000",
            "TIERBOT_DAILY_BUDGET_USD": "1000000",
        }
        | dict(overrides or {})
    )


class System:
    """Owns every process and the database of one run (see `running_system`)."""

    def __init__(self, scratch: Path, log_dir: Path | None = None) -> None:
        self.scratch = scratch
        self.log_dir = log_dir
        """Each process's whole output goes to NAME.log here, when set."""
        self.procs: list[Proc] = []
        self.fakes: Proc | None = None
        self.fake_urls: dict[str, str] = {}
        self.webs: list[Proc] = []
        self.workers: list[Proc] = []
        self.baseline: Proc | None = None
        self.redis_url = ""
        self.redis_version = ""
        self.database = ""
        self.postgres_version = ""
        self._drains: list[asyncio.Task[None]] = []

    @property
    def database_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:5432/{self.database}"

    def _own(
        self, name: str, process: asyncio.subprocess.Process, port: int = 0, *, stdout: bool = True
    ) -> Proc:
        """Keep `process`; its stderr (and stdout, unless someone else reads it) is drained."""
        proc = Proc(name=name, process=process, port=port)
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            proc.log = (self.log_dir / f"{name}.log").open("w", encoding="utf-8")
        self.procs.append(proc)
        self._drains.append(asyncio.create_task(drain(proc, process.stderr)))
        if stdout:
            self._drains.append(asyncio.create_task(drain(proc, process.stdout)))
        return proc

    async def start_fakes(self, script: Mapping[str, object]) -> None:
        process = await start_child("tests.bench.load_fakes", "--script", json.dumps(script))
        self.fakes = self._own("fakes", process, stdout=False)
        assert process.stdout is not None
        async with asyncio.timeout(START_TIMEOUT_S):
            line = await process.stdout.readline()
        if not line:
            await asyncio.sleep(0.2)
            raise SystemFailure("the fakes did not start:\n" + "\n".join(self.fakes.tail))
        self.fake_urls = json.loads(line)

    async def start_redis(self) -> None:
        if shutil.which(REDIS_SERVER) is None:
            raise SystemFailure(f"{REDIS_SERVER} is missing (apt-get install redis-server)")
        port = free_port()
        process = await asyncio.create_subprocess_exec(
            *(REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", ""),
            *("--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(self.scratch)),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=die_with_parent,
        )
        self._own("redis-server", process, port).quiet_until = "Ready to accept connections"
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        client = Redis.from_url(self.redis_url, socket_connect_timeout=0.5)
        try:
            async with asyncio.timeout(10):
                while True:
                    try:
                        info = await client.info("server")
                        break
                    except (OSError, RedisError):
                        await asyncio.sleep(0.05)
        finally:
            await client.aclose()
        self.redis_version = str(info.get("redis_version", "?"))

    async def create_database(self) -> None:
        name = f"tierbot_load_{uuid.uuid4().hex[:10]}"
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
            self.database = name
            self.postgres_version = str(await admin.fetchval("SHOW server_version"))
        finally:
            await admin.close()

    async def drop_database(self) -> None:
        if not self.database:
            return
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            self.database = ""
        finally:
            await admin.close()

    async def start_tierbot(
        self, *, webs: int, workers: int, concurrency: int, overrides: Mapping[str, str]
    ) -> None:
        """Start the web and worker processes and wait until each says it is ready."""
        env = tierbot_env(
            fakes=self.fake_urls,
            redis_url=self.redis_url,
            database_url=f"postgresql+asyncpg://postgres@127.0.0.1:5432/{self.database}",
            concurrency=concurrency,
            overrides=overrides,
        )
        for index in range(workers):
            port = free_port()
            process = await start_child(
                "bots", "serve", "--role", "worker", "--port", str(port), env=env, stdin=False
            )
            self.workers.append(self._own(f"worker-{index + 1}", process, port))
        for index in range(webs):
            port = free_port()
            own = env | {"TIERBOT_ADMIN_PORT": str(free_port())}
            process = await start_child(
                "bots", "serve", "--role", "web", "--port", str(port), env=own, stdin=False
            )
            self.webs.append(self._own(f"web-{index + 1}", process, port))
        async with asyncio.TaskGroup() as group:
            for proc in (*self.webs, *self.workers):
                group.create_task(self._ready(proc))

    async def start_baseline(self) -> None:
        port = free_port()
        process = await start_child("tests.bench.load_baseline", "--port", str(port), stdin=False)
        self.baseline = self._own("baseline", process, port)
        await self._ready(self.baseline)

    async def _ready(self, proc: Proc) -> None:
        url = f"http://127.0.0.1:{proc.port}/readyz"
        last = "no answer"
        try:
            async with asyncio.timeout(START_TIMEOUT_S), aiohttp.ClientSession() as session:
                while proc.process.returncode is None:
                    with contextlib.suppress(aiohttp.ClientError):
                        async with session.get(url) as probe:
                            if probe.status == 200:
                                return
                            last = f"{probe.status} {await probe.text()}"
                    await asyncio.sleep(0.1)
        except TimeoutError:
            pass
        await asyncio.sleep(0.2)
        raise SystemFailure(
            f"{proc.name} is not ready ({last}); its stderr ends with:\n" + "\n".join(proc.tail)
        )

    async def first_exit(self) -> str:
        """Wait until a process of the system exits; say which, and how."""
        waits = {asyncio.create_task(p.process.wait()): p for p in self.procs}
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        proc = waits[done.pop()]
        tail = "\n".join(proc.tail)
        return f"{proc.name} exited with status {proc.process.returncode}; its output ends:\n{tail}"

    async def settle(self, timeout_s: float) -> tuple[QueueStats, float]:
        """Wait (at most `timeout_s`) until the queue holds nothing unacknowledged; return its
        last stats and the seconds waited."""
        client = Redis.from_url(self.redis_url, socket_connect_timeout=0.5)
        queue = RedisQueue(client, prefix=PIPELINE_PREFIX)
        began = asyncio.get_running_loop().time()
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    while True:
                        stats = await queue.stats()
                        if stats.depth == 0:
                            break
                        await asyncio.sleep(0.25)
            stats = await queue.stats()
        finally:
            await client.aclose()
        return stats, asyncio.get_running_loop().time() - began

    async def stop_tierbot(self) -> None:
        """SIGTERM the web and worker processes (workers flush their feedback log) and wait."""
        await stop_children([p.process for p in (*self.webs, *self.workers)])

    async def aclose(self) -> None:
        """Stop everything still running (SIGTERM, then SIGKILL after 5 s), drop the database."""
        try:
            fakes = self.fakes
            if fakes is not None and fakes.process.stdin is not None:
                fakes.process.stdin.close()
            await stop_children([p.process for p in reversed(self.procs)])
            for task in self._drains:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(2):
                        await task
            for proc in self.procs:
                if proc.log is not None:
                    proc.log.close()
        finally:
            await self.drop_database()


@dataclass(frozen=True, slots=True, kw_only=True)
class Layout:
    """How many tierbot processes, and how they are configured."""

    webs: int
    workers: int
    concurrency: int
    overrides: Mapping[str, str]
    """Extra tierbot variables, over the benchmark's."""
    log_dir: Path | None = None


@asynccontextmanager
async def running_system(layout: Layout, script: Mapping[str, object]) -> AsyncIterator[System]:
    """The whole system, ready for load; stopped and its database dropped afterwards."""
    async with AsyncExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tierbot-load-")))
        system = System(scratch, layout.log_dir)
        stack.push_async_callback(system.aclose)
        await system.create_database()
        async with asyncio.TaskGroup() as group:  # a failure cancels the other starts
            group.create_task(system.start_redis())
            group.create_task(system.start_fakes(script))
        async with asyncio.TaskGroup() as group:
            group.create_task(system.start_baseline())
            group.create_task(
                system.start_tierbot(
                    webs=layout.webs,
                    workers=layout.workers,
                    concurrency=layout.concurrency,
                    overrides=layout.overrides,
                )
            )
        yield system
