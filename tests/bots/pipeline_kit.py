"""A pipeline on loopback for the pipeline tests: the fake LLM behind the real SDK adapters,
the real Telegram delivery against the fake Bot API, memory stores, and a recording sink."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from pydantic import SecretStr

from bots.assembly import LLMStack, build_llm_stack
from bots.chat_ledger import MemoryLedger
from bots.delivery import Delivery
from bots.history import MemoryHistory
from bots.limits import LimitSettings, MemoryRateLimiter, MemorySpendBudget
from bots.metrics import Metrics
from bots.pipeline import Pipeline
from bots.pipeline_types import PipelineParts
from bots.queue import Entry
from bots.stop_signal import MemoryStopSwitch
from bots.telegram_api import TelegramPacing
from bots.telegram_delivery import TelegramDelivery
from bots.types import Channel, InboundKind, InboundMessage
from feedback.types import EventKind, EventRecord, TurnRecord
from routing.execution_settings import ExecutionSettings, ModelSpecSetting, ProviderCredentials
from routing.policy import build_policy
from routing.router import Router
from routing.settings import RoutingSettings
from routing.signals.complexity import load_complexity_model
from tests.bots.conftest import CHAINS, LLM_KEY
from tests.fakes.llm import FakeLLM
from tests.fakes.telegram import Call, FakeTelegram

BOT_TOKEN = "123456789:AAFakeTokenForTests_0123456789abcdef"
CHAT = "4242"
USER = "777"
PRICE = ModelSpecSetting(input_per_mtok=1.0, output_per_mtok=2.0, context_window=100_000)
SPECS = {
    model: PRICE for links in CHAINS.values() for link in links for model in [link.split(":")[1]]
}
"""Every fake model priced, so turns have a cost and counterfactual costs."""
ID_KEY = b"pipeline-test-key"


class Sink:
    """A `FeedbackSink` that keeps what it is given."""

    def __init__(self) -> None:
        self.turns: list[TurnRecord] = []
        self.events: list[EventRecord] = []

    def record_turn(self, turn: TurnRecord) -> None:
        self.turns.append(turn)

    def record_event(self, event: EventRecord) -> None:
        self.events.append(event)

    def kinds(self) -> list[EventKind]:
        return [event.kind for event in self.events]

    def of(self, kind: EventKind) -> list[EventRecord]:
        return [event for event in self.events if event.kind == kind]


@dataclass(slots=True)
class Kit:
    """The pipeline under test and everything around it."""

    llm: FakeLLM
    telegram: FakeTelegram
    sink: Sink
    parts: PipelineParts
    pipeline: Pipeline
    stop: MemoryStopSwitch
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def entry(
        self,
        kind: InboundKind = "text",
        *,
        text: str = "",
        payload: str | None = None,
        message_id: str | None = None,
        language: str | None = None,
        channel: Channel = "telegram",
        deliveries: int = 1,
    ) -> Entry:
        """A fresh entry of the kit's chat (a new dedupe key each time)."""
        n = next(self.ids)
        message = InboundMessage(
            channel=channel,
            dedupe_key=f"tg:{n}",
            chat_id=CHAT,
            user_id=USER,
            kind=kind,
            text=text,
            message_id=message_id or str(1000 + n),
            ts=time.time(),
            payload=payload,
            language=language,
            callback_id=f"cb{n}" if kind == "feedback" else None,
        )
        return Entry(id=f"{n}-0", seq=n, deliveries=deliveries, message=message)

    async def ask(self, text: str, *, language: str | None = None) -> str | None:
        """Send one text message through the pipeline; the id of our final message."""
        return await self.pipeline((self.entry(text=text, language=language),))

    def finals(self) -> list[Call]:
        """The final messages (those with the feedback buttons), oldest first."""
        return [c for c in self.telegram.calls_to("sendMessage") if "reply_markup" in c.params]

    def last_turn_id(self) -> str:
        return self.sink.turns[-1].turn_id


async def until(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Return once `check()` holds; fail the test after `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        while True:
            if check():
                return
            await asyncio.sleep(0.01)


def execution(**overrides: object) -> ExecutionSettings:
    return ExecutionSettings.model_validate({"chains": CHAINS, "model_specs": SPECS, **overrides})


def credentials(llm: FakeLLM) -> ProviderCredentials:
    key = SecretStr(LLM_KEY)
    return ProviderCredentials(
        openai_api_key=key,
        openai_base_url=llm.openai_url,
        anthropic_api_key=key,
        anthropic_base_url=llm.url,
        groq_api_key=key,
        groq_base_url=llm.url,
    )


def llm_stack(llm: FakeLLM, settings: ExecutionSettings) -> LLMStack:
    return build_llm_stack(
        policy=build_policy(RoutingSettings()),
        settings=settings,
        credentials=credentials(llm),
        offline=False,
        redis=None,
    )


def pipeline_parts(
    stack: LLMStack,
    delivery: TelegramDelivery,
    limits: LimitSettings | None,
    settings: ExecutionSettings,
) -> PipelineParts:
    """Parts on memory stores with the default policy and a recording sink."""
    channels: dict[Channel, Delivery] = {"telegram": delivery}
    policy = build_policy(RoutingSettings())
    return PipelineParts(
        router=Router(policy=policy, complexity=load_complexity_model()),
        execution=settings,
        llm=stack,
        deliveries=channels,
        history=MemoryHistory(),
        limiter=MemoryRateLimiter(limits),
        budget=MemorySpendBudget(limits),
        ledger=MemoryLedger(),
        feedback=Sink(),
        id_key=ID_KEY,
        metrics=Metrics(),
    )


@pytest.fixture(name="make_kit")
async def fixture_make_kit() -> AsyncIterator[Callable[..., Kit]]:
    """Builds kits (`limits`, `settings` and the typing interval may be given); closes them
    afterwards."""
    async with FakeLLM(api_key=LLM_KEY) as llm, FakeTelegram(token=BOT_TOKEN) as telegram:
        api = TelegramAPIServer.from_base(telegram.url)
        bot = Bot(BOT_TOKEN, session=AiohttpSession(api=api))
        stacks: list[LLMStack] = []
        deliveries: list[TelegramDelivery] = []

        def make(
            limits: LimitSettings | None = None,
            settings: ExecutionSettings | None = None,
            typing_interval_s: float = 1.0,
        ) -> Kit:
            settings = settings or execution()
            stacks.append(llm_stack(llm, settings))
            stop = MemoryStopSwitch()
            pacing = TelegramPacing(draft_interval_s=0.05, typing_interval_s=typing_interval_s)
            deliveries.append(TelegramDelivery(bot, stop=stop, pacing=pacing))
            parts = pipeline_parts(stacks[-1], deliveries[-1], limits, settings)
            assert isinstance(parts.feedback, Sink)
            return Kit(
                llm=llm,
                telegram=telegram,
                sink=parts.feedback,
                parts=parts,
                pipeline=Pipeline(parts),
                stop=stop,
            )

        try:
            yield make
        finally:
            for delivery in deliveries:
                await delivery.aclose()
            for stack in stacks:
                await stack.aclose()
            await bot.session.close()
