"""The escalation policy's steps, end to end through Router.decide."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from routing.router import Router
from routing.types import Conversation, Turn

MakeRouter = Callable[[float, dict[str, str]], Router]


def convo(*texts: str, user: str | None = None, channel: str | None = None) -> Conversation:
    """Alternate user/assistant turns starting with the user; assistant turns answered on 1."""
    turns = tuple(
        Turn(role="user", text=t, ts=60.0 * i)
        if i % 2 == 0
        else Turn(role="assistant", text=t, ts=60.0 * i, tier=1)
        for i, t in enumerate(texts)
    )
    return Conversation(turns=turns, user=user, channel=channel)


@pytest.mark.parametrize(
    ("score", "tier", "name"),
    [(0.0, 1, "fast"), (0.5, 1, "fast"), (0.6, 2, "mid"), (0.8, 2, "mid"), (0.9, 3, "frontier")],
)
def test_base_tier_follows_the_complexity_thresholds(
    make_router: MakeRouter, score: float, tier: int, name: str
) -> None:
    decision = make_router(score, {}).decide(convo("hello there"))
    assert (decision.tier, decision.tier_name) == (tier, name)
    assert decision.reason_codes()[:2] == ("base_tier", "fixed")


def test_just_below_a_threshold_goes_one_step_up_with_a_low_confidence(
    make_router: MakeRouter,
) -> None:
    decision = make_router(0.57, {}).decide(convo("hello there"))
    assert decision.tier == 2
    assert "confidence_band" in decision.reason_codes()
    assert decision.confidence == pytest.approx(0.53)
    assert make_router(0.54, {}).decide(convo("hello there")).tier == 1


def test_confidence_grows_with_distance_from_the_thresholds(make_router: MakeRouter) -> None:
    assert make_router(0.6, {}).decide(convo("x")).confidence == 0.5
    assert make_router(0.0, {}).decide(convo("x")).confidence == 1.0


def test_operator_rule_sets_a_floor_with_its_reason(make_router: MakeRouter) -> None:
    rules = [
        {"pattern": r"\brefund|chargeback", "min_tier": "frontier", "reason": "money at stake"}
    ]
    router = make_router(0.1, {"RULES": json.dumps(rules)})
    decision = router.decide(convo("I want a REFUND for order 12"))
    assert decision.tier == 3
    assert [r.text for r in decision.reasons if r.code == "rule"] == [
        "money at stake (min tier frontier)"
    ]
    assert router.decide(convo("what are your opening hours?")).tier == 1


def test_frustration_escalates_above_the_tier_of_the_failed_answer(
    make_router: MakeRouter,
) -> None:
    conversation = convo(
        "How do I reset my router?",
        "Turn it off and on.",
        "That's WRONG!!! You didn't answer my question at all, this is useless",
    )
    decision = make_router(0.1, {}).decide(conversation)
    assert decision.tier == 2
    assert "escalate_failed_answer" in decision.reason_codes()
    assert decision.scores.frustration >= 0.5


def test_a_calm_follow_up_stays_on_the_cheap_tier(make_router: MakeRouter) -> None:
    conversation = convo("How do I reset my router?", "Hold the button 10 s.", "Thanks, it works")
    decision = make_router(0.1, {}).decide(conversation)
    assert decision.tier == 1
    assert "escalate_failed_answer" not in decision.reason_codes()


def test_a_rephrased_question_escalates_and_names_the_turn_it_repeats(
    make_router: MakeRouter,
) -> None:
    conversation = convo(
        "how do I change the delivery address of my order",
        "You can track your order in the app.",
        "how can I change the delivery address for my order?",
    )
    decision = make_router(0.1, {}).decide(conversation)
    assert decision.tier == 2
    assert decision.repeats == conversation.turns[0]
    assert decision.scores.rephrase >= 0.8


def test_history_raises_the_tier_until_the_context_fits(make_router: MakeRouter) -> None:
    env = {"TIER_CONTEXT_TOKENS": "100,1000,10000", "RESPONSE_RESERVE_TOKENS": "0"}
    long_turn = "word " * 400  # about 500 tokens
    decision = make_router(0.1, env).decide(convo(long_turn))
    assert decision.tier == 2
    assert "context_fit" in decision.reason_codes()
    too_long = make_router(0.1, env).decide(convo("word " * 10_000))
    assert too_long.tier == 3
    assert too_long.reason_codes()[-2:] == ("context_fit", "context_exceeds")


def test_channel_floor_and_ceiling(make_router: MakeRouter) -> None:
    env = {"CHANNEL_FLOORS": '{"vip": "mid"}', "CHANNEL_CEILINGS": '{"sms": 1}'}
    assert make_router(0.1, env).decide(convo("hi", channel="vip")).tier == 2
    capped = make_router(0.9, env).decide(convo("hi", channel="sms"))
    assert capped.tier == 1
    assert "channel_ceiling" in capped.reason_codes()
    assert make_router(0.9, env).decide(convo("hi", channel="telegram")).tier == 3


def test_entitlement_caps_standard_users_and_lets_premium_users_through(
    make_router: MakeRouter,
) -> None:
    env = {
        "DEFAULT_MAX_TIER": "mid",
        "PREMIUM_USERS": "alice, bob",
        "PREMIUM_USER_PATTERN": r"vip-\d+",
    }
    router = make_router(0.95, env)
    standard = router.decide(convo("prove the Riemann hypothesis", user="carol"))
    assert standard.tier == 2
    assert standard.reason_codes()[-1] == "entitlement_cap"
    assert router.decide(convo("x", user="bob")).tier == 3
    assert router.decide(convo("x", user="vip-7")).tier == 3
    assert router.decide(convo("x", user="vip-7x")).tier == 2
    assert router.decide(convo("x")).tier == 2


def test_single_tier_mode_sends_everything_to_one_tier(make_router: MakeRouter) -> None:
    router = make_router(0.95, {"SINGLE_TIER": "fast"})
    decision = router.decide(convo("a very hard question"))
    assert decision.tier == 1
    assert decision.reason_codes()[-1] == "single_tier"
    assert decision.scores.complexity == 0.95


def test_a_conversation_without_user_turn_is_decided_on_the_cheap_tier(
    make_router: MakeRouter,
) -> None:
    conversation = Conversation(turns=(Turn(role="assistant", text="Welcome!"),))
    decision = make_router(0.0, {}).decide(conversation)
    assert (decision.tier, decision.scores.frustration, decision.scores.rephrase) == (1, 0.0, 0.0)
