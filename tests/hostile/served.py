"""The whole service on loopback in a thread of its own, for clients that block (schemathesis
sends with `requests`): the public app as `tierbot serve --role web` builds it, with both chat
channels on, `/v1` keyed, the queue in the machine's Redis under a prefix of its own and the
admin listener on its own port over a seeded feedback log, in front of the loopback fakes.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bots.admin import AdminListener
from bots.serve_cli import build_serving
from routing.policy import build_policy
from routing.router import Router
from routing.settings import load_routing_settings
from routing.signals.complexity import load_complexity_model
from tests.bots.admin_support import TOKEN, feedback_settings, seed
from tests.bots.conftest import API_KEYS, LLM_KEY
from tests.bots.e2e_support import WA_PHONE, WA_SECRET, WA_TOKEN, environment, serve_args
from tests.bots.pipeline_kit import BOT_TOKEN
from tests.bots.redis_fixtures import REDIS_URL, connect, delete_prefix, unique_prefix
from tests.fakes.llm import FakeLLM
from tests.fakes.telegram import FakeTelegram
from tests.fakes.whatsapp import FakeWhatsApp

START_TIMEOUT_S = 30.0
API_KEY = API_KEYS[0]
ADMIN_TOKEN = TOKEN


@dataclass(frozen=True, slots=True, kw_only=True)
class Served:
    """Where the two listeners answer."""

    public: str
    admin: str


def sign(body: bytes) -> str:
    """The X-Hub-Signature-256 value Meta sends for `body`."""
    return "sha256=" + hmac.new(WA_SECRET.encode(), body, hashlib.sha256).hexdigest()


@contextmanager
def serve_in_thread(tmp_path: Path) -> Iterator[Served]:
    """Run the service in a thread with its own event loop until the block ends."""
    ready = threading.Event()
    found: list[Served | BaseException] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        try:
            async with _service(tmp_path) as served:
                found.append(served)
                ready.set()
                await stop.wait()
        except BaseException as exc:  # handed to the waiting test thread, which raises it
            found.append(exc)
            ready.set()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), name="service")
    thread.start()
    try:
        if not ready.wait(START_TIMEOUT_S):
            raise TimeoutError("the service did not start")
        if isinstance(found[0], BaseException):
            raise found[0]
        yield found[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(START_TIMEOUT_S)
        if not thread.is_alive():
            loop.close()
    if isinstance(found[-1], BaseException):  # the service failed while stopping
        raise found[-1]


@asynccontextmanager
async def _service(tmp_path: Path) -> AsyncIterator[Served]:
    prefix = unique_prefix("hostile")
    async with AsyncExitStack() as stack:
        llm = await stack.enter_async_context(FakeLLM(api_key=LLM_KEY))
        telegram = await stack.enter_async_context(FakeTelegram(token=BOT_TOKEN))
        whatsapp = await stack.enter_async_context(
            FakeWhatsApp(access_token=WA_TOKEN, phone_number_id=WA_PHONE)
        )
        feedback = feedback_settings(tmp_path)
        await seed(feedback)
        database = tmp_path / "feedback.sqlite3"
        env = environment(llm, telegram, whatsapp, database) | {
            "REDIS_URL": REDIS_URL,
            "TIERBOT_REDIS_KEY_PREFIX": prefix,
            "TIERBOT_API_KEYS": ",".join(API_KEYS),
            "TIERBOT_ADMIN_TOKEN": ADMIN_TOKEN,
            "TIERBOT_ADMIN_PORT": "0",
        }
        redis = await connect()
        stack.push_async_callback(redis.aclose)
        stack.push_async_callback(delete_prefix, redis, prefix)
        with pytest.MonkeyPatch.context() as patch:  # only while the app reads its settings
            for name, value in env.items():
                patch.setenv(name, value)
            app = build_web_app()
            server = TestServer(app, host="127.0.0.1", port=0)
            stack.push_async_callback(server.close)
            await server.start_server()
        yield Served(public=str(server.make_url("")).rstrip("/"), admin=_admin_url(app))


def build_web_app() -> web.Application:
    """The public app of `tierbot serve --role web`, from the environment (with its admin
    listener when `TIERBOT_ADMIN_TOKEN` is set)."""
    policy = build_policy(load_routing_settings())
    router = Router(policy=policy, complexity=load_complexity_model())
    return build_serving(serve_args("--role", "web"), policy=policy, router=router).app


def _admin_url(app: web.Application) -> str:
    """Where the admin listener started with `app` listens."""
    for lifetime in app.cleanup_ctx:
        if isinstance(lifetime, AdminListener):
            host, port = cast(tuple[str, int], lifetime.addresses[0])[:2]
            return f"http://{host}:{port}"
    raise LookupError("the app has no admin listener (is TIERBOT_ADMIN_TOKEN set?)")
