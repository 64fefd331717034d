"""The escalation policy: the tier ladder and the steps that turn signals into a tier."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from routing.errors import ConfigError
from routing.settings import ENV_PREFIX, RoutingSettings, TierRef
from routing.types import Reason


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """An operator rule: a message matching `pattern` is answered on `min_tier` or higher."""

    pattern: re.Pattern[str]
    min_tier: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """The resolved escalation policy; tiers are 1-based positions on the ladder."""

    tier_names: tuple[str, ...]
    context_tokens: tuple[int, ...]
    thresholds: tuple[float, ...]
    confidence_band: float
    frustration_threshold: float
    rephrase_threshold: float
    rephrase_window_turns: int
    rephrase_window_seconds: float
    response_reserve_tokens: int
    rules: tuple[Rule, ...]
    channel_floors: Mapping[str, int]
    channel_ceilings: Mapping[str, int]
    default_max_tier: int
    premium_max_tier: int
    premium_users: frozenset[str]
    premium_pattern: re.Pattern[str] | None
    single_tier: int | None

    @property
    def top(self) -> int:
        """The highest tier on the ladder."""
        return len(self.tier_names)

    def name(self, tier: int) -> str:
        """Return the name of a 1-based tier."""
        return self.tier_names[tier - 1]

    def entitlement(self, user: str | None) -> int:
        """Return the highest tier this user may be routed to; it comes from config only."""
        if user is not None and (
            user in self.premium_users
            or (self.premium_pattern is not None and self.premium_pattern.fullmatch(user))
        ):
            return self.premium_max_tier
        return self.default_max_tier

    def base_tier(self, complexity: float) -> int:
        """Map a complexity score to a tier: one step up per threshold reached."""
        return 1 + sum(1 for t in self.thresholds if complexity >= t)

    def confidence(self, complexity: float) -> float:
        """0.5 on a threshold, rising to 1.0 half the score range away from every threshold."""
        if not self.thresholds:
            return 1.0
        distance = min(abs(complexity - t) for t in self.thresholds)
        return round(min(1.0, 0.5 + distance), 4)

    def near_threshold(self, complexity: float) -> float | None:
        """Return the threshold that `complexity` sits just below (within the band), if any."""
        for t in self.thresholds:
            if t - self.confidence_band <= complexity < t:
                return t
        return None

    def rule_floor(self, text: str) -> tuple[int, tuple[Reason, ...]]:
        """Return the highest tier floor set by matching operator rules, with their reasons."""
        floor, reasons = 1, []
        for rule in self.rules:
            if rule.pattern.search(text):
                floor = max(floor, rule.min_tier)
                why = rule.reason or f"matches operator rule /{rule.pattern.pattern}/"
                reasons.append(
                    Reason(code="rule", text=f"{why} (min tier {self.name(rule.min_tier)})")
                )
        return floor, tuple(reasons)


def build_policy(settings: RoutingSettings) -> Policy:
    """Resolve settings into a Policy; raise ConfigError naming the variable that is wrong."""
    names = tuple(settings.tiers)
    top = len(names)

    def tier(ref: TierRef, var: str, default: int) -> int:
        return _resolve(ref, names, f"{ENV_PREFIX}{var}", default)

    floors = {ch: tier(ref, "CHANNEL_FLOORS", 1) for ch, ref in settings.channel_floors.items()}
    ceilings = {
        ch: tier(ref, "CHANNEL_CEILINGS", top) for ch, ref in settings.channel_ceilings.items()
    }
    for ch, floor in floors.items():
        if floor > ceilings.get(ch, top):
            raise ConfigError(
                f"{ENV_PREFIX}CHANNEL_FLOORS: floor of {ch!r} is above its ceiling "
                f"in {ENV_PREFIX}CHANNEL_CEILINGS"
            )
    single = tier(settings.single_tier, "SINGLE_TIER", 0) or None
    default_max = tier(settings.default_max_tier, "DEFAULT_MAX_TIER", top)
    if single is not None and single > default_max:
        raise ConfigError(
            f"{ENV_PREFIX}SINGLE_TIER: tier {names[single - 1]} is above "
            f"{ENV_PREFIX}DEFAULT_MAX_TIER; single-model mode sends every user to it"
        )
    pattern = settings.premium_user_pattern
    return Policy(
        tier_names=names,
        context_tokens=tuple(settings.tier_context_tokens),
        thresholds=tuple(settings.complexity_thresholds),
        confidence_band=settings.confidence_band,
        frustration_threshold=settings.frustration_threshold,
        rephrase_threshold=settings.rephrase_threshold,
        rephrase_window_turns=settings.rephrase_window_turns,
        rephrase_window_seconds=settings.rephrase_window_minutes * 60.0,
        response_reserve_tokens=settings.response_reserve_tokens,
        rules=tuple(
            Rule(
                pattern=re.compile(r.pattern, re.IGNORECASE),
                min_tier=tier(r.min_tier, "RULES", 1),
                reason=r.reason,
            )
            for r in settings.rules
        ),
        channel_floors=MappingProxyType(floors),
        channel_ceilings=MappingProxyType(ceilings),
        default_max_tier=default_max,
        premium_max_tier=tier(settings.premium_max_tier, "PREMIUM_MAX_TIER", top),
        premium_users=frozenset(settings.premium_users),
        premium_pattern=re.compile(pattern) if pattern else None,
        single_tier=single,
    )


def _resolve(ref: TierRef, names: tuple[str, ...], var: str, default: int) -> int:
    """Turn a tier name or 1-based number into a tier; "" gives `default`."""
    if ref == "":
        return default
    if isinstance(ref, str) and ref in names:
        return names.index(ref) + 1
    try:
        number = int(ref)
    except ValueError:
        raise ConfigError(f"{var}: unknown tier {ref!r}; tiers are {', '.join(names)}") from None
    if not 1 <= number <= len(names):
        raise ConfigError(f"{var}: tier {number} is outside 1..{len(names)}")
    return number
