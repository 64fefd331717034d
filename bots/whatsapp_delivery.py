"""WhatsApp answers over the Cloud API: a typing indicator while the answer is generated, then
the answer in as few messages as fit, and the feedback reply buttons.

The Cloud API cannot edit or stream a message, so the answer is collected first (a `Restart`
drops what was collected; there is no stop button to press). Buttons: when the answer's last
message fits an interactive body (1024 characters) the buttons go on it, which saves a message
against the pair rate limit (about one message per 6 s to a user); otherwise they follow in a
short "Was this answer helpful?" message. Free-form messages are only allowed within 24 hours
of the user's last message; past that nothing is sent (a template would be needed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import TypedDict

import aiohttp
from pydantic import BaseModel, ConfigDict, ValidationError

from bots.channel_settings import ChannelSettings
from bots.delivery import (
    FEEDBACK_DOWN,
    FEEDBACK_STRONGER,
    FEEDBACK_UP,
    Delivered,
    feedback_payload,
)
from bots.errors import DeliveryFailed
from bots.formatting import (
    WHATSAPP_LIMIT,
    apology,
    split_text,
    whatsapp_messages,
)
from bots.send_limits import AnswerFeed, Heartbeats, SendLimits
from bots.turn_fence import before_final_answer
from bots.types import InboundMessage
from routing.errors import ConfigError
from routing.execution_types import ExecEvent

logger = logging.getLogger(__name__)

INTERACTIVE_BODY_LIMIT = 1024
BUTTON_ID_LIMIT = 256
BUTTON_TITLES = {FEEDBACK_UP: "👍", FEEDBACK_DOWN: "👎", FEEDBACK_STRONGER: "Stronger model"}
"""Reply-button titles: at most 20 characters each, unique, no markup."""
BUTTONS_PROMPT = "Was this answer helpful?"
THROUGHPUT_LIMITED = 130429


@dataclass(frozen=True, slots=True, kw_only=True)
class WhatsAppPacing:
    """How often the typing indicator is renewed, and how long calls and waits may take."""

    typing_interval_s: float = 20.0
    """The indicator lasts at most 25 s."""
    typing_for_s: float = 180.0
    call_timeout_s: float = 10.0
    retry_wait_s: float = 1.0
    """The wait after a rate-limit error without a `Retry-After` header."""
    max_retry_wait_s: float = 5.0
    """A rate-limited message is retried once, only if the wait is at most this."""
    window_s: float = 24 * 3600.0


class _Text(TypedDict):
    preview_url: bool
    body: str


class _TextMessage(TypedDict):
    messaging_product: str
    recipient_type: str
    to: str
    type: str
    text: _Text


class _ReplyButton(TypedDict):
    id: str
    title: str


class _Button(TypedDict):
    type: str
    reply: _ReplyButton


class _Action(TypedDict):
    buttons: list[_Button]


class _BodyText(TypedDict):
    text: str


class _Interactive(TypedDict):
    type: str
    body: _BodyText
    action: _Action


class _InteractiveMessage(TypedDict):
    messaging_product: str
    recipient_type: str
    to: str
    type: str
    interactive: _Interactive


class _Indicator(TypedDict):
    type: str


class _ReadReceipt(TypedDict):
    messaging_product: str
    status: str
    message_id: str
    typing_indicator: _Indicator


_Body = _TextMessage | _InteractiveMessage | _ReadReceipt


class _Edge(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _MessageId(_Edge):
    id: str


class _GraphError(_Edge):
    code: int
    message: str = ""


class _GraphReply(_Edge):
    messages: list[_MessageId] = []
    error: _GraphError | None = None


class WhatsAppDelivery:
    """The `Delivery` for WhatsApp, on one shared aiohttp `ClientSession` (the caller's)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: ChannelSettings,
        *,
        pacing: WhatsAppPacing | None = None,
        limits: SendLimits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        token, number = settings.whatsapp_access_token, settings.whatsapp_phone_number_id
        if token is None or number is None:
            raise ConfigError("WHATSAPP_ACCESS_TOKEN and WHATSAPP_PHONE_NUMBER_ID must be set")
        self._session = session
        self._url = f"{settings.whatsapp_api_url}/{number}/messages"
        self._headers = {"Authorization": f"Bearer {token.get_secret_value()}"}
        self._pacing = pacing or WhatsAppPacing()
        self._limits = limits or SendLimits()
        self._clock = clock
        self._beats = Heartbeats()

    @contextlib.asynccontextmanager
    async def typing(self, message: InboundMessage) -> AsyncIterator[None]:
        """Mark the user's message read with a typing indicator, renewed until the block ends
        or the answer is sent."""
        wamid = message.message_id
        if wamid is None or not self._in_window(message):
            yield
            return
        receipt = _ReadReceipt(
            messaging_product="whatsapp",
            status="read",
            message_id=wamid,
            typing_indicator=_Indicator(type="text"),
        )

        async def beat() -> None:
            try:
                await self._post(message.chat_id, receipt)
            except DeliveryFailed as exc:
                logger.warning("whatsapp typing indicator failed (code %s)", exc.code)

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
        """Collect the answer, then send it (with the feedback buttons for `turn_id`)."""
        buttons = _buttons(turn_id)
        if not self._in_window(message):
            if isinstance(events, AsyncGenerator):
                await events.aclose()
            logger.warning(
                "whatsapp: 24 h window closed; answer not sent update=%s", message.dedupe_key
            )
            return Delivered(platform_message_id=None, text="", outcome=None)
        feed = AnswerFeed(events)
        try:
            if notice:
                await self._send_texts(message, [notice])
            async with feed:
                await feed.finished()
        finally:
            await self._beats.stop(message.chat_id)
        outcome = feed.outcome
        text, chunks, with_buttons = _conclusion(message, feed)
        if not self._in_window(message):
            logger.warning(
                "whatsapp: 24 h window closed while answering update=%s", message.dedupe_key
            )
            return Delivered(platform_message_id=None, text=text, outcome=outcome)
        await before_final_answer()
        if with_buttons:
            last = await self._send_answer(message, chunks, buttons)
        else:
            last = await self._send_texts(message, chunks)
        return Delivered(platform_message_id=last, text=text, outcome=outcome)

    async def send_text(self, message: InboundMessage, text: str) -> str | None:
        """Send `text` as is (split if long); the last message's id, None if not sent."""
        await self._beats.stop(message.chat_id)
        chunks = split_text(text, WHATSAPP_LIMIT)
        if not self._in_window(message):
            logger.warning(
                "whatsapp: 24 h window closed; text not sent update=%s", message.dedupe_key
            )
            return None
        return await self._send_texts(message, chunks) if chunks else None

    async def answer_button(self, message: InboundMessage, text: str) -> None:
        """WhatsApp has no acknowledgement of a button press: nothing to do."""

    async def aclose(self) -> None:
        """Stop the typing heartbeats (the session belongs to the caller)."""
        await self._beats.aclose()

    def _in_window(self, message: InboundMessage) -> bool:
        """Free-form messages are allowed: the user wrote within 24 h (ts 0 means unknown)."""
        return message.ts <= 0 or self._clock() - message.ts < self._pacing.window_s

    async def _send_answer(
        self, message: InboundMessage, chunks: list[str], buttons: list[_Button]
    ) -> str:
        """Send the chunks with the buttons on the last one if it fits; the last chunk's id."""
        *head, last = chunks
        if head:
            await self._send_texts(message, head)
        if len(last) <= INTERACTIVE_BODY_LIMIT:
            return await self._send(message.chat_id, _interactive(message, last, buttons))
        wamid = await self._send_texts(message, [last])
        await self._send(message.chat_id, _interactive(message, BUTTONS_PROMPT, buttons))
        return wamid

    async def _send_texts(self, message: InboundMessage, chunks: list[str]) -> str:
        wamid = ""
        for chunk in chunks:
            body = _TextMessage(
                messaging_product="whatsapp",
                recipient_type=_recipient_type(message),
                to=message.chat_id,
                type="text",
                text=_Text(preview_url=False, body=chunk),
            )
            wamid = await self._send(message.chat_id, body)
        return wamid

    async def _send(self, chat_id: str, body: _Body) -> str:
        wamid = await self._post(chat_id, body)
        if wamid is None:
            raise DeliveryFailed("whatsapp accepted a message but returned no message id")
        return wamid

    async def _post(self, chat_id: str, body: _Body) -> str | None:
        """POST to /messages; the message id if one is returned. A rate limit is waited out
        and retried once if the wait is short; any other Graph error raises DeliveryFailed."""
        retried = False
        while True:
            await self._limits.wait(chat_id)
            status, reply, retry_after = await self._request(body)
            if reply.error is None:
                return reply.messages[0].id if reply.messages else None
            wait = self._rate_limit_wait(status, reply.error.code, retry_after)
            if wait is None or retried:
                error = reply.error
                raise DeliveryFailed(
                    f"whatsapp refused the message: ({error.code}) {error.message}", code=error.code
                )
            logger.info("whatsapp rate limit (code %s); retrying in %.1f s", reply.error.code, wait)
            self._limits.pause(chat_id, wait)
            retried = True

    async def _request(self, body: _Body) -> tuple[int, _GraphReply, str | None]:
        try:
            async with (
                asyncio.timeout(self._pacing.call_timeout_s),
                self._session.post(self._url, json=body, headers=self._headers) as response,
            ):
                raw = await response.read()
                status, retry_after = response.status, response.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryFailed(f"whatsapp request failed: {type(exc).__name__}") from exc
        try:
            reply = _GraphReply.model_validate_json(raw)
        except ValidationError as exc:
            raise DeliveryFailed(f"whatsapp answered HTTP {status} with no Graph reply") from exc
        if status != 200 and reply.error is None:
            raise DeliveryFailed(f"whatsapp answered HTTP {status} without an error")
        return status, reply, retry_after

    def _rate_limit_wait(self, status: int, code: int, retry_after: str | None) -> float | None:
        """Seconds to wait before the one retry of a rate-limited call; None: do not retry."""
        if status != 429 and code != THROUGHPUT_LIMITED:
            return None
        try:
            wait = self._pacing.retry_wait_s if retry_after is None else float(retry_after)
        except ValueError:
            wait = self._pacing.retry_wait_s
        return wait if 0 <= wait <= self._pacing.max_retry_wait_s else None


def _buttons(turn_id: str) -> list[_Button]:
    """The three feedback reply buttons; ValueError if an id would be too long."""
    buttons = [
        _Button(type="reply", reply=_ReplyButton(id=feedback_payload(turn_id, choice), title=title))
        for choice, title in BUTTON_TITLES.items()
    ]
    if any(len(button["reply"]["id"]) > BUTTON_ID_LIMIT for button in buttons):
        raise ValueError(f"turn id {turn_id[:40]!r}… makes button ids longer than 256")
    return buttons


def _interactive(message: InboundMessage, body: str, buttons: list[_Button]) -> _InteractiveMessage:
    return _InteractiveMessage(
        messaging_product="whatsapp",
        recipient_type=_recipient_type(message),
        to=message.chat_id,
        type="interactive",
        interactive=_Interactive(
            type="button", body=_BodyText(text=body), action=_Action(buttons=buttons)
        ),
    )


def _recipient_type(message: InboundMessage) -> str:
    return "group" if message.chat_type == "group" else "individual"


def _conclusion(message: InboundMessage, feed: AnswerFeed) -> tuple[str, list[str], bool]:
    """The answer's text, its messages, and whether they get the buttons: an apology (no
    buttons) if no model answered, else the whole answer."""
    outcome = feed.outcome
    if outcome is None or not outcome.ok or not outcome.text.strip():
        text = apology(message.language)
        return text, [text], False
    return outcome.text, whatsapp_messages(outcome.text), True
