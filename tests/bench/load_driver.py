"""The load generator: many chats at once, each a closed loop of one user (write, wait for the
reply, think, write again), posting signed webhooks to the web processes over loopback and
matching what the platform fakes show to the message it answers.

Timing, all on `time.monotonic()` (one clock for every process on the machine):
- acknowledgement: from just before the POST to its response (the same body is posted at the
  same moment to the bare "return 200" baseline server, whose time is kept beside it);
- first visible: from the user's message to the first platform call that shows text in the
  chat (Telegram sendMessageDraft/sendMessage/editMessageText, a WhatsApp message), as the fake
  recorded it; a "trying a stronger model" notice counts, and the first *answer* text is kept
  too;
- final: to the message with the feedback buttons, which closes the answer.
An answer's buttons name its turn, and each message's turn id is known in advance
(`load_webhooks`), so every answer is matched to its message exactly and a second answer of
one message is a duplicate. Text without a turn (drafts, notices, apologies) belongs to the
chat's latest message. An apology or a refusal also ends the user's wait; a message the user
sent after one is then answered together with the earlier message (the worker coalesces a
chat's waiting messages into one turn), which counts as its answer.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bots.formatting import apology
from bots.replies import reply
from bots.types import InboundMessage
from tests.bench import load_webhooks
from tests.bench.load_mix import ChatScript, Kind
from tests.bench.load_webhooks import Webhook

CONNECTIONS = 80
"""Concurrent webhook connections, as two platforms with about 40 each would open."""
POST_ATTEMPTS = 5
QUIET_S = 1.5
"""How long the fakes are still watched after the last reply, for late duplicates."""
_EN = InboundMessage(channel="telegram", dedupe_key="-", chat_id="-", user_id="-", kind="text")
NOTICE = reply("stronger", _EN)
APOLOGY = apology("en")
REFUSALS = frozenset({reply("rate_limited", _EN), reply("budget", _EN)})


@dataclass(slots=True, kw_only=True)
class Message:
    """One message the generator sent, and what became of it."""

    chat: int
    seq: int
    """Its place in the chat, from 0."""
    channel: str
    kind: Kind
    turn: str
    posted: float = 0.0
    """When the user sent it: just before the first POST."""
    acked: float | None = None
    ack_s: float | None = None
    """Seconds the acknowledging POST took."""
    statuses: list[int] = field(default_factory=list)
    baseline_ack: float | None = None
    """Seconds the bare server took to acknowledge the same body at the same moment."""
    first_visible: float | None = None
    first_answer: float | None = None
    final: float | None = None
    """When the (first) answer with its buttons arrived."""
    answers: int = 0
    """Answers that carry this message's own turn."""
    together: bool = False
    """An earlier message's answer came after this one was sent: the worker answered both
    as one turn (a chat's waiting messages are coalesced). Counts only without own answers."""
    apologies: int = 0
    refusals: int = 0

    @property
    def replies(self) -> int:
        """Answers the user got to this message: its own, or the one it was coalesced into."""
        return self.answers or int(self.together)


@dataclass(slots=True)
class _Chat:
    script: ChatScript
    chat_id: str
    messages: list[Message] = field(default_factory=list)
    replied: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadPlan:
    """How the load is shaped."""

    duration_s: float
    """No message is sent after this many seconds; what is in flight then is still awaited."""
    ramp_s: float
    """Chats start at random moments within this many seconds."""
    think_s: float
    """Mean pause of a user between a reply and their next message."""
    drain_s: float
    """How long replies are awaited after `duration_s`."""
    seed: int


@dataclass(slots=True, kw_only=True)
class LoadResult:
    """Everything the generator saw."""

    messages: list[Message]
    planned: int
    started: float
    ended: float
    strays: Counter[str]
    """Platform calls that matched no message, by channel, method and kind."""
    platform_errors: Counter[str]
    fakes_summary: dict[str, Any]


def _kind(event: dict[str, Any]) -> str:
    """answer | apology | refusal | notice | text | error."""
    method, text = str(event["m"]), str(event["text"])
    if method.startswith("error:"):
        return "error"
    if event.get("turn"):
        return "answer"
    if text == APOLOGY:
        return "apology"
    if text in REFUSALS:
        return "refusal"
    return "notice" if text == NOTICE else "text"


class Generator:
    """Drives one run: posts the chats' messages and follows the fakes' event stream."""

    def __init__(
        self, scripts: Sequence[ChatScript], plan: LoadPlan, *, webs: Sequence[str], baseline: str
    ) -> None:
        self._plan = plan
        self._webs = itertools.cycle(webs)
        self._baseline = baseline
        self._numbers = itertools.count(1)
        self._rng = random.Random(plan.seed)
        self._chats = [_Chat(s, _chat_id(s)) for s in scripts]
        self._by_id: dict[tuple[str, str], _Chat] = {
            (c.script.channel, c.chat_id): c for c in self._chats
        }
        self._by_turn: dict[str, tuple[_Chat, Message]] = {}
        self._strays: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()
        self._summary: dict[str, Any] = {}
        self._reader: asyncio.Task[None] | None = None
        self._started = 0.0

    def on_event(self, event: dict[str, Any]) -> None:
        """Match one platform call to the message it shows a reply to."""
        kind, at = _kind(event), float(event["at"])
        if kind == "error":
            self._errors[str(event["m"])] += 1
            return
        if kind == "answer":
            found = self._by_turn.get(str(event["turn"]))
        else:
            chat = self._by_id.get((str(event["ch"]), str(event["chat"])))
            latest = chat.messages[-1] if chat is not None and chat.messages else None
            found = None if chat is None or latest is None else (chat, latest)
        if found is None or at < found[1].posted:
            self._strays[f"{event['ch']}:{event['m']}:{kind}"] += 1
            return
        chat, message = found
        if message.first_visible is None:
            message.first_visible = at
        if kind in ("text", "answer") and message.first_answer is None:
            message.first_answer = at
        if kind == "answer":
            message.answers += 1
            message.final = message.final or at
            _coalesced(chat, message, at)
        elif kind == "apology":
            message.apologies += 1
        elif kind == "refusal":
            message.refusals += 1
        if kind in ("answer", "apology", "refusal") and message is chat.messages[-1]:
            chat.replied.set()

    async def run(self, events: asyncio.StreamReader) -> LoadResult:
        """Run the load; `events` is the fakes' stdout. Returns once every chat is done."""
        self._reader = asyncio.create_task(self._follow(events))
        try:
            started = await self._load()
        except BaseException:
            self._reader.cancel()
            raise
        return LoadResult(
            messages=[m for chat in self._chats for m in chat.messages],
            planned=sum(len(chat.script.steps) for chat in self._chats),
            started=started,
            ended=time.monotonic(),
            strays=self._strays,
            platform_errors=self._errors,
            fakes_summary=self._summary,
        )

    async def _load(self) -> float:
        """Run every chat to its end; return when the load started."""
        timeout = aiohttp.ClientTimeout(total=10)
        started = self._started = time.monotonic()
        async with (
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=CONNECTIONS), timeout=timeout
            ) as session,
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=CONNECTIONS), timeout=timeout
            ) as baseline,
        ):
            async with asyncio.TaskGroup() as group:
                for chat in self._chats:
                    start_at = started + self._rng.uniform(0, self._plan.ramp_s)
                    think = random.Random(self._rng.random())
                    group.create_task(self._chat(chat, (session, baseline), start_at, think))
            await asyncio.sleep(QUIET_S)
        return started

    async def finish(self, result: LoadResult, stdin: asyncio.StreamWriter | None) -> None:
        """Close the fakes' stdin; read the calls left and their summary into `result`."""
        if stdin is not None:
            stdin.close()
        if self._reader is not None:
            async with asyncio.timeout(15):
                await self._reader
        result.fakes_summary = self._summary

    async def _follow(self, events: asyncio.StreamReader) -> None:
        while line := await events.readline():
            event: dict[str, Any] = json.loads(line)
            if event.get("summary"):
                self._summary.update(event)
                return
            self.on_event(event)

    async def _chat(
        self,
        chat: _Chat,
        sessions: tuple[aiohttp.ClientSession, aiohttp.ClientSession],
        start_at: float,
        rng: random.Random,
    ) -> None:
        plan = self._plan
        stop_sending = self._started + plan.duration_s
        give_up = stop_sending + plan.drain_s
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        for seq, step in enumerate(chat.script.steps):
            if time.monotonic() >= stop_sending:
                return
            webhook = self._webhook(chat, step.text)
            message = Message(
                chat=chat.script.index,
                seq=seq,
                channel=chat.script.channel,
                kind=step.kind,
                turn=webhook.turn,
            )
            chat.messages.append(message)
            self._by_turn[webhook.turn] = (chat, message)
            chat.replied.clear()
            await self._post(message, sessions, webhook)
            if message.acked is None:
                continue
            try:
                async with asyncio.timeout(max(0.0, give_up - time.monotonic())):
                    await chat.replied.wait()
            except TimeoutError:
                return
            think = min(rng.expovariate(1 / plan.think_s), 5 * plan.think_s)
            if seq == len(chat.script.steps) - 1 or time.monotonic() + think >= stop_sending:
                return  # nothing more to say, or not before the load ends
            await asyncio.sleep(think)

    async def _post(
        self,
        message: Message,
        sessions: tuple[aiohttp.ClientSession, aiohttp.ClientSession],
        webhook: Webhook,
    ) -> None:
        """POST as a platform does: retried after an error, acknowledged by a 2xx."""
        url = next(self._webs) + webhook.path
        bare = self._baseline + webhook.path
        message.posted = time.monotonic()
        for _ in range(POST_ATTEMPTS):
            began = time.monotonic()
            (status, done), (bare_status, bare_done) = await asyncio.gather(
                _timed(sessions[0], url, webhook),
                _timed(sessions[1], bare, webhook),
            )
            message.statuses.append(status)
            if message.baseline_ack is None and bare_status == 200:
                message.baseline_ack = bare_done - began
            if 200 <= status < 300:
                message.acked, message.ack_s = done, done - began
                return
            await asyncio.sleep(1.0)

    def _webhook(self, chat: _Chat, text: str) -> Webhook:
        number = next(self._numbers)
        if chat.script.channel == "telegram":
            return load_webhooks.telegram(chat.chat_id, number, text)
        return load_webhooks.whatsapp(chat.chat_id, number, text)


def _coalesced(chat: _Chat, answered: Message, at: float) -> None:
    """Mark the chat's later messages sent before this answer, still without one, as answered
    together with it."""
    for later in chat.messages[answered.seq + 1 :]:
        if later.posted <= at and later.answers == 0:
            later.together = True
            later.first_visible = later.first_visible or at
            later.first_answer = later.first_answer or at
            later.final = later.final or at
            if later is chat.messages[-1]:
                chat.replied.set()


def _chat_id(script: ChatScript) -> str:
    """A Telegram private chat id, or a WhatsApp wa_id (a German mobile number)."""
    if script.channel == "telegram":
        return str(700_000_000 + script.index)
    return f"4917{script.index:08d}"


async def _timed(session: aiohttp.ClientSession, url: str, webhook: Webhook) -> tuple[int, float]:
    """(status, monotonic time of the response); status 0 when the request failed."""
    try:
        async with session.post(url, data=webhook.body, headers=webhook.headers) as response:
            await response.read()
            return response.status, time.monotonic()
    except (aiohttp.ClientError, TimeoutError):
        return 0, time.monotonic()
