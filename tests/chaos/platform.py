"""Telegram's side of the webhook for the chaos runs: chats whose users write at seeded times,
each update POSTed to our webhook and retried until it gets a 2xx (as Telegram retries a
failed webhook), and some acknowledged updates delivered again (as Telegram does when it
missed our answer)."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

from tests.bots.e2e_support import TG_SECRET

WORDS = (
    *("river", "lamp", "orbit", "cedar", "violet", "harbor", "puzzle", "meadow", "copper"),
    *("lantern", "quartz", "tundra", "falcon", "saffron", "glacier", "velvet", "compass"),
    *("ember", "walnut", "prism", "canyon", "thistle", "marble", "beacon"),
)
ATTEMPT_TIMEOUT_S = 5.0
"""A delivery attempt Telegram gives up on (it would retry it later)."""
GIVE_UP_S = 30.0
"""An update not acknowledged by then is left unacknowledged (counted, never expected)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Sent:
    """One update the platform sent: its id, its chat, its text."""

    update_id: int
    chat_id: int
    text: str

    @property
    def dedupe_key(self) -> str:
        return f"tg:{self.update_id}"


@dataclass(slots=True)
class TelegramPlatform:
    """Posts updates to `url` with the webhook secret; keeps what happened to each."""

    url: str
    rng: random.Random
    replay_share: float = 0.15
    sent: list[Sent] = field(default_factory=list)
    acked: set[int] = field(default_factory=set)
    statuses: Counter[str] = field(default_factory=Counter)
    """Responses by status (`error` for a connection failure or timeout)."""
    replays: int = 0
    slowest_s: float = 0.0
    """The slowest response, whatever its status."""
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(70_000))
    _session: aiohttp.ClientSession | None = None

    async def run(self, chats: list[int], per_chat: int, span_s: float) -> None:
        """Each chat's user writes `per_chat` messages spread over about `span_s` seconds."""
        timeout = aiohttp.ClientTimeout(total=ATTEMPT_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            self._session = session
            async with asyncio.TaskGroup() as group:
                for chat in chats:
                    gaps = [self.rng.uniform(0, 2 * span_s / per_chat) for _ in range(per_chat)]
                    group.create_task(self._chat(chat, gaps, group))
            self._session = None

    async def _chat(self, chat: int, gaps: list[float], group: asyncio.TaskGroup) -> None:
        """One user: messages in order, each retried until acknowledged before the next."""
        for gap in gaps:
            await asyncio.sleep(gap)
            text = " ".join(self.rng.sample(WORDS, 4)).capitalize() + "?"
            item = Sent(update_id=next(self._ids), chat_id=chat, text=text)
            self.sent.append(item)
            if await self._deliver(item) and self.rng.random() < self.replay_share:
                group.create_task(self._replay(item, self.rng.uniform(0, 1.5)))

    async def _replay(self, item: Sent, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        self.replays += 1
        await self._deliver(item)

    async def _deliver(self, item: Sent) -> bool:
        """POST until a 2xx; True once acknowledged (False if given up)."""
        deadline = time.monotonic() + GIVE_UP_S
        attempt = 0
        while time.monotonic() < deadline:
            attempt += 1
            if await self._post(item):
                self.acked.add(item.update_id)
                return True
            await asyncio.sleep(min(0.1 * attempt, 0.5))
        return False

    async def _post(self, item: Sent) -> bool:
        assert self._session is not None
        began = time.monotonic()
        headers = {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET}
        try:
            async with self._session.post(self.url, json=update(item), headers=headers) as response:
                status = str(response.status)
                await response.read()
        except (aiohttp.ClientError, TimeoutError):
            status = "error"
        self.slowest_s = max(self.slowest_s, time.monotonic() - began)
        self.statuses[status] += 1
        return status.startswith("2")


def update(item: Sent) -> dict[str, object]:
    """A private-chat text update as Telegram sends it."""
    user = {"id": item.chat_id, "is_bot": False, "first_name": "Ada", "language_code": "en"}
    message = {
        "message_id": item.update_id,
        "date": int(time.time()),
        "chat": {"id": item.chat_id, "type": "private"},
        "from": user,
        "text": item.text,
    }
    return {"update_id": item.update_id, "message": message}
