"""Settings: every knob from env, and a bad value fails naming its variable."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from routing.errors import ConfigError
from routing.policy import Policy

MakePolicy = Callable[[dict[str, str]], Policy]


def test_defaults_give_three_tiers(make_policy: MakePolicy) -> None:
    policy = make_policy({})
    assert policy.tier_names == ("fast", "mid", "frontier")
    assert policy.top == 3
    assert policy.default_max_tier == 3
    assert policy.single_tier is None
    assert policy.rephrase_window_seconds == 1800.0


def test_every_knob_is_read_from_env(make_policy: MakePolicy) -> None:
    policy = make_policy(
        {
            "TIERS": "a, b, c, d",
            "TIER_CONTEXT_TOKENS": "8000,32000,128000,200000",
            "COMPLEXITY_THRESHOLDS": "0.2,0.5,0.9",
            "CONFIDENCE_BAND": "0.1",
            "FRUSTRATION_THRESHOLD": "0.7",
            "REPHRASE_THRESHOLD": "0.9",
            "REPHRASE_WINDOW_TURNS": "3",
            "REPHRASE_WINDOW_MINUTES": "2",
            "RESPONSE_RESERVE_TOKENS": "500",
            "RULES": '[{"pattern": "legal", "min_tier": 3}]',
            "DEFAULT_MAX_TIER": "c",
            "PREMIUM_MAX_TIER": "4",
            "SINGLE_TIER": "b",
        }
    )
    assert policy.tier_names == ("a", "b", "c", "d")
    assert policy.context_tokens == (8000, 32000, 128000, 200000)
    assert policy.thresholds == (0.2, 0.5, 0.9)
    assert (policy.confidence_band, policy.frustration_threshold) == (0.1, 0.7)
    assert (policy.rephrase_threshold, policy.rephrase_window_turns) == (0.9, 3)
    assert (policy.rephrase_window_seconds, policy.response_reserve_tokens) == (120.0, 500)
    assert [(r.pattern.pattern, r.min_tier) for r in policy.rules] == [("legal", 3)]
    assert (policy.default_max_tier, policy.premium_max_tier, policy.single_tier) == (3, 4, 2)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"TIERS": "a,a,b"}, "TIERBOT_TIERS"),
        ({"TIER_CONTEXT_TOKENS": "1000,2000"}, "TIERBOT_TIER_CONTEXT_TOKENS"),
        ({"TIER_CONTEXT_TOKENS": "1000,lots,3000"}, "TIERBOT_TIER_CONTEXT_TOKENS"),
        ({"COMPLEXITY_THRESHOLDS": "0.9,0.5"}, "TIERBOT_COMPLEXITY_THRESHOLDS"),
        ({"COMPLEXITY_THRESHOLDS": "0.5"}, "TIERBOT_COMPLEXITY_THRESHOLDS"),
        ({"CONFIDENCE_BAND": "-1"}, "TIERBOT_CONFIDENCE_BAND"),
        ({"FRUSTRATION_THRESHOLD": "high"}, "TIERBOT_FRUSTRATION_THRESHOLD"),
        ({"REPHRASE_WINDOW_TURNS": "0"}, "TIERBOT_REPHRASE_WINDOW_TURNS"),
        ({"RULES": '[{"pattern": "(", "min_tier": 2}]'}, "TIERBOT_RULES"),
        ({"RULES": "not json"}, "TIERBOT_RULES"),
        ({"RULES": '[{"pattern": "x", "min_tier": "ultra"}]'}, "TIERBOT_RULES"),
        ({"CHANNEL_FLOORS": '{"whatsapp": 9}'}, "TIERBOT_CHANNEL_FLOORS"),
        (
            {"CHANNEL_FLOORS": '{"sms": 3}', "CHANNEL_CEILINGS": '{"sms": 1}'},
            "TIERBOT_CHANNEL_FLOORS",
        ),
        ({"DEFAULT_MAX_TIER": "gpt-5"}, "TIERBOT_DEFAULT_MAX_TIER"),
        ({"PREMIUM_USER_PATTERN": "[unclosed"}, "TIERBOT_PREMIUM_USER_PATTERN"),
        ({"SINGLE_TIER": "0"}, "TIERBOT_SINGLE_TIER"),
        ({"SINGLE_TIER": "frontier", "DEFAULT_MAX_TIER": "mid"}, "TIERBOT_SINGLE_TIER"),
    ],
)
def test_a_bad_value_fails_naming_the_variable(
    make_policy: MakePolicy, env: dict[str, str], variable: str
) -> None:
    with pytest.raises(ConfigError, match=variable):
        make_policy(env)
