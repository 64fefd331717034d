"""The whole service on loopback for the end-to-end tests: our app(s) built from the environment
as `tierbot serve` builds them, in front of the fake Telegram, WhatsApp and LLM servers.

`service` is parametrized: `memory` runs one `--role all` app (the embedded defaults); `redis`
runs a `--role web` app and a `--role worker` app on the machine's Redis under a prefix of
the test's own. The feedback log is a SQLite file in the test's directory.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bots.serve_cli import add_serve_parser, build_serving
from feedback.schema import events
from feedback.settings import load_feedback_settings
from feedback.store import FeedbackStore
from routing.policy import build_policy
from routing.router import Router
from routing.settings import load_routing_settings
from routing.signals.complexity import load_complexity_model
from tests.bots.conftest import CHAINS, LLM_KEY
from tests.bots.pipeline_kit import BOT_TOKEN, SPECS, until
from tests.bots.redis_fixtures import REDIS_URL, connect, delete_prefix, unique_prefix
from tests.fakes.llm import FakeLLM
from tests.fakes.telegram import Call, FakeTelegram
from tests.fakes.whatsapp import FakeWhatsApp, Sent

TG_SECRET = "tg-secret_0123456789"
WA_TOKEN = "EAAFakeAccessToken"
WA_SECRET = "wa-app-secret-f00d"
WA_VERIFY = "verify-me-please"
WA_PHONE = "1122334455667"
TG_CHAT = 4242
WA_USER = "4915112345678"


def environment(
    llm: FakeLLM, telegram: FakeTelegram, whatsapp: FakeWhatsApp, database: Path
) -> dict[str, str]:
    """Every variable the service reads, pointing at the fakes."""
    return {
        "OPENAI_API_KEY": LLM_KEY,
        "OPENAI_BASE_URL": llm.openai_url,
        "ANTHROPIC_API_KEY": LLM_KEY,
        "ANTHROPIC_BASE_URL": llm.url,
        "GROQ_API_KEY": LLM_KEY,
        "GROQ_BASE_URL": llm.url,
        "TIERBOT_CHAINS": json.dumps(CHAINS),
        "TIERBOT_MODEL_SPECS": json.dumps({m: s.model_dump() for m, s in SPECS.items()}),
        "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
        "TELEGRAM_WEBHOOK_SECRET": TG_SECRET,
        "TELEGRAM_API_BASE": telegram.url,
        "WHATSAPP_ACCESS_TOKEN": WA_TOKEN,
        "WHATSAPP_APP_SECRET": WA_SECRET,
        "WHATSAPP_VERIFY_TOKEN": WA_VERIFY,
        "WHATSAPP_PHONE_NUMBER_ID": WA_PHONE,
        "WHATSAPP_API_BASE": whatsapp.url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "TIERBOT_ID_HASH_KEY": "e2e-id-hash-key-0123456789",
        "TIERBOT_FEEDBACK_FLUSH_INTERVAL_S": "0.05",
    }


def serve_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_serve_parser(parser.add_subparsers(dest="group"))
    return parser.parse_args(["serve", *argv])


async def start(role: str, *, ready: bool = True) -> TestServer:
    """Our app of `role`, built from the environment, running on 127.0.0.1:0; with `ready`,
    once its `/readyz` says so."""
    policy = build_policy(load_routing_settings())
    router = Router(policy=policy, complexity=load_complexity_model())
    serving = build_serving(serve_args("--role", role), policy=policy, router=router)
    server = TestServer(serving.app, host="127.0.0.1", port=0)
    await server.start_server()
    if not ready:
        return server
    async with asyncio.timeout(10), aiohttp.ClientSession() as session:
        while True:  # as a load balancer would: traffic once the queue answers
            async with session.get(server.make_url("/readyz")) as probe:
                if probe.status == 200:
                    return server
            await asyncio.sleep(0.05)


@dataclass(slots=True)
class Service:
    """The running service, the fakes around it, and helpers to talk to it."""

    llm: FakeLLM
    telegram: FakeTelegram
    whatsapp: FakeWhatsApp
    web: TestServer
    database: Path
    backend: str
    updates: itertools.count[int]

    async def post_telegram(self, update: Mapping[str, object]) -> int:
        url = self.web.make_url("/telegram/webhook")
        headers = {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET}
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, json=update, headers=headers) as response,
        ):
            return response.status

    async def post_whatsapp(self, value: Mapping[str, object]) -> int:
        body = json.dumps(
            {
                "object": "whatsapp_business_account",
                "entry": [{"id": "waba", "changes": [{"field": "messages", "value": value}]}],
            }
        ).encode()
        signature = "sha256=" + hmac.new(WA_SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers = {"X-Hub-Signature-256": signature, "Content-Type": "application/json"}
        url = self.web.make_url("/whatsapp/webhook")
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=body, headers=headers) as response,
        ):
            return response.status

    def tg_text(self, text: str, update_id: int | None = None) -> dict[str, object]:
        """A private-chat text update (a fresh update id unless given)."""
        uid = next(self.updates) if update_id is None else update_id
        chat = {"id": TG_CHAT, "type": "private"}
        sender = {"id": TG_CHAT, "is_bot": False, "first_name": "Ada", "language_code": "en"}
        message = {
            "message_id": uid,
            "date": int(time.time()),
            "chat": chat,
            "from": sender,
            "text": text,
        }
        return {"update_id": uid, "message": message}

    def tg_press(self, data: str, message_id: int) -> dict[str, object]:
        """A press of one of our buttons."""
        uid = next(self.updates)
        query = {
            "id": f"cb{uid}",
            "from": {"id": TG_CHAT, "is_bot": False, "first_name": "Ada"},
            "message": {
                "message_id": message_id,
                "date": 0,
                "chat": {"id": TG_CHAT, "type": "private"},
            },
            "chat_instance": "1",
            "data": data,
        }
        return {"update_id": uid, "callback_query": query}

    def tg_stop(self, draft_id: int) -> Mapping[str, object]:
        """The user pressed the stop button of a draft in the private chat."""
        return self.telegram.stop_pressed(next(self.updates), TG_CHAT, draft_id)

    def tg_finals(self) -> list[Call]:
        """Our final Telegram messages (those with the feedback buttons)."""
        return [c for c in self.telegram.calls_to("sendMessage") if "reply_markup" in c.params]

    def wa_messages(self, *messages: Mapping[str, object]) -> dict[str, object]:
        return {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001", "phone_number_id": WA_PHONE},
            "contacts": [{"profile": {"name": "Ada"}, "wa_id": WA_USER}],
            "messages": list(messages),
        }

    def wa_text(self, text: str, wamid: str | None = None) -> dict[str, object]:
        return {
            "from": WA_USER,
            "id": wamid or f"wamid.IN{next(self.updates)}",
            "timestamp": str(int(time.time())),
            "type": "text",
            "text": {"body": text},
        }

    def wa_press(self, button_id: str, context: str) -> dict[str, object]:
        return {
            "from": WA_USER,
            "id": f"wamid.IN{next(self.updates)}",
            "timestamp": str(int(time.time())),
            "type": "interactive",
            "context": {"from": WA_PHONE, "id": context},
            "interactive": {
                "type": "button_reply",
                "button_reply": {"id": button_id, "title": "👎"},
            },
        }

    def wa_answers(self) -> list[Sent]:
        """Our interactive WhatsApp messages (answers with the feedback buttons)."""
        return self.whatsapp.of_kind("interactive")

    async def event_rows(self, kind: str) -> list[tuple[str | None, str | None, str | None]]:
        """(turn, related turn, cause) of the events of `kind` in the feedback database."""
        store = await FeedbackStore.open(load_feedback_settings())
        try:
            async with store.connect() as conn:
                rows = await conn.execute(
                    select(events.c.turn_id, events.c.related_turn_id, events.c.cause).where(
                        events.c.kind == kind
                    )
                )
                return [(r.turn_id, r.related_turn_id, r.cause) for r in rows]
        finally:
            await store.aclose()

    async def events_of(
        self, kind: str, count: int = 1
    ) -> list[tuple[str | None, str | None, str | None]]:
        """Wait until `count` events of `kind` are written; return them."""
        async with asyncio.timeout(10):
            while True:
                found = await self.event_rows(kind)
                if len(found) >= count:
                    return found
                await asyncio.sleep(0.05)


@pytest.fixture(name="service", params=["memory", "redis"])
async def fixture_service(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[Service]:
    """The service of one backend, with fresh fakes; everything is closed afterwards."""
    backend: str = request.param
    async with (
        FakeLLM(api_key=LLM_KEY) as llm,
        FakeTelegram(token=BOT_TOKEN) as telegram,
        FakeWhatsApp(access_token=WA_TOKEN, phone_number_id=WA_PHONE) as whatsapp,
    ):
        database = tmp_path / "feedback.sqlite3"
        for name, value in environment(llm, telegram, whatsapp, database).items():
            monkeypatch.setenv(name, value)
        prefix = unique_prefix("e2e")
        if backend == "redis":
            monkeypatch.setenv("REDIS_URL", REDIS_URL)
            monkeypatch.setenv("TIERBOT_REDIS_KEY_PREFIX", prefix)
        servers = [await start("web" if backend == "redis" else "all")]
        if backend == "redis":
            servers.append(await start("worker"))
        try:
            yield Service(
                llm=llm,
                telegram=telegram,
                whatsapp=whatsapp,
                web=servers[0],
                database=database,
                backend=backend,
                updates=itertools.count(1000),
            )
        finally:
            for server in reversed(servers):
                await server.close()
            if backend == "redis":
                client = await connect()
                await delete_prefix(client, prefix)
                await client.aclose()


__all__ = ["until"]
