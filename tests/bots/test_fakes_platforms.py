"""The platform fakes speak the real protocols: aiogram's own Bot client and plain aiohttp."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ChatAction, ParseMode
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.methods import TelegramMethod
from aiogram.types import BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup

from tests.fakes.telegram import FakeTelegram, Fault
from tests.fakes.whatsapp import PAIR_RATE_LIMIT, FakeWhatsApp

TOKEN = "123456789:AAFakeTokenForTests_0123456789abcdef"
CHAT = 4242
KEYBOARD = InlineKeyboardMarkup(
    inline_keyboard=[
        [
            InlineKeyboardButton(text="👍", callback_data="fb:t1:up"),
            InlineKeyboardButton(text="👎", callback_data="fb:t1:down"),
        ]
    ]
)


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN) as fake:
        yield fake


@pytest.fixture
async def bot(telegram: FakeTelegram) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(telegram.url))
    async with Bot(TOKEN, session=session) as client:
        yield client


async def test_get_me_answers_as_the_bot(bot: Bot) -> None:
    me = await bot.get_me()

    assert (me.id, me.is_bot, me.username) == (123456789, True, "fake_bot")


async def test_the_webhook_is_set_read_and_deleted(bot: Bot, telegram: FakeTelegram) -> None:
    await bot.set_webhook(
        url="https://bot.example/telegram/webhook",
        secret_token="s3cret",
        allowed_updates=["message", "callback_query"],
        max_connections=12,
    )
    telegram.pending_update_count = 3
    telegram.last_error = (
        1_700_000_000,
        "Wrong response from the webhook: 503 Service Unavailable",
    )

    info = await bot.get_webhook_info()
    await bot.delete_webhook(drop_pending_updates=True)
    after = await bot.get_webhook_info()

    assert telegram.webhook == {}
    assert telegram.calls_to("setWebhook")[0].params == {
        "url": "https://bot.example/telegram/webhook",
        "secret_token": "s3cret",
        "allowed_updates": ["message", "callback_query"],
        "max_connections": 12,
    }
    assert (info.url, info.pending_update_count, info.max_connections, info.allowed_updates) == (
        "https://bot.example/telegram/webhook",
        3,
        12,
        ["message", "callback_query"],
    )
    assert info.last_error_message == "Wrong response from the webhook: 503 Service Unavailable"
    assert info.last_error_date is not None
    assert (after.url, after.pending_update_count, after.last_error_date) == (
        "",
        0,
        info.last_error_date,
    )


async def test_uploads_arrive_as_multipart_files(bot: Bot, telegram: FakeTelegram) -> None:
    certificate = BufferedInputFile(b"-----BEGIN CERTIFICATE-----", filename="cert.pem")

    await bot.set_webhook(url="https://bot.example/hook", certificate=certificate)

    call = telegram.calls_to("setWebhook")[0]
    assert call.content_type == "multipart/form-data"
    assert list(call.files.values()) == [b"-----BEGIN CERTIFICATE-----"]
    assert str(call.params["certificate"]).startswith("attach://")
    assert (await bot.get_webhook_info()).has_custom_certificate is True


async def test_a_message_with_buttons_is_sent_and_its_markup_recorded(
    bot: Bot, telegram: FakeTelegram
) -> None:
    sent = await bot.send_message(CHAT, "The answer.", reply_markup=KEYBOARD)

    assert (sent.message_id, sent.chat.id, sent.text) == (1, CHAT, "The answer.")
    assert sent.reply_markup is not None
    assert sent.reply_markup.model_dump() == KEYBOARD.model_dump()
    call = telegram.calls_to("sendMessage")[0]
    assert call.content_type == "application/x-www-form-urlencoded"
    assert call.params["reply_markup"] == {
        "inline_keyboard": [
            [
                {"text": "👍", "callback_data": "fb:t1:up"},
                {"text": "👎", "callback_data": "fb:t1:down"},
            ]
        ]
    }


async def test_editing_to_the_same_text_is_message_not_modified(bot: Bot) -> None:
    sent = await bot.send_message(-100123, "draft 1")

    edited = await bot.edit_message_text("draft 2", chat_id=-100123, message_id=sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("draft 2", chat_id=-100123, message_id=sent.message_id)

    assert not isinstance(edited, bool)
    assert (edited.text, edited.chat.type) == ("draft 2", "supergroup")


async def test_editing_a_message_that_does_not_exist_is_refused(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=CHAT, message_id=999)


async def test_the_buttons_can_be_replaced_once(bot: Bot) -> None:
    sent = await bot.send_message(CHAT, "rate me", reply_markup=KEYBOARD)
    chosen = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="👍 thanks", callback_data="fb:t1:noop")]]
    )

    await bot.edit_message_reply_markup(
        chat_id=CHAT, message_id=sent.message_id, reply_markup=chosen
    )
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_reply_markup(
            chat_id=CHAT, message_id=sent.message_id, reply_markup=chosen
        )


async def test_drafts_actions_and_callback_answers_are_recorded(
    bot: Bot, telegram: FakeTelegram
) -> None:
    assert await bot.send_message_draft(CHAT, draft_id=77, text="Thinking", can_stop=True)
    assert await bot.send_chat_action(CHAT, ChatAction.TYPING)
    assert await bot.answer_callback_query("cbq-1", text="Thanks!")

    assert [(c.method, c.params) for c in telegram.calls] == [
        (
            "sendMessageDraft",
            {"chat_id": CHAT, "draft_id": 77, "text": "Thinking", "can_stop": True},
        ),
        ("sendChatAction", {"chat_id": CHAT, "action": "typing"}),
        ("answerCallbackQuery", {"callback_query_id": "cbq-1", "text": "Thanks!"}),
    ]


async def test_a_scripted_429_carries_retry_after(bot: Bot, telegram: FakeTelegram) -> None:
    telegram.fail("sendMessage", Fault.too_many_requests(3))

    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(CHAT, "too fast")
    sent = await bot.send_message(CHAT, "later")

    assert (caught.value.retry_after, sent.text) == (3, "later")


async def test_a_rejected_parse_mode_cannot_parse_entities(
    bot: Bot, telegram: FakeTelegram
) -> None:
    telegram.reject_parse_modes.add(ParseMode.MARKDOWN_V2)

    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(CHAT, "*unbalanced", parse_mode=ParseMode.MARKDOWN_V2)
    plain = await bot.send_message(CHAT, "*unbalanced")

    assert plain.text == "*unbalanced"


async def test_a_wrong_token_is_unauthorized(telegram: FakeTelegram) -> None:
    session = AiohttpSession(api=TelegramAPIServer.from_base(telegram.url))
    async with Bot("987:OtherToken", session=session) as other:
        with pytest.raises(TelegramUnauthorizedError):
            await other.get_me()


async def test_an_unknown_method_is_not_found(bot: Bot) -> None:
    class SendDice(TelegramMethod[bool]):
        __returning__ = bool
        __api_method__ = "sendDice"
        chat_id: int

    with pytest.raises(TelegramNotFound):
        await bot(SendDice(chat_id=CHAT))


async def test_json_bodies_and_query_strings_are_accepted(telegram: FakeTelegram) -> None:
    async with aiohttp.ClientSession() as session:
        url = f"{telegram.url}/bot{TOKEN}/sendMessage"
        async with session.post(url, json={"chat_id": CHAT, "text": "json"}) as response:
            by_json = await response.json()
        async with session.get(url, params={"chat_id": str(CHAT), "text": "42"}) as response:
            by_query = await response.json()
        async with session.post(url, json={"text": "no chat"}) as response:
            missing = (response.status, await response.json())

    assert (by_json["result"]["text"], by_query["result"]["text"]) == ("json", "42")
    assert [c.params for c in telegram.calls_to("sendMessage")][:2] == [
        {"chat_id": CHAT, "text": "json"},
        {"chat_id": CHAT, "text": "42"},
    ]
    assert missing == (
        400,
        {"ok": False, "error_code": 400, "description": "Bad Request: chat_id is required"},
    )


# WhatsApp: the Graph API through a plain aiohttp client, as our thin client will use it.

ACCESS_TOKEN = "EAAFakeAccessToken"
PHONE_ID = "1122334455667"
WA_ID = "4915112345678"


@pytest.fixture
async def whatsapp() -> AsyncIterator[FakeWhatsApp]:
    async with FakeWhatsApp(access_token=ACCESS_TOKEN, phone_number_id=PHONE_ID) as fake:
        yield fake


async def graph(
    fake: FakeWhatsApp,
    body: dict[str, object],
    *,
    token: str = ACCESS_TOKEN,
    phone_number_id: str = PHONE_ID,
) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{fake.url}/{phone_number_id}/messages", json=body, headers=headers
        ) as response,
    ):
        answer: dict[str, object] = await response.json()
        return response.status, answer


def error_code(answer: dict[str, object]) -> object:
    error = answer.get("error")
    return error.get("code") if isinstance(error, dict) else None


def text(body: str, **extra: object) -> dict[str, object]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": WA_ID,
        "type": "text",
        "text": {"preview_url": False, "body": body},
        **extra,
    }


def buttons(*titles: str) -> dict[str, object]:
    replies = [
        {"type": "reply", "reply": {"id": f"fb:t1:{n}", "title": t}} for n, t in enumerate(titles)
    ]
    return {
        "messaging_product": "whatsapp",
        "to": WA_ID,
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": "Was this helpful?"},
            "action": {"buttons": replies},
        },
    }


async def test_a_text_message_gets_a_wamid(whatsapp: FakeWhatsApp) -> None:
    status, answer = await graph(whatsapp, text("Hello!", context={"message_id": "wamid.IN"}))

    assert (status, answer) == (
        200,
        {
            "messaging_product": "whatsapp",
            "contacts": [{"input": WA_ID, "wa_id": WA_ID}],
            "messages": [{"id": "wamid.FAKE00000001"}],
        },
    )
    assert [(s.kind, s.wamid, s.version) for s in whatsapp.of_kind("text")] == [
        ("text", "wamid.FAKE00000001", "v26.0")
    ]


async def test_reply_buttons_and_reactions_are_sent(whatsapp: FakeWhatsApp) -> None:
    reaction: dict[str, object] = {
        "messaging_product": "whatsapp",
        "to": WA_ID,
        "type": "reaction",
        "reaction": {"message_id": "wamid.IN", "emoji": "👍"},
    }

    assert (await graph(whatsapp, buttons("👍 Yes", "👎 No", "Stronger model")))[0] == 200
    assert (await graph(whatsapp, reaction))[0] == 200
    assert [s.kind for s in whatsapp.sent] == ["interactive", "reaction"]


async def test_a_read_receipt_with_typing_indicator_succeeds(whatsapp: FakeWhatsApp) -> None:
    receipt: dict[str, object] = {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": "wamid.IN",
        "typing_indicator": {"type": "text"},
    }

    assert await graph(whatsapp, receipt) == (200, {"success": True})
    assert whatsapp.of_kind("read")[0].body["typing_indicator"] == {"type": "text"}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (text("x" * 4097), 100),
        (text(""), 100),
        (buttons("a", "b", "c", "d"), 131009),
        (buttons("a title longer than twenty"), 131009),
        ({**buttons("ok"), "interactive": {"type": "list"}}, 100),
        ({"messaging_product": "whatsapp", "status": "read"}, 100),
        (
            {
                "messaging_product": "whatsapp",
                "status": "read",
                "message_id": "w",
                "typing_indicator": {"type": "x"},
            },
            100,
        ),
        ({"to": WA_ID, "type": "text", "text": {"body": "no product"}}, 100),
    ],
    ids=[
        "long",
        "empty",
        "four-buttons",
        "long-title",
        "list",
        "read-no-id",
        "typing-type",
        "product",
    ],
)
async def test_invalid_requests_get_graph_errors(
    whatsapp: FakeWhatsApp, body: dict[str, object], code: int
) -> None:
    status, answer = await graph(whatsapp, body)

    assert (status, error_code(answer)) == (400, code)


async def test_a_wrong_token_or_number_is_refused(whatsapp: FakeWhatsApp) -> None:
    assert (await graph(whatsapp, text("x"), token="stale"))[0] == 401
    assert (await graph(whatsapp, text("x"), phone_number_id="999"))[0] == 400
    assert whatsapp.of_kind("text") == []


async def test_scripted_errors_are_answered_in_order(whatsapp: FakeWhatsApp) -> None:
    whatsapp.fail(PAIR_RATE_LIMIT, times=2)

    answers = [await graph(whatsapp, text("x")) for _ in range(3)]

    assert [(status, error_code(answer)) for status, answer in answers] == [
        (400, 131056),
        (400, 131056),
        (200, None),
    ]


async def test_a_body_that_is_not_json_is_refused(whatsapp: FakeWhatsApp) -> None:
    headers = {"Authorization": f"Bearer {ACCESS_TOKEN}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{whatsapp.url}/{PHONE_ID}/messages", data=b"{", headers=headers) as response,
    ):
        assert response.status == 400
