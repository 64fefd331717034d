"""Telegram webhook updates reduced to `InboundMessage`s, validated strictly at the edge."""

from __future__ import annotations

from collections import Counter
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bots import strict_json
from bots.errors import BadUpdate
from bots.types import ChatType, InboundMessage

FEEDBACK_PREFIX = "fb:"
"""Callback data of our feedback buttons starts with this; other button presses are ignored."""

UPDATE_TYPES = frozenset(
    {
        "message", "edited_message", "channel_post", "edited_channel_post",
        "business_connection", "business_message", "edited_business_message",
        "deleted_business_messages", "guest_message", "message_reaction",
        "message_reaction_count", "inline_query", "chosen_inline_result", "callback_query",
        "shipping_query", "pre_checkout_query", "purchased_paid_media", "poll", "poll_answer",
        "my_chat_member", "chat_member", "chat_join_request", "chat_boost",
        "removed_chat_boost", "managed_bot", "subscription", "stopped_message_generation",
    }
)  # fmt: skip
"""Update types of Bot API 10.3; anything else is counted as `unknown`."""

Int64 = Annotated[int, Field(ge=-(2**63), lt=2**63)]
UpdateId = Annotated[int, Field(ge=0, lt=2**63)]


class _Edge(BaseModel):
    """Strict: ids must be JSON integers (never bools, floats or strings); unknown keys pass."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class _User(_Edge):
    id: Int64
    language_code: str | None = None


class _Chat(_Edge):
    id: Int64
    type: str


class _Message(_Edge):
    message_id: Int64
    date: Int64
    chat: _Chat
    from_: _User | None = Field(default=None, alias="from")
    sender_chat: _Chat | None = None
    edit_date: Int64 | None = None
    message_thread_id: Int64 | None = None
    text: str | None = None
    caption: str | None = None


class _ButtonsMessage(_Edge):
    """A `MaybeInaccessibleMessage`: both shapes carry the chat and the message id."""

    message_id: Int64
    chat: _Chat


class _CallbackQuery(_Edge):
    id: str
    from_: _User = Field(alias="from")
    message: _ButtonsMessage | None = None
    data: str | None = None


class _Reaction(_Edge):
    type: str
    emoji: str | None = None


class _MessageReaction(_Edge):
    chat: _Chat
    message_id: Int64
    date: Int64
    user: _User | None = None
    actor_chat: _Chat | None = None
    old_reaction: list[_Reaction] = []
    new_reaction: list[_Reaction] = []


class _StoppedGeneration(_Edge):
    chat: _Chat
    draft_id: Int64


class _Update(_Edge):
    """Extra keys are kept (unvalidated) so an ignored update can be counted by its type."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)

    update_id: UpdateId
    message: _Message | None = None
    edited_message: _Message | None = None
    callback_query: _CallbackQuery | None = None
    message_reaction: _MessageReaction | None = None
    stopped_message_generation: _StoppedGeneration | None = None


def parse_update(
    raw: bytes, *, received_at: float = 0.0, ignored: Counter[str] | None = None
) -> InboundMessage | None:
    """The message in one Update body, or None for an update we do not handle.

    `received_at` stamps updates that carry no date (button presses, stopped drafts); `ignored`
    counts the updates answered with None, by type. Raises BadUpdate, and nothing else, for a
    body that is not an Update.
    """
    data = strict_json.loads(raw)
    try:
        update = _Update.model_validate(data)
    except ValidationError as exc:
        raise BadUpdate(f"not a Telegram update: {strict_json.describe(exc)}") from None
    result = _convert(update, received_at)
    if isinstance(result, str):
        if ignored is not None:
            ignored[result] += 1
        return None
    return result


def _convert(update: _Update, received_at: float) -> InboundMessage | str:
    """The message, or the reason it is ignored (a counter key)."""
    key = f"tg:{update.update_id}"
    if update.message is not None:
        return _text(key, update.message, "message")
    if update.edited_message is not None:
        return _text(key, update.edited_message, "edited_message")
    if update.callback_query is not None:
        return _feedback(key, update.callback_query, received_at)
    if update.message_reaction is not None:
        return _reaction(key, update.message_reaction)
    if update.stopped_message_generation is not None:
        return _stop(key, update.stopped_message_generation, received_at)
    return _update_type(update)


def _update_type(update: _Update) -> str:
    present = [name for name in update.model_extra or {} if name in UPDATE_TYPES]
    return present[0] if present else "unknown"


def _chat_type(chat: _Chat) -> ChatType | None:
    match chat.type:
        case "private":
            return "private"
        case "group" | "supergroup":
            return "group"
        case _:
            return None


def _text(key: str, message: _Message, field: str) -> InboundMessage | str:
    text = message.text if message.text is not None else message.caption
    chat_type = _chat_type(message.chat)
    if chat_type is None:
        return f"{field}:chat_type"
    if not text:
        return f"{field}:no_text"
    sender = message.from_
    user_id = sender.id if sender else (message.sender_chat or message.chat).id
    return InboundMessage(
        channel="telegram",
        dedupe_key=key,
        chat_id=str(message.chat.id),
        user_id=str(user_id),
        kind="text",
        text=text,
        message_id=str(message.message_id),
        ts=float(message.edit_date or message.date),
        chat_type=chat_type,
        language=sender.language_code if sender else None,
        thread_id=None if message.message_thread_id is None else str(message.message_thread_id),
        edited=field == "edited_message",
    )


def _feedback(key: str, query: _CallbackQuery, received_at: float) -> InboundMessage | str:
    if query.data is None or not query.data.startswith(FEEDBACK_PREFIX):
        return "callback_query:not_feedback"
    if query.message is None:
        return "callback_query:inline_message"
    chat_type = _chat_type(query.message.chat)
    if chat_type is None:
        return "callback_query:chat_type"
    return InboundMessage(
        channel="telegram",
        dedupe_key=key,
        chat_id=str(query.message.chat.id),
        user_id=str(query.from_.id),
        kind="feedback",
        message_id=str(query.message.message_id),
        ts=received_at,
        chat_type=chat_type,
        payload=query.data,
        language=query.from_.language_code,
        callback_id=query.id,
    )


def _reaction(key: str, reaction: _MessageReaction) -> InboundMessage | str:
    chat_type = _chat_type(reaction.chat)
    if chat_type is None:
        return "message_reaction:chat_type"
    old = {r.emoji for r in reaction.old_reaction if r.type == "emoji"}
    new = [r.emoji for r in reaction.new_reaction if r.type == "emoji" and r.emoji]
    if reaction.new_reaction and not new:
        return "message_reaction:not_emoji"
    added = [emoji for emoji in new if emoji not in old]
    actor = reaction.user or reaction.actor_chat or reaction.chat
    return InboundMessage(
        channel="telegram",
        dedupe_key=key,
        chat_id=str(reaction.chat.id),
        user_id=str(actor.id),
        kind="reaction",
        message_id=str(reaction.message_id),
        ts=float(reaction.date),
        chat_type=chat_type,
        payload=(added or new or [""])[0],
    )


def _stop(key: str, stopped: _StoppedGeneration, received_at: float) -> InboundMessage | str:
    chat_type = _chat_type(stopped.chat)
    if chat_type is None:
        return "stopped_message_generation:chat_type"
    return InboundMessage(
        channel="telegram",
        dedupe_key=key,
        chat_id=str(stopped.chat.id),
        user_id=str(stopped.chat.id),
        kind="stop",
        ts=received_at,
        chat_type=chat_type,
        payload=str(stopped.draft_id),
    )
