"""Telegram Update bodies → InboundMessage: kinds, ids, ignored types, and refusals as BadUpdate."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from bots.errors import BadUpdate
from bots.telegram_ingest import parse_update
from bots.types import InboundMessage
from tests.bots.json_mutation import Json, json_values, mutations, scalars

USER: dict[str, Json] = {"id": 4242, "is_bot": False, "first_name": "Ada", "language_code": "de"}
PRIVATE: dict[str, Json] = {"id": 4242, "type": "private", "first_name": "Ada"}
GROUP: dict[str, Json] = {"id": -100123, "type": "supergroup", "title": "Team"}


def body(update: object) -> bytes:
    return json.dumps(update).encode()


def message(chat: dict[str, Json] = PRIVATE, **fields: Json) -> dict[str, Json]:
    return {"message_id": 7, "date": 1_700_000_000, "chat": chat, "from": USER, **fields}


def test_a_private_text_message_becomes_a_text_message() -> None:
    raw = body({"update_id": 10, "message": message(text="hello")})

    assert parse_update(raw) == InboundMessage(
        channel="telegram",
        dedupe_key="tg:10",
        chat_id="4242",
        user_id="4242",
        kind="text",
        text="hello",
        message_id="7",
        ts=1_700_000_000.0,
        chat_type="private",
        language="de",
    )


def test_a_supergroup_message_is_a_group_message_from_its_sender() -> None:
    parsed = parse_update(body({"update_id": 11, "message": message(GROUP, text="hi all")}))

    assert parsed is not None
    assert (parsed.chat_id, parsed.user_id, parsed.chat_type) == ("-100123", "4242", "group")


def test_a_caption_counts_as_text() -> None:
    update = {"update_id": 12, "message": message(caption="what is this?", photo=[{"x": 1}])}

    parsed = parse_update(body(update))

    assert parsed is not None
    assert (parsed.kind, parsed.text) == ("text", "what is this?")


def test_an_edited_message_is_text_stamped_with_its_edit_date() -> None:
    edited = message(text="fixed typo", edit_date=1_700_000_500)

    parsed = parse_update(body({"update_id": 13, "edited_message": edited}))

    assert parsed is not None
    assert (parsed.kind, parsed.text, parsed.ts, parsed.dedupe_key, parsed.edited) == (
        "text",
        "fixed typo",
        1_700_000_500.0,
        "tg:13",
        True,
    )


def test_a_message_in_a_topic_keeps_its_thread_id() -> None:
    in_topic = message(text="hello", message_thread_id=42)

    parsed = parse_update(body({"update_id": 16, "message": in_topic}))

    assert parsed is not None
    assert (parsed.thread_id, parsed.edited) == ("42", False)


def test_an_anonymous_admin_is_keyed_by_the_sender_chat() -> None:
    anonymous = message(GROUP, text="as the group", sender_chat=GROUP)
    del anonymous["from"]

    parsed = parse_update(body({"update_id": 14, "message": anonymous}))

    assert parsed is not None
    assert (parsed.user_id, parsed.language) == ("-100123", None)


def test_a_feedback_button_press_is_feedback_on_the_message_with_the_buttons() -> None:
    query = {
        "id": "cbq-1",
        "from": USER,
        "chat_instance": "x",
        "data": "fb:turn-9:up",
        "message": message(GROUP, text="the answer", message_id=77),
    }

    parsed = parse_update(body({"update_id": 15, "callback_query": query}), received_at=123.5)

    assert parsed == InboundMessage(
        channel="telegram",
        dedupe_key="tg:15",
        chat_id="-100123",
        user_id="4242",
        kind="feedback",
        message_id="77",
        ts=123.5,
        chat_type="group",
        payload="fb:turn-9:up",
        language="de",
        callback_id="cbq-1",
    )


def test_a_button_on_an_inaccessible_message_still_names_the_chat_and_message() -> None:
    inaccessible = {"chat": PRIVATE, "message_id": 78, "date": 0}
    query = {"id": "c", "from": USER, "chat_instance": "x", "data": "fb:t:down"}

    parsed = parse_update(
        body({"update_id": 16, "callback_query": {**query, "message": inaccessible}})
    )

    assert parsed is not None
    assert (parsed.kind, parsed.message_id, parsed.payload) == ("feedback", "78", "fb:t:down")


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({"data": "menu:open", "message": message(text="x")}, "callback_query:not_feedback"),
        ({"message": message(text="x")}, "callback_query:not_feedback"),
        ({"data": "fb:t:up", "inline_message_id": "i"}, "callback_query:inline_message"),
        (
            {"data": "fb:t:up", "message": message({"id": -5, "type": "channel"}, text="x")},
            "callback_query:chat_type",
        ),
    ],
    ids=["other-data", "no-data", "inline", "channel"],
)
def test_other_button_presses_are_ignored_and_counted(query: dict[str, Json], reason: str) -> None:
    ignored: Counter[str] = Counter()
    update = {"update_id": 17, "callback_query": {"id": "c", "from": USER, **query}}

    assert parse_update(body(update), ignored=ignored) is None
    assert ignored == Counter({reason: 1})


def reaction(new: list[Json], old: list[Json] | None = None, **fields: Json) -> dict[str, Json]:
    return {
        "chat": PRIVATE,
        "message_id": 99,
        "date": 1_700_000_100,
        "user": USER,
        "old_reaction": old or [],
        "new_reaction": new,
        **fields,
    }


def emoji(value: str) -> dict[str, Json]:
    return {"type": "emoji", "emoji": value}


@pytest.mark.parametrize(
    ("update", "payload"),
    [
        (reaction([emoji("👍")]), "👍"),
        (reaction([], old=[emoji("👍")]), ""),
        (reaction([emoji("👎")], old=[emoji("👍")]), "👎"),
        (reaction([emoji("❤"), emoji("👎")], old=[emoji("❤")]), "👎"),
        (reaction([emoji("❤")], old=[emoji("❤"), emoji("👍")]), "❤"),
    ],
    ids=["added", "removed", "changed", "one-more", "one-less"],
)
def test_a_reaction_carries_the_new_emoji_or_empty_when_removed(
    update: dict[str, Json], payload: str
) -> None:
    parsed = parse_update(body({"update_id": 18, "message_reaction": update}))

    assert parsed is not None
    assert (parsed.kind, parsed.payload, parsed.message_id, parsed.ts, parsed.user_id) == (
        "reaction",
        payload,
        "99",
        1_700_000_100.0,
        "4242",
    )


def test_an_anonymous_reaction_is_keyed_by_the_actor_chat() -> None:
    update = reaction([emoji("👍")], chat=GROUP, actor_chat=GROUP)
    del update["user"]

    parsed = parse_update(body({"update_id": 19, "message_reaction": update}))

    assert parsed is not None
    assert (parsed.user_id, parsed.chat_type) == ("-100123", "group")


def test_a_custom_emoji_reaction_is_ignored() -> None:
    ignored: Counter[str] = Counter()
    custom = reaction([{"type": "custom_emoji", "custom_emoji_id": "5"}])

    assert (
        parse_update(body({"update_id": 20, "message_reaction": custom}), ignored=ignored) is None
    )
    assert ignored == Counter({"message_reaction:not_emoji": 1})


def test_a_stopped_draft_is_a_stop_naming_the_draft() -> None:
    stopped = {"chat": PRIVATE, "draft_id": 555}

    parsed = parse_update(
        body({"update_id": 21, "stopped_message_generation": stopped}), received_at=9.0
    )

    assert parsed == InboundMessage(
        channel="telegram",
        dedupe_key="tg:21",
        chat_id="4242",
        user_id="4242",
        kind="stop",
        ts=9.0,
        chat_type="private",
        payload="555",
    )


@pytest.mark.parametrize(
    ("update", "reason"),
    [
        ({"poll": {"id": "p"}}, "poll"),
        ({"chat_member": {"x": 1}}, "chat_member"),
        ({"inline_query": {"id": "q"}}, "inline_query"),
        ({"something_new": {}}, "unknown"),
        ({}, "unknown"),
        ({"message": message(sticker={"file_id": "f"})}, "message:no_text"),
        ({"edited_message": message(text="")}, "edited_message:no_text"),
        ({"message": message({"id": -7, "type": "channel"}, text="x")}, "message:chat_type"),
        (
            {"message_reaction": reaction([], chat={"id": -7, "type": "channel"})},
            "message_reaction:chat_type",
        ),
        (
            {"stopped_message_generation": {"chat": {"id": -7, "type": "x"}, "draft_id": 1}},
            "stopped_message_generation:chat_type",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_updates_we_do_not_handle_are_none_and_counted_by_type(
    update: dict[str, Json], reason: str
) -> None:
    ignored: Counter[str] = Counter()

    assert parse_update(body({"update_id": 22, **update}), ignored=ignored) is None
    assert ignored == Counter({reason: 1})


def test_an_ignored_update_without_a_counter_is_just_none() -> None:
    assert parse_update(body({"update_id": 23, "poll": {}})) is None


DEEP = b'{"update_id": 1, "poll": ' + b"[" * 40 + b"]" * 40 + b"}"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b'{"update_id": 1',
        b"[]",
        b'"update"',
        b"\xff\xfe{}",
        b'{"update_id": true, "message": {}}',
        b'{"update_id": 1.0}',
        b'{"update_id": "1"}',
        b'{"update_id": -1}',
        b'{"update_id": 18446744073709551616}',
        b'{"update_id": ' + b"9" * 5000 + b"}",
        b'{"update_id": NaN}',
        b'{"update_id": 1, "poll": Infinity}',
        b'{"update_id": 1, "poll": 1e999}',
        b'{"update_id": 1, "poll": -1e999}',
        DEEP,
        b"[" * 100_000 + b"]" * 100_000,
        body({"update_id": 1, "message": message({"id": True, "type": "private"}, text="x")}),
        body({"update_id": 1, "message": message(text=5)}),
        body({"update_id": 1, "message": {"message_id": 1, "date": 2, "text": "no chat"}}),
        body({"update_id": 1, "callback_query": {"id": "c", "data": "fb:x"}}),
        body({"update_id": 1, "message_reaction": reaction([{"type": 1}])}),
        body({"update_id": 1, "message": message(text="x", date=2**63)}),
        b'{"update_id": 1} trailing',
    ],
    ids=lambda raw: raw[:40].decode("latin-1"),
)
def test_malformed_bodies_raise_bad_update(raw: bytes) -> None:
    with pytest.raises(BadUpdate):
        parse_update(raw)


def test_a_bad_update_error_never_echoes_the_users_text() -> None:
    raw = body({"update_id": 1, "message": {"message_id": "x", "text": "my secret diagnosis"}})

    with pytest.raises(BadUpdate) as caught:
        parse_update(raw)

    assert "my secret diagnosis" not in str(caught.value)


# Property: whatever arrives, the parser returns a value or raises BadUpdate, nothing else.

TEMPLATES: list[Json] = [
    {"update_id": 1, "message": message(GROUP, text="hi", sender_chat=GROUP)},
    {"update_id": 2, "edited_message": message(caption="c", edit_date=5)},
    {
        "update_id": 3,
        "callback_query": {"id": "c", "from": USER, "data": "fb:t:up", "message": message()},
    },
    {
        "update_id": 4,
        "message_reaction": reaction([emoji("👎")], old=[emoji("👍")], actor_chat=GROUP),
    },
    {"update_id": 5, "stopped_message_generation": {"chat": PRIVATE, "draft_id": 3}},
]
LEAVES = scalars([], {}, [1], {"id": 1}, "fb:t:up", "private", "emoji", 2**63, -(2**63) - 1)
ANY_JSON = json_values(LEAVES)


def _parse_or_refuse(raw: bytes) -> None:
    try:
        result = parse_update(raw, ignored=Counter())
    except BadUpdate:
        event("refused")
        return
    event("ignored" if result is None else f"parsed {result.kind}")
    assert result is None or isinstance(result, InboundMessage)


@settings(max_examples=3100, deadline=None, database=None)
@given(mutations(TEMPLATES, LEAVES | ANY_JSON) | ANY_JSON)
def test_any_json_is_parsed_or_refused_with_bad_update(value: Json) -> None:
    _parse_or_refuse(json.dumps(value, allow_nan=True).encode())


@settings(max_examples=500, deadline=None, database=None)
@given(st.binary(max_size=200))
def test_any_bytes_are_parsed_or_refused_with_bad_update(raw: bytes) -> None:
    _parse_or_refuse(raw)
