"""The webhook requests of the load generator, as Telegram and WhatsApp send them, and the turn
id tierbot derives from each (its feedback buttons carry it, so an answer names its message)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from bots.ids import hash_id
from bots.webhooks import TELEGRAM_PATH, WHATSAPP_PATH
from tests.bench.load_fakes import WA_PHONE
from tests.bench.load_system import ID_HASH_KEY, TG_SECRET, WA_SECRET


@dataclass(frozen=True, slots=True, kw_only=True)
class Webhook:
    """One POST a platform makes for one user message."""

    path: str
    body: bytes
    headers: dict[str, str]
    turn: str
    """The id of the turn that answers it: the keyed hash of `turn:<dedupe key>`, as the
    pipeline makes it (`tg:<update_id>`, `wa:msg:<wamid>`)."""


def _turn(dedupe_key: str) -> str:
    return hash_id(ID_HASH_KEY.encode(), f"turn:{dedupe_key}")


def telegram(chat_id: str, number: int, text: str) -> Webhook:
    """A private-chat text message, update id and message id `number`."""
    user = int(chat_id)
    sender = {"id": user, "is_bot": False, "first_name": "Load", "language_code": "en"}
    message = {
        "message_id": number,
        "date": int(time.time()),
        "chat": {"id": user, "type": "private"},
        "from": sender,
        "text": text,
    }
    body = json.dumps({"update_id": number, "message": message}).encode()
    headers = {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET, "Content-Type": "application/json"}
    return Webhook(path=TELEGRAM_PATH, body=body, headers=headers, turn=_turn(f"tg:{number}"))


def whatsapp(wa_id: str, number: int, text: str) -> Webhook:
    """A text message from `wa_id`, signed with the app secret over the raw body."""
    wamid = f"wamid.LOAD{number:010d}"
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001", "phone_number_id": WA_PHONE},
        "contacts": [{"profile": {"name": "Load"}, "wa_id": wa_id}],
        "messages": [
            {
                "from": wa_id,
                "id": wamid,
                "timestamp": str(int(time.time())),
                "type": "text",
                "text": {"body": text},
            }
        ],
    }
    change = {"field": "messages", "value": value}
    entry = {"id": "waba", "changes": [change]}
    body = json.dumps({"object": "whatsapp_business_account", "entry": [entry]}).encode()
    signature = "sha256=" + hmac.new(WA_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-Hub-Signature-256": signature, "Content-Type": "application/json"}
    return Webhook(path=WHATSAPP_PATH, body=body, headers=headers, turn=_turn(f"wa:msg:{wamid}"))
