"""Value types of the message pipeline: what a webhook hands to the queue and workers."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Literal

Channel = Literal["telegram", "whatsapp"]
ChatType = Literal["private", "group"]
InboundKind = Literal["text", "feedback", "stop", "reaction", "status"]
"""text: a user message; feedback: a button press (👍, 👎, stronger model); stop: the user
pressed stop on a streaming draft; reaction: an emoji reaction; status: a delivery status."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundMessage:
    """One platform update reduced to what the pipeline needs; serialised into the queue."""

    channel: Channel
    dedupe_key: str
    """Unique per platform delivery: `tg:<update_id>`, `wa:msg:<wamid>`, `wa:st:<wamid>:<s>`."""
    chat_id: str
    """Where to answer: Telegram chat id, or the WhatsApp user (BSUID when present, else wa_id)."""
    user_id: str
    """Who wrote: the platform user id (raw here; logs and analytics only see keyed hashes)."""
    kind: InboundKind
    text: str = ""
    message_id: str | None = None
    """The platform's id of the user's message (or of our message a button/reaction refers to)."""
    ts: float = 0.0
    chat_type: ChatType = "private"
    payload: str | None = None
    """Button data (`fb:<turn>:up`), the reaction emoji, or the delivery status."""
    language: str | None = None
    thread_id: str | None = None
    """Telegram forum/private topic (`message_thread_id`): replies and drafts must carry it."""
    callback_id: str | None = None
    """Telegram callback query id: a button press must be answered with it."""
    edited: bool = False
    """The user edited an earlier message (Telegram `edited_message`)."""

    def to_json(self) -> str:
        """Serialise for the queue (every field is a str, float, bool or None: no deep copy)."""
        values = {name: getattr(self, name) for name in _INBOUND_FIELDS}
        return json.dumps(values, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> InboundMessage:
        """Read back what `to_json` wrote."""
        return cls(**json.loads(raw))


_INBOUND_FIELDS = tuple(field.name for field in fields(InboundMessage))
