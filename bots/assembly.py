"""Builds the LLM side from settings: provider clients, tier chains, breaker and executor."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import get_args

from redis.asyncio import Redis

from routing.breaker import Breaker, BreakerConfig, MemoryBreaker
from routing.breaker_redis import RedisBreaker
from routing.budget import RetryBudget
from routing.constants import BREAKER_PREFIX
from routing.errors import ConfigError
from routing.execution_settings import ExecutionSettings, ProviderCredentials, ProviderKind
from routing.execution_types import Deadlines, Link
from routing.executor import Executor
from routing.policy import Policy
from routing.providers import LLMProvider, ModelSpec, ProviderSettings, lookup
from routing.providers.offline import OfflineProvider
from routing.settings import ENV_PREFIX

logger = logging.getLogger(__name__)

KINDS: tuple[ProviderKind, ...] = get_args(ProviderKind)
NO_KEYS = (
    "no LLM provider is configured: set GROQ_API_KEY, OPENAI_API_KEY or ANTHROPIC_API_KEY "
    f"(or {ENV_PREFIX}EXTRA_PROVIDERS), or run with --offline for local labelled answers"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class LLMStack:
    """Everything that produces answers; `aclose` releases the provider clients."""

    executor: Executor
    chains: tuple[tuple[Link, ...], ...]
    providers: Mapping[str, LLMProvider]
    breaker: Breaker
    offline: bool

    async def aclose(self) -> None:
        """Close every provider client."""
        for provider in self.providers.values():
            await provider.aclose()


def offline_chains(policy: Policy) -> tuple[tuple[Link, ...], ...]:
    """One offline model per tier, slower and 'stronger' up the ladder."""
    speeds = ("offline-fast", "offline-mid", "offline-frontier")
    last = policy.top - 1
    chains = []
    for index in range(policy.top):
        position = 0 if index == 0 else (2 if index == last else 1)
        chains.append((Link(provider="offline", model=speeds[position]),))
    return tuple(chains)


def resolve_chains(
    policy: Policy, settings: ExecutionSettings, usable: frozenset[str]
) -> tuple[tuple[Link, ...], ...]:
    """Map TIERBOT_CHAINS onto the ladder, keeping links whose provider is usable."""
    var = f"{ENV_PREFIX}CHAINS"
    known = {*policy.tier_names, *(str(i) for i in range(1, policy.top + 1))}
    unknown = sorted(set(settings.chains) - known)
    if unknown:
        raise ConfigError(f"{var}: unknown tier(s) {', '.join(unknown)}")
    overrides = {
        name: ModelSpec(
            vendor="openai",
            input_per_mtok=s.input_per_mtok,
            output_per_mtok=s.output_per_mtok,
            context_window=s.context_window,
        )
        for name, s in settings.model_specs.items()
    }
    chains = []
    for index, name in enumerate(policy.tier_names, start=1):
        links = settings.chains.get(name, settings.chains.get(str(index)))
        if links is None:
            raise ConfigError(f"{var}: no chain for tier {name}")
        kept = []
        for text in links:
            provider, _, model = text.partition(":")
            if provider not in usable:
                logger.warning(
                    "chain link skipped, provider has no key tier=%s link=%s", name, text
                )
                continue
            kept.append(Link(provider=provider, model=model, spec=lookup(model, overrides)))
        chains.append(tuple(kept))
    if not any(chains):
        raise ConfigError(NO_KEYS)
    return _fill_empty_tiers(policy, chains)


def _fill_empty_tiers(
    policy: Policy, chains: list[tuple[Link, ...]]
) -> tuple[tuple[Link, ...], ...]:
    """A tier without a usable provider borrows the nearest lower tier's chain (else the
    nearest higher one's), so an escalation degrades to a weaker answer instead of none."""
    filled = list(chains)
    for index, chain in enumerate(chains):
        if chain:
            continue
        lower = [i for i in range(index - 1, -1, -1) if chains[i]]
        donor = lower[0] if lower else next(i for i in range(index + 1, len(chains)) if chains[i])
        filled[index] = chains[donor]
        logger.warning(
            "tier %s has no provider with a key; it uses tier %s's models",
            policy.name(index + 1),
            policy.name(donor + 1),
        )
    return tuple(filled)


def build_providers(
    settings: ExecutionSettings, credentials: ProviderCredentials
) -> dict[str, LLMProvider]:
    """One client per configured provider (built-ins with a key, plus the extra servers)."""
    # Imported here, not at the top: the SDKs take seconds to import, and only a process that
    # calls real models should pay for that.
    from routing.providers.anthropic_messages import AnthropicProvider
    from routing.providers.groq_chat import GroqProvider
    from routing.providers.openai_compat import OpenAICompatProvider

    timeout = settings.connect_timeout_seconds
    providers: dict[str, LLMProvider] = {}
    for kind in KINDS:
        key = credentials.key_for(kind)
        if key is None:
            continue
        config = ProviderSettings(
            name=kind,
            base_url=credentials.base_url_for(kind),
            api_key=key,
            connect_timeout=timeout,
            idle_timeout=settings.total_timeout_seconds,
        )
        match kind:
            case "openai":
                providers[kind] = OpenAICompatProvider(config)
            case "anthropic":
                providers[kind] = AnthropicProvider(config)
            case "groq":
                providers[kind] = GroqProvider(config)
    for name, extra in settings.extra_providers.items():
        config = ProviderSettings(
            name=name,
            base_url=extra.base_url,
            api_key=extra.api_key,
            connect_timeout=timeout,
            idle_timeout=settings.total_timeout_seconds,
        )
        providers[name] = OpenAICompatProvider(config, legacy_max_tokens=extra.legacy_max_tokens)
    return providers


def build_llm_stack(
    *,
    policy: Policy,
    settings: ExecutionSettings,
    credentials: ProviderCredentials,
    offline: bool,
    redis: Redis | None,
    redis_prefix: str = "",
) -> LLMStack:
    """Assemble the executor; offline replaces every chain with the labelled offline provider.

    With `redis`, the breakers are shared by every process under `redis_prefix` (the
    deployment's TIERBOT_REDIS_KEY_PREFIX), so deployments sharing one Redis with other keys
    never see each other's trips and 429 cooldowns."""
    if len(settings.ttft_slo_seconds) not in (1, policy.top):
        raise ConfigError(
            f"{ENV_PREFIX}TTFT_SLO_SECONDS: needs {policy.top} values, one per tier (or one)"
        )
    providers: dict[str, LLMProvider]
    if offline:
        providers = {"offline": OfflineProvider()}
        chains = offline_chains(policy)
    else:
        usable = {kind for kind in KINDS if credentials.key_for(kind) is not None}
        chains = resolve_chains(policy, settings, frozenset(usable | set(settings.extra_providers)))
        providers = build_providers(settings, credentials)
    config = BreakerConfig()
    breaker: Breaker = (
        MemoryBreaker(config=config)
        if redis is None
        else RedisBreaker(redis, config=config, prefix=redis_prefix + BREAKER_PREFIX)
    )
    executor = Executor(
        chains=chains,
        providers=providers,
        breaker=breaker,
        budget=RetryBudget(clock=time.monotonic, ratio=settings.retry_budget_ratio),
        deadlines=Deadlines(
            first_token_s=tuple(settings.ttft_slo_seconds),
            inter_token_s=settings.inter_token_timeout_seconds,
            total_s=settings.total_timeout_seconds,
        ),
    )
    return LLMStack(
        executor=executor, chains=chains, providers=providers, breaker=breaker, offline=offline
    )
