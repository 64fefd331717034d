"""WhatsApp webhook bodies → InboundMessages: batches, kinds, BSUIDs, statuses, signatures."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import Counter
from typing import Any, cast

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from bots.errors import BadUpdate
from bots.types import InboundMessage
from bots.whatsapp_ingest import parse_webhook, signature_valid
from tests.bots.json_mutation import Json, flip, json_values, mutations, scalars

PHONE_ID = "1122334455667"
WA_ID = "4915112345678"
BSUID = "DE.1410018717833190"


def envelope(*values: dict[str, Json], field: str = "messages", entries: int = 1) -> bytes:
    changes = [{"field": field, "value": value} for value in values]
    entry = [{"id": f"waba-{n}", "changes": changes} for n in range(entries)]
    return json.dumps({"object": "whatsapp_business_account", "entry": entry}).encode()


def value(
    messages: list[Json] | None = None,
    statuses: list[Json] | None = None,
    contacts: list[Json] | None = None,
    phone_number_id: str = PHONE_ID,
) -> dict[str, Json]:
    result: dict[str, Json] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001", "phone_number_id": phone_number_id},
    }
    if messages is not None:
        result["messages"] = messages
        result["contacts"] = (
            contacts if contacts is not None else [{"profile": {"name": "Ada"}, "wa_id": WA_ID}]
        )
    if statuses is not None:
        result["statuses"] = statuses
    return result


def msg(kind: str = "text", wamid: str = "wamid.A1", **fields: Json) -> dict[str, Json]:
    base: dict[str, Json] = {"from": WA_ID, "id": wamid, "timestamp": "1700000000", "type": kind}
    if kind == "text" and "text" not in fields:
        base["text"] = {"body": "hello"}
    return {**base, **fields}


def status(state: str = "delivered", wamid: str = "wamid.OUR1", **fields: Json) -> dict[str, Json]:
    return {
        "id": wamid,
        "status": state,
        "timestamp": "1700000100",
        "recipient_id": WA_ID,
        **fields,
    }


def one(raw: bytes, **kwargs: Any) -> InboundMessage:
    parsed = parse_webhook(raw, **kwargs)
    assert len(parsed) == 1
    return parsed[0]


def test_a_text_message_becomes_a_text_message_keyed_by_wa_id() -> None:
    assert parse_webhook(envelope(value([msg()]))) == [
        InboundMessage(
            channel="whatsapp",
            dedupe_key="wa:msg:wamid.A1",
            chat_id=WA_ID,
            user_id=WA_ID,
            kind="text",
            text="hello",
            message_id="wamid.A1",
            ts=1_700_000_000.0,
            chat_type="private",
        )
    ]


def test_a_bsuid_on_the_message_keys_the_user() -> None:
    contacts: list[Json] = [{"wa_id": WA_ID, "user_id": BSUID}]

    parsed = one(envelope(value([msg(from_user_id=BSUID)], contacts=contacts)))

    assert (parsed.chat_id, parsed.user_id) == (BSUID, BSUID)


def test_a_bsuid_on_the_matching_contact_keys_the_user() -> None:
    contacts: list[Json] = [
        {"wa_id": "111", "user_id": "XX.1"},
        {"wa_id": WA_ID, "user_id": BSUID},
    ]

    assert one(envelope(value([msg()], contacts=contacts))).user_id == BSUID


def test_a_user_whose_phone_number_is_withheld_is_keyed_by_bsuid() -> None:
    withheld = msg()
    del withheld["from"]
    contacts: list[Json] = [{"profile": {"name": "Ada", "username": "ada"}, "user_id": BSUID}]

    assert one(envelope(value([withheld], contacts=contacts))).user_id == BSUID


def test_a_message_without_any_sender_is_ignored() -> None:
    anonymous = msg()
    del anonymous["from"]
    ignored: Counter[str] = Counter()

    assert parse_webhook(envelope(value([anonymous], contacts=[])), ignored=ignored) == []
    assert ignored == Counter({"message:no_sender": 1})


@pytest.mark.parametrize(
    ("interactive", "payload"),
    [
        ({"type": "button_reply", "button_reply": {"id": "fb:t1:up", "title": "👍"}}, "fb:t1:up"),
        ({"type": "list_reply", "list_reply": {"id": "fb:t1:more", "title": "x"}}, "fb:t1:more"),
    ],
    ids=["button", "list"],
)
def test_a_reply_button_is_feedback_on_the_message_with_the_buttons(
    interactive: dict[str, Json], payload: str
) -> None:
    tapped = msg("interactive", interactive=interactive, context={"from": "1555", "id": "wamid.Q"})

    parsed = one(envelope(value([tapped])))

    assert (parsed.kind, parsed.payload, parsed.message_id, parsed.text) == (
        "feedback",
        payload,
        "wamid.Q",
        "",
    )


def test_a_template_quick_reply_is_feedback_with_its_payload() -> None:
    tapped = msg(
        "button", button={"payload": "fb:t2:down", "text": "👎"}, context={"id": "wamid.T"}
    )

    parsed = one(envelope(value([tapped])))

    assert (parsed.kind, parsed.payload, parsed.message_id) == ("feedback", "fb:t2:down", "wamid.T")


@pytest.mark.parametrize(
    ("reaction", "payload"),
    [
        ({"message_id": "wamid.OUR", "emoji": "👍"}, "👍"),
        ({"message_id": "wamid.OUR", "emoji": ""}, ""),
        ({"message_id": "wamid.OUR"}, ""),
    ],
    ids=["added", "removed-empty", "removed-absent"],
)
def test_a_reaction_names_the_message_and_the_emoji(
    reaction: dict[str, Json], payload: str
) -> None:
    parsed = one(envelope(value([msg("reaction", reaction=reaction)])))

    assert (parsed.kind, parsed.payload, parsed.message_id, parsed.dedupe_key) == (
        "reaction",
        payload,
        "wamid.OUR",
        "wa:msg:wamid.A1",
    )


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (msg("image", image={"id": "m1", "mime_type": "image/jpeg"}), "message:image"),
        (msg("unsupported", errors=[{"code": 131051}]), "message:unsupported"),
        (msg("edit", edit={"original_message_id": "wamid.A0"}), "message:edit"),
        (msg("text", text=None), "message:text"),
        (msg("button", button={"text": "no payload"}), "message:button"),
        (
            msg("interactive", interactive={"type": "nfm_reply", "nfm_reply": {}}),
            "interactive:nfm_reply",
        ),
    ],
    ids=["image", "unsupported", "edit", "text-without-body", "button-without-payload", "flow"],
)
def test_unsupported_messages_are_ignored_and_counted(
    message: dict[str, Json], reason: str
) -> None:
    ignored: Counter[str] = Counter()

    assert parse_webhook(envelope(value([message])), ignored=ignored) == []
    assert ignored == Counter({reason: 1})


def test_a_status_is_keyed_by_message_and_state() -> None:
    assert parse_webhook(envelope(value(statuses=[status("read")]))) == [
        InboundMessage(
            channel="whatsapp",
            dedupe_key="wa:st:wamid.OUR1:read",
            chat_id=WA_ID,
            user_id=WA_ID,
            kind="status",
            message_id="wamid.OUR1",
            ts=1_700_000_100.0,
            payload="read",
        )
    ]


def test_a_failed_status_keeps_its_error_codes_in_text() -> None:
    errors: list[Json] = [{"code": 131047, "title": "Re-engagement message"}, {"code": 131026}]

    parsed = one(envelope(value(statuses=[status("failed", errors=errors)])))

    assert (parsed.payload, parsed.text) == ("failed", "131047,131026")


def test_a_status_names_the_recipient_by_bsuid_first() -> None:
    parsed = one(envelope(value(statuses=[status(recipient_user_id=BSUID)])))

    assert (parsed.chat_id, parsed.user_id) == (BSUID, BSUID)


def test_a_group_status_is_keyed_by_the_group_and_participant() -> None:
    group = status(recipient_type="group", recipient_id="G-1", recipient_participant_id=WA_ID)

    parsed = one(envelope(value(statuses=[group])))

    assert (parsed.chat_id, parsed.user_id, parsed.chat_type) == ("G-1", WA_ID, "group")


def test_a_status_without_a_recipient_is_ignored() -> None:
    nobody = status()
    del nobody["recipient_id"]
    ignored: Counter[str] = Counter()

    assert parse_webhook(envelope(value(statuses=[nobody])), ignored=ignored) == []
    assert ignored == Counter({"status:no_recipient": 1})


def test_every_entry_change_and_message_of_a_batch_is_parsed_in_order() -> None:
    first = value([msg(wamid="wamid.1"), msg(wamid="wamid.2")])
    second = value([msg(wamid="wamid.3"), msg(wamid="wamid.4")])

    parsed = parse_webhook(envelope(first, second, entries=2))

    assert [m.dedupe_key for m in parsed] == [f"wa:msg:wamid.{n}" for n in (1, 2, 3, 4, 1, 2, 3, 4)]


def test_messages_and_statuses_of_one_change_are_all_parsed() -> None:
    mixed = value([msg()], statuses=[status("sent"), status("delivered")])

    assert [m.kind for m in parse_webhook(envelope(mixed))] == ["text", "status", "status"]


def test_changes_for_another_business_number_are_skipped() -> None:
    ours, theirs = value([msg(wamid="wamid.ours")]), value([msg()], phone_number_id="999")
    ignored: Counter[str] = Counter()

    parsed = parse_webhook(envelope(ours, theirs), phone_number_id=PHONE_ID, ignored=ignored)

    assert [m.dedupe_key for m in parsed] == ["wa:msg:wamid.ours"]
    assert ignored == Counter({"other_phone_number": 1})


def test_other_fields_and_objects_are_ignored_and_counted() -> None:
    ignored: Counter[str] = Counter()
    other_object = json.dumps({"object": "page", "entry": []}).encode()

    assert parse_webhook(envelope({"event": "x"}, field="account_update"), ignored=ignored) == []
    assert parse_webhook(other_object, ignored=ignored) == []
    assert ignored == Counter({"field:account_update": 1, "object:page": 1})


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"[]",
        b"\xff",
        b'{"entry": []}',
        b'{"object": "whatsapp_business_account", "entry": {}}',
        b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": 1}]}]}',
        b'{"object": "whatsapp_business_account", "entry": [], "x": NaN}',
        b'{"object": "whatsapp_business_account", "entry": [], "x": 1e400}',
        b'{"object": "whatsapp_business_account", "entry": [], "x": 99999999999999999999}',
        b'{"object": "whatsapp_business_account", "entry": [], "x": '
        + b"[" * 50
        + b"]" * 50
        + b"}",
        envelope(value([msg(id=5)])),
        envelope(value([msg(timestamp=1700000000)])),
        envelope(value([msg(timestamp="yesterday")])),
        envelope(value([msg(text={"body": 7})])),
        envelope(value([msg(wamid="")])),
        envelope(value(statuses=[status(errors=[{"code": True}])])),
        envelope(value(statuses=[status(status="")])),
        envelope(value([msg()], contacts=[{"wa_id": 4915}])),
        envelope({"messages": "not a list"}),
        envelope(cast(dict[str, Json], {"metadata": {"phone_number_id": 1}})),
    ],
    ids=lambda raw: raw[:60].decode("latin-1"),
)
def test_malformed_bodies_raise_bad_update(raw: bytes) -> None:
    with pytest.raises(BadUpdate):
        parse_webhook(raw)


def test_a_refused_body_counts_nothing_as_ignored() -> None:
    ignored: Counter[str] = Counter()
    image = msg("image", image={"id": "m"})

    with pytest.raises(BadUpdate):
        parse_webhook(envelope(value([image]), value([msg(id=5)])), ignored=ignored)
    assert ignored == Counter()


def test_a_change_value_that_is_not_an_object_is_bad() -> None:
    raw = json.dumps(
        {"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages"}]}]}
    ).encode()

    with pytest.raises(BadUpdate):
        parse_webhook(raw)


# Signatures: X-Hub-Signature-256 is sha256=<hex HMAC-SHA256(app secret, raw body)>.

SECRET = b"app-secret-for-tests"


def sign(body: bytes, secret: bytes = SECRET) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def test_the_signature_of_the_raw_body_is_valid() -> None:
    raw = envelope(value([msg(text={"body": "grüße 👋"})]))

    assert signature_valid(SECRET, raw, sign(raw)) is True


@pytest.mark.parametrize(
    "header",
    [
        "",
        "sha256=",
        "sha1=" + "0" * 40,
        sign(b"{}").upper(),
        sign(b"{}").replace("sha256=", "SHA256="),
        sign(b"{}")[7:],
        sign(b"{}") + " ",
        sign(b"{}", secret=b"another secret"),
        "sha256=ümlaut",
        "sha256=\udcff",
    ],
)
def test_anything_but_the_exact_signature_is_refused(header: str) -> None:
    assert signature_valid(SECRET, b"{}", header) is False


@settings(max_examples=2000, deadline=None, database=None)
@given(st.binary(min_size=1, max_size=512), st.integers(min_value=0))
def test_a_single_bit_flip_in_the_body_is_refused(body: bytes, bit: int) -> None:
    assert signature_valid(SECRET, flip(body, bit), sign(body)) is False


@settings(max_examples=2000, deadline=None, database=None)
@given(st.binary(max_size=512), st.integers(min_value=0))
def test_a_single_bit_flip_in_the_signature_is_refused(body: bytes, bit: int) -> None:
    header = flip(sign(body).encode(), bit).decode("latin-1")

    assert signature_valid(SECRET, body, header) is False


@settings(max_examples=500, deadline=None, database=None)
@given(st.binary(max_size=2048), st.binary(min_size=1, max_size=64))
def test_a_valid_signature_is_always_accepted(body: bytes, secret: bytes) -> None:
    assert signature_valid(secret, body, sign(body, secret)) is True


# Property: whatever arrives, the parser returns messages or raises BadUpdate, nothing else.

LEAVES = scalars("", "1700000000", "messages", "text", "group", "whatsapp_business_account")
ANY_JSON = json_values(LEAVES)
TEMPLATE: Json = json.loads(
    envelope(
        value(
            [
                msg(from_user_id=BSUID, context={"id": "wamid.C"}),
                msg(
                    "interactive", interactive={"type": "button_reply", "button_reply": {"id": "x"}}
                ),
                msg("button", button={"payload": "fb:1"}),
                msg("reaction", reaction={"message_id": "wamid.R", "emoji": "👍"}),
            ],
            statuses=[
                status("failed", errors=[{"code": 1}], recipient_user_id=BSUID),
                status(recipient_type="group", recipient_participant_id="p"),
            ],
            contacts=[{"wa_id": WA_ID, "user_id": BSUID}],
        ),
        entries=2,
    )
)


def _parse_or_refuse(raw: bytes) -> None:
    try:
        result = parse_webhook(raw, phone_number_id=PHONE_ID, ignored=Counter())
    except BadUpdate:
        event("refused")
        return
    event(f"parsed {len(result)}")
    assert all(isinstance(message, InboundMessage) for message in result)


@settings(max_examples=3100, deadline=None, database=None)
@given(mutations([TEMPLATE], LEAVES | ANY_JSON) | ANY_JSON)
def test_any_json_is_parsed_or_refused_with_bad_update(document: Json) -> None:
    _parse_or_refuse(json.dumps(document, allow_nan=True).encode())


@settings(max_examples=500, deadline=None, database=None)
@given(st.binary(max_size=200))
def test_any_bytes_are_parsed_or_refused_with_bad_update(raw: bytes) -> None:
    _parse_or_refuse(raw)
