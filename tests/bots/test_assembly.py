"""Assembling the LLM side from env: chains on the ladder, keys, offline mode, bad settings."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from bots.assembly import NO_KEYS, build_llm_stack, offline_chains, resolve_chains
from routing.constants import BREAKER_PREFIX
from routing.errors import ConfigError
from routing.execution_settings import load_execution_settings
from routing.policy import Policy, build_policy
from routing.settings import load_routing_settings
from tests.bots.redis_fixtures import fixture_prefix, fixture_redis_client  # noqa: F401

PROVIDER_VARS = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GROQ_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_BASE_URL",
    "GROQ_BASE_URL",
)


@pytest.fixture(autouse=True)
def _no_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROVIDER_VARS:
        monkeypatch.delenv(name, raising=False)


def policy() -> Policy:
    return build_policy(load_routing_settings())


async def test_default_chains_keep_only_providers_with_a_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "gsk-test")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    settings, credentials = load_execution_settings()
    stack = build_llm_stack(
        policy=policy(), settings=settings, credentials=credentials, offline=False, redis=None
    )
    try:
        assert sorted(stack.providers) == ["groq", "openai"]
        assert [[link.key for link in chain] for chain in stack.chains] == [
            ["groq:llama-3.1-8b-instant", "openai:gpt-4o-mini"],
            ["openai:gpt-4o-mini"],
            ["openai:gpt-4o"],
        ]
        spec = stack.chains[0][0].spec
        assert spec is not None
        assert spec.context_window == 131_072
    finally:
        await stack.aclose()


async def test_shared_breakers_live_under_the_deployments_key_prefix(
    monkeypatch: pytest.MonkeyPatch, redis_client: Redis, prefix: str
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    settings, credentials = load_execution_settings()
    stack = build_llm_stack(
        policy=policy(),
        settings=settings,
        credentials=credentials,
        offline=False,
        redis=redis_client,
        redis_prefix=prefix,
    )
    try:
        await stack.breaker.cooldown("openai:gpt-4o", 30)
        keys = await redis_client.keys(f"*{BREAKER_PREFIX}*")
        assert keys == [f"{prefix}{BREAKER_PREFIX}{{openai:gpt-4o}}:cooldown".encode()]
    finally:
        await redis_client.delete(*keys)
        await stack.aclose()


def test_no_key_at_all_says_which_variables_to_set() -> None:
    settings, credentials = load_execution_settings()
    with pytest.raises(ConfigError) as caught:
        build_llm_stack(
            policy=policy(), settings=settings, credentials=credentials, offline=False, redis=None
        )
    assert str(caught.value) == NO_KEYS
    assert "GROQ_API_KEY" in NO_KEYS
    assert "--offline" in NO_KEYS


async def test_offline_mode_needs_no_key_and_labels_every_tier() -> None:
    settings, credentials = load_execution_settings()
    stack = build_llm_stack(
        policy=policy(), settings=settings, credentials=credentials, offline=True, redis=None
    )
    assert stack.offline is True
    assert [c[0].key for c in stack.chains] == [
        "offline:offline-fast",
        "offline:offline-mid",
        "offline:offline-frontier",
    ]
    await stack.aclose()


def test_offline_chains_follow_a_longer_ladder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERBOT_TIERS", "a,b,c,d")
    monkeypatch.setenv("TIERBOT_TIER_CONTEXT_TOKENS", "1000,2000,3000,4000")
    monkeypatch.setenv("TIERBOT_COMPLEXITY_THRESHOLDS", "0.3,0.6,0.9")
    assert [c[0].model for c in offline_chains(policy())] == [
        "offline-fast",
        "offline-mid",
        "offline-mid",
        "offline-frontier",
    ]


def test_chains_by_tier_number_extra_providers_and_price_overrides(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "TIERBOT_CHAINS",
        '{"1": ["local:llama3"], "mid": ["local:qwen"], "frontier": ["local:big"]}',
    )
    monkeypatch.setenv(
        "TIERBOT_EXTRA_PROVIDERS", '{"local": {"base_url": "http://127.0.0.1:11434/v1"}}'
    )
    monkeypatch.setenv(
        "TIERBOT_MODEL_SPECS",
        '{"llama3": {"input_per_mtok": 0, "output_per_mtok": 0, "context_window": 8192}}',
    )
    settings, _ = load_execution_settings()
    chains = resolve_chains(policy(), settings, frozenset({"local"}))
    assert [c[0].key for c in chains] == ["local:llama3", "local:qwen", "local:big"]
    assert chains[0][0].spec is not None
    assert chains[0][0].spec.context_window == 8192
    assert chains[1][0].spec is None


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"TIERBOT_CHAINS": '{"ultra": ["openai:gpt-4o"]}'}, "TIERBOT_CHAINS"),
        ({"TIERBOT_CHAINS": '{"fast": ["gpt-4o"]}'}, "TIERBOT_CHAINS"),
        ({"TIERBOT_CHAINS": '{"fast": ["openai:gpt-4o"]}'}, "TIERBOT_CHAINS"),
        ({"TIERBOT_CHAINS": "not json"}, "TIERBOT_CHAINS"),
        ({"TIERBOT_TTFT_SLO_SECONDS": "5,0,10"}, "TIERBOT_TTFT_SLO_SECONDS"),
        ({"TIERBOT_TTFT_SLO_SECONDS": "5,10"}, "TIERBOT_TTFT_SLO_SECONDS"),
        ({"TIERBOT_MAX_ATTEMPTS": "0"}, "TIERBOT_MAX_ATTEMPTS"),
    ],
)
def test_a_bad_execution_variable_fails_naming_it(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], variable: str
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    def assemble() -> None:
        settings, credentials = load_execution_settings()
        build_llm_stack(
            policy=policy(), settings=settings, credentials=credentials, offline=False, redis=None
        )

    with pytest.raises(ConfigError, match=variable):
        assemble()
