"""Test support for the Telegram delivery tests: the fake Bot API and a real aiogram `Bot` on it,
fast pacing, a stop-signal double, and inbound messages; test modules import the fixtures they
use explicitly (`fixture_<name>`, registered as `<name>`)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Sequence

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bots.errors import StoreUnavailable
from bots.telegram_api import TelegramPacing
from bots.telegram_delivery import TelegramDelivery
from bots.types import ChatType, InboundMessage
from tests.fakes.telegram import Call, FakeTelegram

TOKEN = "123456789:AAFakeTokenForTests_0123456789abcdef"
PRIVATE, GROUP = 4242, -100777
DRAFT_S, EDIT_S, TYPING_S = 0.1, 0.15, 0.05
PACING = TelegramPacing(
    draft_interval_s=DRAFT_S,
    edit_interval_s=EDIT_S,
    typing_interval_s=TYPING_S,
    typing_for_s=5.0,
    call_timeout_s=5.0,
    max_retry_wait_s=2.0,
)
BUTTONS = {
    "inline_keyboard": [
        [
            {"text": "👍", "callback_data": "fb:t1:up"},
            {"text": "👎", "callback_data": "fb:t1:down"},
        ],
        [{"text": "Try a stronger model", "callback_data": "fb:t1:stronger"}],
    ]
}
EPSILON = 0.005
"""Timer slack: the fake stamps calls on arrival, after the client's own clock said go."""


class Stop:
    """A StopSignal double: records the drafts opened and closed; `pressed` stops any open
    draft; `broken` fails every call like an unreachable Redis."""

    def __init__(self) -> None:
        self.pressed = False
        self.broken = False
        self.calls = 0
        self.opened: list[tuple[str, str]] = []
        self.closed: list[tuple[str, str]] = []

    async def open(self, chat_id: str, draft_id: str) -> None:
        self._call()
        self.opened.append((chat_id, draft_id))

    async def stopped(self, chat_id: str, draft_id: str) -> bool:
        self._call()
        draft = (chat_id, draft_id)
        return self.pressed and draft in self.opened and draft not in self.closed

    async def close(self, chat_id: str, draft_id: str) -> None:
        self._call()
        self.closed.append((chat_id, draft_id))

    def _call(self) -> None:
        self.calls += 1
        if self.broken:
            raise StoreUnavailable("redis down")


def inbound(
    chat: int = PRIVATE,
    *,
    chat_type: ChatType = "private",
    language: str | None = None,
    thread_id: str | None = None,
    callback_id: str | None = None,
) -> InboundMessage:
    return InboundMessage(
        channel="telegram",
        dedupe_key="tg:1",
        chat_id=str(chat),
        user_id="7",
        kind="text",
        text="hi",
        message_id="10",
        chat_type=chat_type,
        language=language,
        thread_id=thread_id,
        callback_id=callback_id,
    )


def paced(pieces: Sequence[str], gap_s: float) -> list[str | float]:
    steps: list[str | float] = []
    for piece in pieces:
        steps += [piece, gap_s]
    return steps


def gaps(calls: list[Call]) -> list[float]:
    return [later.at - earlier.at for earlier, later in itertools.pairwise(calls)]


@pytest.fixture(name="telegram")
async def fixture_telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN) as fake:
        yield fake


@pytest.fixture(name="bot")
async def fixture_bot(telegram: FakeTelegram) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(telegram.url))
    async with Bot(TOKEN, session=session) as client:
        yield client


@pytest.fixture(name="stop")
def fixture_stop() -> Stop:
    return Stop()


@pytest.fixture(name="delivery")
async def fixture_delivery(bot: Bot, stop: Stop) -> AsyncIterator[TelegramDelivery]:
    telegram_delivery = TelegramDelivery(bot, stop=stop, pacing=PACING)
    yield telegram_delivery
    await telegram_delivery.aclose()
