"""Test support for the pipeline stores: messages, one backend's queue+gate+outbox, a recorder.

`make_pipeline` builds pipelines of the memory or the Redis backend (parametrized); tests import
the fixtures explicitly, as with `tests.bots.redis_fixtures`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from bots.chat_state import ChatGate, ChatSettings, ChatTurns, Outbox, OutboxRecord, TurnHandler
from bots.chat_state_memory import MemoryChatGate, MemoryOutbox
from bots.chat_state_redis import RedisChatGate, RedisOutbox
from bots.queue import Entry, Queue, QueueSettings
from bots.queue_memory import MemoryQueue
from bots.queue_redis import RedisQueue
from bots.types import InboundMessage

TTL = 3600.0
CHAT = "c1"


def message(chat: str = CHAT, n: int = 1, text: str = "hi") -> InboundMessage:
    """A Telegram text message; `n` makes the dedupe key."""
    return InboundMessage(
        channel="telegram",
        dedupe_key=f"tg:{chat}:{n}",
        chat_id=chat,
        user_id=f"u-{chat}",
        kind="text",
        text=f"{text} {n}",
        message_id=str(n),
    )


def key(n: int, chat: str = CHAT) -> str:
    """The dedupe key of `message(chat, n)`."""
    return message(chat, n).dedupe_key


def sent(platform_message_id: str | None = None) -> OutboxRecord:
    return OutboxRecord(status="sent", platform_message_id=platform_message_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Pipeline:
    """One backend's queue, gate and outbox (Redis: on one client and prefix)."""

    queue: Queue
    gate: ChatGate
    outbox: Outbox
    chat: ChatSettings

    def turns(self, handler: TurnHandler) -> ChatTurns:
        return ChatTurns(
            queue=self.queue,
            gate=self.gate,
            outbox=self.outbox,
            handler=handler,
            settings=self.chat,
        )

    async def entries(self, *numbers: int, chat: str = CHAT) -> tuple[Entry, ...]:
        """Enqueue messages `numbers` of `chat` and read them back."""
        for n in numbers:
            assert await self.queue.enqueue(message(chat, n), TTL)
        return await self.queue.read("reader", count=len(numbers))


class MakePipeline:
    """Builds pipelines of one backend; Redis ones share the test's prefix."""

    def __init__(self, backend: str, client: Redis | None, prefix: str) -> None:
        self.backend = backend
        self._client = client
        self._prefix = prefix

    def __call__(
        self,
        queue: QueueSettings | None = None,
        chat: ChatSettings | None = None,
        client: Redis | None = None,
    ) -> Pipeline:
        queue = queue or QueueSettings(block_ms=50, min_idle_s=0.3)
        chat = chat or ChatSettings(lock_ttl_s=0.25, heartbeat_s=0.05)
        if self.backend == "memory":
            return Pipeline(
                queue=MemoryQueue(queue),
                gate=MemoryChatGate(chat),
                outbox=MemoryOutbox(),
                chat=chat,
            )
        redis = client or self._client
        assert redis is not None
        return redis_pipeline(redis, self._prefix, queue, chat)


def redis_pipeline(
    client: Redis, prefix: str, queue: QueueSettings, chat: ChatSettings
) -> Pipeline:
    return Pipeline(
        queue=RedisQueue(client, queue, prefix=prefix),
        gate=RedisChatGate(client, chat, prefix=prefix),
        outbox=RedisOutbox(client, prefix=prefix),
        chat=chat,
    )


@pytest.fixture(name="make_pipeline", params=["memory", "redis"])
def fixture_make_pipeline(request: pytest.FixtureRequest) -> MakePipeline:
    if request.param == "memory":
        return MakePipeline("memory", None, "")
    client: Redis = request.getfixturevalue("redis_client")
    return MakePipeline("redis", client, request.getfixturevalue("prefix"))


@pytest.fixture(name="pipeline")
def fixture_pipeline(make_pipeline: MakePipeline) -> Pipeline:
    return make_pipeline()


class Recorder:
    """A turn handler that records the sequence numbers of each turn."""

    def __init__(self) -> None:
        self.turns: list[list[int]] = []

    async def __call__(self, entries: tuple[Entry, ...]) -> str:
        self.turns.append([entry.seq for entry in entries])
        return f"sent-{entries[-1].seq}"
