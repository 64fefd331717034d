"""WhatsApp Cloud API webhook bodies: signature check, and every entry reduced to messages."""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from collections.abc import Iterator
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from bots import strict_json
from bots.errors import BadUpdate
from bots.types import ChatType, InboundKind, InboundMessage

SIGNATURE_PREFIX = "sha256="
_KEY_CHARS = 40
"""Counter keys built from platform strings are cut to this length."""

Id = Annotated[str, StringConstraints(min_length=1, max_length=512)]
Timestamp = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,12}$")]
Int64 = Annotated[int, Field(ge=-(2**63), lt=2**63)]


def signature_valid(app_secret: bytes, body: bytes, header: str) -> bool:
    """True when `header` is `sha256=<hex HMAC-SHA256 of the raw body>`; constant-time compare.

    The hex must be lower case, as Meta sends it: accepting other spellings would let a flipped
    bit (`a` → `A`) still pass.
    """
    expected = SIGNATURE_PREFIX + hmac.new(app_secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.encode("utf-8", "surrogateescape"))


class _Edge(BaseModel):
    """Strict: strings must be JSON strings, numbers JSON numbers; unknown keys pass."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class _Text(_Edge):
    body: str


class _Reply(_Edge):
    id: Id


class _Interactive(_Edge):
    type: str
    button_reply: _Reply | None = None
    list_reply: _Reply | None = None


class _Button(_Edge):
    payload: str | None = None


class _Reaction(_Edge):
    message_id: Id
    emoji: str | None = None


class _Context(_Edge):
    id: Id | None = None


class _Message(_Edge):
    id: Id
    timestamp: Timestamp
    type: str
    from_: Id | None = Field(default=None, alias="from")
    from_user_id: Id | None = None
    context: _Context | None = None
    text: _Text | None = None
    interactive: _Interactive | None = None
    button: _Button | None = None
    reaction: _Reaction | None = None


class _Contact(_Edge):
    wa_id: Id | None = None
    user_id: Id | None = None


class _StatusError(_Edge):
    code: Int64


class _Status(_Edge):
    id: Id
    status: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    timestamp: Timestamp
    recipient_id: Id | None = None
    recipient_user_id: Id | None = None
    recipient_type: str | None = None
    recipient_participant_id: Id | None = None
    errors: list[_StatusError] = []


class _Metadata(_Edge):
    phone_number_id: Id


class _Value(_Edge):
    metadata: _Metadata | None = None
    contacts: list[_Contact] = []
    messages: list[_Message] = []
    statuses: list[_Status] = []


class _Change(_Edge):
    field: str
    value: object = None
    """Validated as `_Value` only for the `messages` field; other fields have other shapes."""


class _Entry(_Edge):
    changes: list[_Change] = []


class _Envelope(_Edge):
    object: str
    entry: list[_Entry] = []


def parse_webhook(
    raw: bytes, *, phone_number_id: str | None = None, ignored: Counter[str] | None = None
) -> list[InboundMessage]:
    """Every message and status in one webhook body, across all entries and changes, in order.

    With `phone_number_id`, changes for the app's other business numbers are skipped. `ignored`
    counts what is skipped, by kind. Raises BadUpdate, and nothing else, for a body that is not
    a webhook notification.
    """
    skipped: Counter[str] = Counter()
    try:
        envelope = _Envelope.model_validate(strict_json.loads(raw))
        messages: list[InboundMessage] = []
        if envelope.object == "whatsapp_business_account":
            for change in (change for entry in envelope.entry for change in entry.changes):
                messages.extend(_change(change, phone_number_id, skipped))
        else:
            skipped[f"object:{envelope.object[:_KEY_CHARS]}"] += 1
    except ValidationError as exc:
        raise BadUpdate(f"not a WhatsApp notification: {strict_json.describe(exc)}") from None
    if ignored is not None:
        ignored.update(skipped)  # only for a body that parsed: a refused one comes back
    return messages


def _change(
    change: _Change, phone_number_id: str | None, ignored: Counter[str]
) -> Iterator[InboundMessage]:
    if change.field != "messages":
        ignored[f"field:{change.field[:_KEY_CHARS]}"] += 1
        return
    value = _Value.model_validate(change.value)
    if phone_number_id is not None and (
        value.metadata is None or value.metadata.phone_number_id != phone_number_id
    ):
        ignored["other_phone_number"] += len(value.messages) + len(value.statuses)
        return
    results = [_message(message, value.contacts) for message in value.messages]
    results.extend(_status(status) for status in value.statuses)
    for result in results:
        if isinstance(result, str):
            ignored[result] += 1
        else:
            yield result


def _sender(message: _Message, contacts: list[_Contact]) -> str | None:
    """The business-scoped user id (BSUID) when Meta sends one, else the wa_id."""
    if message.from_user_id is not None:
        return message.from_user_id
    alone = message.from_ is None and len(contacts) == 1
    for contact in contacts:
        if contact.user_id is not None and (alone or contact.wa_id == message.from_):
            return contact.user_id
    return message.from_


_Content = tuple[InboundKind, str, str | None, str | None]
"""kind, text, payload, and the id of the message it is about."""


def _content(message: _Message) -> _Content | str:
    """What the message says, or the reason it is ignored (a counter key)."""
    reply_to = message.context.id if message.context else None
    match message.type:
        case "text" if message.text is not None:
            return "text", message.text.body, None, message.id
        case "interactive" if message.interactive is not None:
            choice = message.interactive.button_reply or message.interactive.list_reply
            if choice is None:
                return f"interactive:{message.interactive.type[:_KEY_CHARS]}"
            return "feedback", "", choice.id, reply_to
        case "button" if message.button is not None and message.button.payload is not None:
            return "feedback", "", message.button.payload, reply_to
        case "reaction" if message.reaction is not None:
            return "reaction", "", message.reaction.emoji or "", message.reaction.message_id
        case other:
            return f"message:{other[:_KEY_CHARS]}"


def _message(message: _Message, contacts: list[_Contact]) -> InboundMessage | str:
    """The inbound message, or the reason it is ignored (a counter key)."""
    user = _sender(message, contacts)
    if user is None:
        return "message:no_sender"
    content = _content(message)
    if isinstance(content, str):
        return content
    kind, text, payload, about = content
    return InboundMessage(
        channel="whatsapp",
        dedupe_key=f"wa:msg:{message.id}",
        chat_id=user,
        user_id=user,
        kind=kind,
        text=text,
        message_id=about,
        ts=float(message.timestamp),
        payload=payload,
    )


def _status(status: _Status) -> InboundMessage | str:
    """A delivery status of one of our messages, keyed to its recipient (BSUID first)."""
    chat_type: ChatType = "group" if status.recipient_type == "group" else "private"
    chat = user = status.recipient_user_id or status.recipient_id
    if chat_type == "group":
        chat = status.recipient_id
        user = status.recipient_participant_id or chat
    if chat is None or user is None:
        return "status:no_recipient"
    return InboundMessage(
        channel="whatsapp",
        dedupe_key=f"wa:st:{status.id}:{status.status}",
        chat_id=chat,
        user_id=user,
        kind="status",
        text=",".join(str(error.code) for error in status.errors),
        message_id=status.id,
        ts=float(status.timestamp),
        chat_type=chat_type,
        payload=status.status,
    )
