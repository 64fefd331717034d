"""The judge of a full-pipeline chaos run: what the platform sent and got acknowledged, set
against what reached the fake Telegram, the outbox records and the dead-letter list.

A message is *answered* when its outbox record says sent and names a message that is in the
chat: the final answer (with the feedback buttons of its turn) or the apology sent when no model
answered. Several messages of one chat may share one turn (coalesced while the chat was busy).
A *duplicate* is a second final message of one turn. *Notices* are messages without buttons
that no outbox record names: the apology a failed first attempt sends before the message is
redelivered. An *inversion* is a turn answered after a later turn of its chat.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bots.chat_state import OutboxRecord
from bots.delivery import parse_feedback
from bots.ids import hash_id
from tests.chaos.platform import Sent
from tests.fakes.telegram import FakeTelegram, Params


def turn_id(id_key: bytes, item: Sent) -> str:
    """The turn id a turn starting with `item` gets (the pipeline's keyed hash)."""
    return hash_id(id_key, f"turn:{item.dedupe_key}")


def buttons_turn(message: Params) -> str | None:
    """The turn id in a message's feedback buttons, or None if it has none."""
    markup = message.get("reply_markup")
    if not isinstance(markup, dict):
        return None
    rows = markup.get("inline_keyboard")
    if not isinstance(rows, list) or not rows or not isinstance(rows[0], list):
        return None
    button = rows[0][0]
    parsed = parse_feedback(str(button.get("callback_data"))) if isinstance(button, dict) else None
    return None if parsed is None else parsed[0]


def inversions(finals: Iterable[tuple[int, int]]) -> dict[int, list[int]]:
    """Chats where a turn was answered after a later turn, with the update ids of their turns
    in the order answered; `finals` are (chat, update id of the turn's first message) in the
    order the platform got them."""
    answered: dict[int, list[int]] = defaultdict(list)
    inverted: set[int] = set()
    for chat, update_id in finals:
        done = answered[chat]
        if update_id not in done and done and update_id < max(done):
            inverted.add(chat)
        done.append(update_id)
    return {chat: answered[chat] for chat in sorted(inverted)}


@dataclass(frozen=True, slots=True, kw_only=True)
class Figures:
    """What a run did to the platform's updates (see the module docstring)."""

    sent: int
    acked: int
    answered: int
    apologised: int
    turns: int
    duplicated: int
    phantom: int
    """Final messages of a turn no sent update starts (must be 0)."""
    lost: int
    dead_lettered: int
    notices: int
    inversions: int
    inverted: dict[int, list[int]]
    """Chats out of order: the first update ids of their turns, in the order answered."""

    def row(self) -> dict[str, object]:
        """The figures for the report (the out-of-order chats only when there are some)."""
        figures = {name: getattr(self, name) for name in self.__slots__}
        if not self.inverted:
            del figures["inverted"]
        return figures


def judge(
    *,
    sent: list[Sent],
    acked: set[int],
    records: Mapping[int, OutboxRecord | None],
    dead: set[str],
    telegram: FakeTelegram,
    id_key: bytes,
) -> Figures:
    """Count what happened to every update the platform sent."""
    by_turn = {turn_id(id_key, item): item for item in sent}
    messages = telegram.messages
    finals = sorted(
        (message_id, chat, turn)
        for (chat, message_id), params in messages.items()
        if (turn := buttons_turn(params)) is not None
    )
    copies = Counter(turn for _, _, turn in finals)
    shown = {
        item.update_id: key
        for item in sent
        if (key := _shown(records.get(item.update_id), item)) in messages
    }
    apologised = {update for update, key in shown.items() if buttons_turn(messages[key]) is None}
    dead_ids = {item.update_id for item in sent if item.dedupe_key in dead}
    order = [(chat, by_turn[turn].update_id) for _, chat, turn in finals if turn in by_turn]
    inverted = inversions(order)
    named = set(shown.values())
    return Figures(
        sent=len(sent),
        acked=len(acked),
        answered=len(shown.keys() & acked),
        apologised=len(apologised & acked),
        turns=len(copies),
        duplicated=sum(n - 1 for n in copies.values()),
        phantom=sum(1 for turn in copies if turn not in by_turn),
        lost=len(acked - shown.keys() - dead_ids),
        dead_lettered=len(dead_ids & acked),
        notices=sum(
            1
            for key, params in messages.items()
            if buttons_turn(params) is None and key not in named
        ),
        inversions=len(inverted),
        inverted=inverted,
    )


def _shown(record: OutboxRecord | None, item: Sent) -> tuple[int, int] | None:
    """The (chat, message id) the outbox record names as the answer, if it says sent."""
    if record is None or record.status != "sent" or record.platform_message_id is None:
        return None
    return item.chat_id, int(record.platform_message_id)
