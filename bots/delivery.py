"""The delivery seam: how a worker shows an answer in a chat, whatever the platform."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from bots.types import InboundMessage
from routing.execution_types import ExecEvent, Outcome

FEEDBACK_UP = "up"
FEEDBACK_DOWN = "down"
FEEDBACK_STRONGER = "stronger"


def feedback_payload(turn_id: str, choice: str) -> str:
    """Button data for a feedback choice on a turn: `fb:<turn_id>:<choice>` (<= 64 bytes)."""
    return f"fb:{turn_id}:{choice}"


def parse_feedback(payload: str | None) -> tuple[str, str] | None:
    """Return (turn_id, choice) of a feedback button's data, or None if it is not ours."""
    if not payload or not payload.startswith("fb:"):
        return None
    turn_id, _, choice = payload[3:].rpartition(":")
    if not turn_id or choice not in (FEEDBACK_UP, FEEDBACK_DOWN, FEEDBACK_STRONGER):
        return None
    return turn_id, choice


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivered:
    """What reached the chat: the final message's platform id and text, and how it ended."""

    platform_message_id: str | None
    text: str
    outcome: Outcome | None
    """The executor's outcome; None when the user stopped the answer before it ended."""
    stopped: bool = False


class StopSignal(Protocol):
    """Tells a streaming delivery that the user pressed the stop button of one of its drafts.

    The delivery `open`s a draft before the user can see it and `close`s it when the stream
    ends; a press counts only for that draft, and only while it is open.
    """

    async def open(self, chat_id: str, draft_id: str) -> None: ...

    async def stopped(self, chat_id: str, draft_id: str) -> bool: ...

    async def close(self, chat_id: str, draft_id: str) -> None: ...


class Delivery(Protocol):
    """Shows answers in one platform's chats, within its limits (rate, length, formatting)."""

    def typing(self, message: InboundMessage) -> AbstractAsyncContextManager[None]:
        """Show at once that an answer is coming (typing action / read receipt) and renew it
        until the block ends, however it ends, or the answer's first text shows."""
        ...

    async def stream(
        self,
        message: InboundMessage,
        events: AsyncIterator[ExecEvent],
        *,
        turn_id: str,
        notice: str | None = None,
    ) -> Delivered:
        """Stream the executor's events into the chat and finish with one final message that
        carries the feedback buttons for `turn_id`; `notice` (e.g. "Trying a stronger model…")
        goes first. Honour `Restart` (drop shown text) and the stop signal (cancel: close
        `events`)."""
        ...

    async def send_text(self, message: InboundMessage, text: str) -> str | None:
        """Send a short plain message (limits, errors); return its platform id."""
        ...

    async def answer_button(self, message: InboundMessage, text: str) -> None:
        """Acknowledge a button press (Telegram answerCallbackQuery; nothing on WhatsApp)."""
        ...
