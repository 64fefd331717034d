"""WhatsApp end to end: signed webhook → 200 → queue → worker → routing → typing indicator →
the answer with reply buttons in the fake Cloud API; on the memory queue and on Redis."""

from __future__ import annotations

import asyncio

from bots.delivery import parse_feedback
from tests.bots.e2e_support import WA_PHONE, WA_USER, Service, fixture_service  # noqa: F401
from tests.bots.pipeline_kit import until
from tests.fakes.llm import Behaviour
from tests.fakes.whatsapp import Sent

QUESTION = "What is the capital of France?"
FRUSTRATED = "That's wrong!!! you didn't answer my question"


def body_text(sent: Sent) -> str:
    interactive = sent.body["interactive"]
    assert isinstance(interactive, dict)
    body = interactive["body"]
    assert isinstance(body, dict)
    return str(body["text"])


def button_ids(sent: Sent) -> list[str]:
    interactive = sent.body["interactive"]
    assert isinstance(interactive, dict)
    action = interactive["action"]
    assert isinstance(action, dict)
    buttons = action["buttons"]
    assert isinstance(buttons, list)
    ids = []
    for button in buttons:
        assert isinstance(button, dict)
        reply = button["reply"]
        assert isinstance(reply, dict)
        ids.append(str(reply["id"]))
    return ids


def turn_of(sent: Sent) -> str:
    parsed = parse_feedback(button_ids(sent)[0])
    assert parsed is not None
    return parsed[0]


async def answers(service: Service, count: int) -> list[Sent]:
    await until(lambda: len(service.wa_answers()) >= count)
    return service.wa_answers()


async def test_a_message_is_answered_once_with_buttons_even_if_delivered_again(
    service: Service,
) -> None:
    service.llm.script("fast-groq", Behaviour(text="Paris is the capital of France."))
    value = service.wa_messages(service.wa_text(QUESTION, wamid="wamid.Q1"))

    statuses = [await service.post_whatsapp(value), await service.post_whatsapp(value)]
    [answer] = await answers(service, 1)
    statuses.append(await service.post_whatsapp(value))  # Meta retries after the answer
    await asyncio.sleep(0.3)

    assert statuses == [200, 200, 200]
    assert len(service.wa_answers()) == 1
    assert (answer.body["to"], body_text(answer)) == (WA_USER, "Paris is the capital of France.")
    assert [b.rsplit(":", 1)[1] for b in button_ids(answer)] == ["up", "down", "stronger"]
    [typing] = service.whatsapp.of_kind("read")
    assert typing.body["message_id"] == "wamid.Q1"
    assert service.llm.count("fast-groq") == 1


async def test_a_frustrated_follow_up_is_answered_again_one_tier_up_with_a_notice(
    service: Service,
) -> None:
    service.llm.script("fast-groq", Behaviour(text="Berlin."))
    service.llm.script("mid-claude", Behaviour(text="Paris, sorry."))
    assert await service.post_whatsapp(service.wa_messages(service.wa_text(QUESTION))) == 200
    first = turn_of((await answers(service, 1))[0])

    assert await service.post_whatsapp(service.wa_messages(service.wa_text(FRUSTRATED))) == 200
    second = (await answers(service, 2))[1]

    notices = [s.body["text"] for s in service.whatsapp.of_kind("text")]
    assert notices == [{"preview_url": False, "body": "Let me try a stronger model…"}]
    assert body_text(second) == "Paris, sorry."
    assert await service.events_of("misroute") == [(turn_of(second), first, "frustration")]


async def test_a_thumbs_down_answers_again_one_tier_up_and_a_failed_status_is_recorded(
    service: Service,
) -> None:
    service.llm.script("mid-claude", Behaviour(text="A better answer."))
    assert await service.post_whatsapp(service.wa_messages(service.wa_text(QUESTION))) == 200
    [answer] = await answers(service, 1)
    first = turn_of(answer)

    press = service.wa_press(f"fb:{first}:down", context=str(answer.wamid))
    assert await service.post_whatsapp(service.wa_messages(press)) == 200
    second = (await answers(service, 2))[1]
    failed = {
        "id": answer.wamid,
        "status": "failed",
        "timestamp": "1700000000",
        "recipient_id": WA_USER,
        "errors": [{"code": 131047, "title": "Re-engagement message"}],
    }
    status = {**service.wa_messages(), "statuses": [failed]}
    assert await service.post_whatsapp(status) == 200

    assert body_text(second) == "A better answer."
    assert await service.events_of("misroute") == [(turn_of(second), first, "rating_down")]
    assert await service.events_of("delivery_failure") == [(first, None, "whatsapp:131047")]
    assert service.whatsapp.sent[0].phone_number_id == WA_PHONE
