"""Telegram answers: streamed into a draft (private chats) or a paced, edited message (groups),
then persisted as formatted messages whose last one carries the feedback buttons.

Drafts and edits are best effort (a failure is logged and the stream goes on); the final
messages must arrive or `DeliveryFailed` is raised. A 429 pauses the chat for `retry_after`.
A `notice` is shown in the draft or placeholder until the answer's first text replaces it.
A draft carries a stop button; a press on it (`bots.stop_signal`, keyed by chat and draft) ends
that draft's stream and keeps what was shown. Calls to the Bot API go through `TelegramApi`.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace

from aiogram import Bot
from aiogram.methods import (
    AnswerCallbackQuery,
    DeleteMessage,
    EditMessageText,
    SendChatAction,
    SendMessage,
    SendMessageDraft,
)
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message

from bots.delivery import (
    FEEDBACK_DOWN,
    FEEDBACK_STRONGER,
    FEEDBACK_UP,
    Delivered,
    StopSignal,
    feedback_payload,
)
from bots.errors import BotError, DeliveryFailed
from bots.formatting import apology, stopped_note, telegram_messages, telegram_parts, to_plain
from bots.send_limits import AnswerFeed, Heartbeats, SendLimits, show_paced
from bots.telegram_api import TelegramApi, TelegramPacing
from bots.turn_fence import before_final_answer
from bots.types import InboundMessage
from routing.execution_types import ExecEvent

logger = logging.getLogger(__name__)

PLACEHOLDER = "…"
STRONGER = "Try a stronger model"
CALLBACK_DATA_BYTES = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class _Part:
    """One final message: formatted (None: send as plain text), its plain text, and its buttons
    (on the last part)."""

    html: str | None
    plain: str
    markup: InlineKeyboardMarkup | None = None


class TelegramDelivery:
    """The `Delivery` for Telegram, on one shared aiogram `Bot` (which the caller closes)."""

    def __init__(
        self,
        bot: Bot,
        *,
        stop: StopSignal,
        pacing: TelegramPacing | None = None,
        limits: SendLimits | None = None,
    ) -> None:
        self._api = TelegramApi(bot, pacing or TelegramPacing(), limits or SendLimits())
        self._stop = stop
        self._pacing = self._api.pacing
        self._beats = Heartbeats()

    @contextlib.asynccontextmanager
    async def typing(self, message: InboundMessage) -> AsyncIterator[None]:
        """Send the typing action now and every few seconds until the block ends or the
        answer's text shows."""

        async def beat() -> None:
            if not self._api.limits.paused_for(message.chat_id):
                await self._api.attempt(
                    message.chat_id,
                    SendChatAction(
                        chat_id=int(message.chat_id),
                        message_thread_id=_thread(message),
                        action="typing",
                    ),
                    paced=False,
                )

        await beat()
        pacing = self._pacing
        self._beats.start(
            message.chat_id, beat, every_s=pacing.typing_interval_s, for_s=pacing.typing_for_s
        )
        try:
            yield
        finally:
            await self._beats.stop(message.chat_id)

    async def stream(
        self,
        message: InboundMessage,
        events: AsyncIterator[ExecEvent],
        *,
        turn_id: str,
        notice: str | None = None,
    ) -> Delivered:
        """Stream `events` into a draft (private) or an edited message (group), then send the
        answer formatted, with the feedback buttons for `turn_id` on its last part."""
        markup = keyboard(turn_id)
        feed = AnswerFeed(events)
        group = message.chat_type == "group"
        board = _Board(self._api, message, spacing_s=self._pacing.edit_interval_s if group else 0)
        view = board if group else _Drafts(self._api, message)
        stopped = await self._run(message, feed, view, notice)
        text, parts = _conclusion(message, feed, view.shown, markup, stopped=stopped)
        await before_final_answer()
        last = await board.finish(parts)
        outcome = None if stopped else feed.outcome
        return Delivered(platform_message_id=last, text=text, outcome=outcome, stopped=stopped)

    async def send_text(self, message: InboundMessage, text: str) -> str | None:
        """Send `text` as plain message(s); return the last one's id (None if `text` is blank)."""
        await self._beats.stop(message.chat_id)
        parts = [_Part(html=None, plain=part) for part in telegram_parts(text)]
        spacing = self._pacing.edit_interval_s if message.chat_type == "group" else 0
        return await _Board(self._api, message, spacing_s=spacing).finish(parts) if parts else None

    async def answer_button(self, message: InboundMessage, text: str) -> None:
        """Answer the button press (stops the client's progress bar); best effort."""
        if message.callback_id is not None:
            call = AnswerCallbackQuery(callback_query_id=message.callback_id, text=text[:200])
            await self._api.attempt(message.chat_id, call, paced=False)

    async def aclose(self) -> None:
        """Stop the typing heartbeats (the `Bot` belongs to the caller)."""
        await self._beats.aclose()

    async def _run(
        self, message: InboundMessage, feed: AnswerFeed, view: _Drafts | _Board, notice: str | None
    ) -> bool:
        """Show the events as they come; True if the user stopped the answer."""
        chat = message.chat_id
        group = message.chat_type == "group"
        spacing = self._pacing.edit_interval_s if group else self._pacing.draft_interval_s

        async def show(text: str) -> None:
            if text:
                await self._beats.stop(chat)  # the answer shows: no typing over it
            await view.show(text, notice)

        draft = view.draft_id if isinstance(view, _Drafts) else None
        try:
            async with self._stop_button(chat, draft) as pressed, feed:
                stopped = await show_paced(
                    feed,
                    show,
                    limits=self._api.limits,
                    chat_id=chat,
                    spacing_s=spacing,
                    stopped=pressed,
                )
                if not stopped:
                    await feed.finished()
                return stopped
        finally:
            await self._beats.stop(chat)

    @contextlib.asynccontextmanager
    async def _stop_button(
        self, chat_id: str, draft_id: str | None
    ) -> AsyncIterator[Callable[[], Awaitable[bool]]]:
        """Take presses of the draft's stop button while the block runs; yield the check.
        An edited message (groups) has no stop button: it is never stopped."""
        if draft_id is None:
            yield _never
            return
        await self._signal("open", self._stop.open(chat_id, draft_id))
        try:
            yield lambda: self._stopped(chat_id, draft_id)
        finally:
            await self._signal("close", self._stop.close(chat_id, draft_id))

    async def _stopped(self, chat_id: str, draft_id: str) -> bool:
        return await self._signal("read", self._stop.stopped(chat_id, draft_id)) is True

    async def _signal(self, what: str, call: Awaitable[bool | None]) -> bool | None:
        """A stop signal call; None if the signal is unavailable (the answer streams on)."""
        try:
            return await call
        except BotError as exc:
            logger.warning("stop signal %s failed (%s); streaming on", what, type(exc).__name__)
            return None


async def _never() -> bool:
    return False


def keyboard(turn_id: str) -> InlineKeyboardMarkup:
    """👍 / 👎 and "Try a stronger model" for a turn; ValueError if the data would not fit
    Telegram's 64 bytes."""
    if len(feedback_payload(turn_id, FEEDBACK_STRONGER).encode()) > CALLBACK_DATA_BYTES:
        raise ValueError(f"turn id {turn_id!r} makes button data longer than 64 bytes")
    rows = [[(FEEDBACK_UP, "👍"), (FEEDBACK_DOWN, "👎")], [(FEEDBACK_STRONGER, STRONGER)]]
    buttons = [
        [
            InlineKeyboardButton(text=text, callback_data=feedback_payload(turn_id, choice))
            for choice, text in row
        ]
        for row in rows
    ]
    return InlineKeyboardMarkup(inline_keyboard=buttons)


def _conclusion(
    message: InboundMessage,
    feed: AnswerFeed,
    shown: str,
    markup: InlineKeyboardMarkup,
    *,
    stopped: bool,
) -> tuple[str, list[_Part]]:
    """The answer's text and final messages: what was shown if stopped, an apology if no
    model answered, else the whole answer."""
    if stopped:
        return shown, _parts(telegram_messages(shown, note=stopped_note(message.language)), markup)
    outcome = feed.outcome
    if outcome is None or not outcome.ok or not outcome.text.strip():
        text = apology(message.language)
        return text, [_Part(html=None, plain=text)]
    return outcome.text, _parts(telegram_messages(outcome.text), markup)


def _parts(messages: list[tuple[str, str]], markup: InlineKeyboardMarkup) -> list[_Part]:
    """Formatted final messages, the buttons on the last."""
    parts = [_Part(html=formatted, plain=plain) for formatted, plain in messages]
    parts[-1] = replace(parts[-1], markup=markup)
    return parts


def _thread(message: InboundMessage) -> int | None:
    """The forum or private topic to answer in (`message_thread_id`), if any."""
    return None if message.thread_id is None else int(message.thread_id)


class _Drafts:
    """Private chats: the answer streams as plain text into one draft (its last part, if long)."""

    def __init__(self, api: TelegramApi, message: InboundMessage) -> None:
        self._api = api
        self._message = message
        self._draft_id = secrets.randbelow(2**31 - 2) + 1
        self.draft_id = str(self._draft_id)
        """The id Telegram's stop button reports (`stopped_message_generation.draft_id`)."""
        self._draft = ""
        self.shown = ""
        """The answer text the user has last seen."""

    async def show(self, text: str, notice: str | None) -> None:
        """Best effort: put `text` (or the notice while it is empty) into the draft."""
        parts = telegram_parts(text)
        draft = to_plain(parts[-1]) if parts else (notice or "")
        if draft == self._draft:
            return  # unchanged (at first: nothing to show; the typing action says it is coming)
        method = SendMessageDraft(
            chat_id=int(self._message.chat_id),
            message_thread_id=_thread(self._message),
            draft_id=self._draft_id,
            text=draft,
            parse_mode=None,
            can_stop=True,
        )
        if await self._api.attempt(self._message.chat_id, method) is not None:
            self.shown, self._draft = text, draft


class _Board:
    """The messages of one answer. In groups they are edited while streaming, one call per
    update, frozen past 4096 units and continued in a new message; at the end (in private
    chats too) they get the final parts, `spacing_s` apart."""

    def __init__(self, api: TelegramApi, message: InboundMessage, *, spacing_s: float) -> None:
        self._api = api
        self._message = message
        self._chat = message.chat_id
        self._spacing_s = spacing_s
        self._ids: list[int] = []
        self._texts: list[str] = []
        self.shown = ""

    async def show(self, text: str, notice: str | None) -> None:
        """Best effort: one call that brings the messages closer to `text`, as plain text."""
        views = [to_plain(part) for part in telegram_parts(text)] or [notice or PLACEHOLDER]
        if await self._step(views) and self._texts == views:
            self.shown = text

    async def _step(self, views: list[str]) -> bool:
        """Send the first message missing, or edit the first that differs, or delete one left
        over (a Restart shortened the text); False if the call failed."""
        for index, view in enumerate(views):
            if index == len(self._ids):
                sent = await self._api.attempt(self._chat, self._send(view, parse_mode=None))
                if sent is not None:
                    self._ids.append(sent.message_id)
                    self._texts.append(view)
                return sent is not None
            if self._texts[index] != view:
                edit = self._edit(self._ids[index], view, parse_mode=None)
                if await self._api.attempt(self._chat, edit, unchanged=True) is None:
                    return False
                self._texts[index] = view
                return True
        if len(self._ids) > len(views):
            await self._delete_last()
        return True

    async def finish(self, parts: list[_Part]) -> str:
        """Put the final parts into the messages (editing those that exist); the last's id."""
        for index, part in enumerate(parts):
            await self._api.limits.wait(self._chat, self._spacing_s)
            await self._put(index, part)
        while len(self._ids) > len(parts):
            await self._api.limits.wait(self._chat, self._spacing_s)
            await self._delete_last()
        return str(self._ids[len(parts) - 1])

    async def _put(self, index: int, part: _Part) -> None:
        """Show a final part in the `index`-th message, sent anew if there is none yet; a
        formatted part falls back to its plain text."""
        shapes = (
            [(part.plain, None)] if part.html is None else [(part.html, "HTML"), (part.plain, None)]
        )
        if index < len(self._ids):
            message_id = self._ids[index]
            edits = [self._edit(message_id, t, parse_mode=m, markup=part.markup) for t, m in shapes]
            await self._api.deliver(self._chat, *edits)
            return
        sends = [self._send(t, parse_mode=m, markup=part.markup) for t, m in shapes]
        sent = await self._api.deliver(self._chat, *sends)
        if not isinstance(sent, Message):
            raise DeliveryFailed("telegram sendMessage returned no message")
        self._ids.append(sent.message_id)
        self._texts.append(part.plain)

    async def _delete_last(self) -> None:
        message_id = self._ids.pop()
        self._texts.pop()
        delete = DeleteMessage(chat_id=int(self._chat), message_id=message_id)
        await self._api.attempt(self._chat, delete)

    def _send(
        self, text: str, *, parse_mode: str | None, markup: InlineKeyboardMarkup | None = None
    ) -> SendMessage:
        return SendMessage(
            chat_id=int(self._chat),
            message_thread_id=_thread(self._message),
            text=text,
            parse_mode=parse_mode,
            reply_markup=markup,
        )

    def _edit(
        self,
        message_id: int,
        text: str,
        *,
        parse_mode: str | None,
        markup: InlineKeyboardMarkup | None = None,
    ) -> EditMessageText:
        return EditMessageText(
            chat_id=int(self._chat),
            message_id=message_id,
            text=text,
            parse_mode=parse_mode,
            reply_markup=markup,
        )
