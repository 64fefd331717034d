"""Escalation-policy settings, read once from `TIERBOT_*` environment variables."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from routing.errors import ConfigError

ENV_PREFIX = "TIERBOT_"

TierRef = int | str
"""A tier named by its 1-based position on the ladder or by its name; "" means unset."""


class RuleSetting(BaseModel):
    """An operator rule: a regex over the user's message that sets a minimum tier."""

    pattern: str
    min_tier: TierRef
    reason: str = ""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regex {value!r}: {exc}") from exc
        return value


def split_csv(value: Any) -> Any:
    """Before validation: turn `a, b,c` from the environment into a list (other values pass)."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


CsvStrs = Annotated[list[str], NoDecode]
CsvInts = Annotated[list[int], NoDecode]
CsvFloats = Annotated[list[float], NoDecode]


class RoutingSettings(BaseSettings):
    """Every knob of the escalation policy; see the README's table for each variable."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    tiers: CsvStrs = Field(default_factory=lambda: ["fast", "mid", "frontier"], min_length=1)
    tier_context_tokens: CsvInts = Field(default_factory=lambda: [131_072, 128_000, 200_000])
    complexity_thresholds: CsvFloats = Field(default_factory=lambda: [0.6, 0.9])
    confidence_band: float = Field(default=0.05, ge=0.0, le=0.5)
    frustration_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    rephrase_threshold: float = Field(default=0.65, ge=0.0, le=1.0)
    rephrase_window_turns: int = Field(default=3, ge=1, le=100)
    rephrase_window_minutes: float = Field(default=30.0, gt=0.0)
    response_reserve_tokens: int = Field(default=1024, ge=0)
    rules: list[RuleSetting] = Field(default_factory=list)
    channel_floors: dict[str, TierRef] = Field(default_factory=dict)
    channel_ceilings: dict[str, TierRef] = Field(default_factory=dict)
    default_max_tier: TierRef = ""
    premium_users: CsvStrs = Field(default_factory=list)
    premium_user_pattern: str = ""
    premium_max_tier: TierRef = ""
    single_tier: TierRef = ""

    _split = field_validator(
        "tiers", "tier_context_tokens", "complexity_thresholds", "premium_users", mode="before"
    )(split_csv)

    @field_validator("complexity_thresholds")
    @classmethod
    def _ascending(cls, value: list[float]) -> list[float]:
        if any(not 0.0 <= v <= 1.0 for v in value) or value != sorted(value):
            raise ValueError("thresholds must be ascending numbers in [0, 1]")
        return value

    @field_validator("premium_user_pattern")
    @classmethod
    def _pattern_compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regex: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _ladder_consistent(self) -> RoutingSettings:
        n = len(self.tiers)
        if len(set(self.tiers)) != n:
            raise ValueError(f"{ENV_PREFIX}TIERS: tier names must be unique")
        if len(self.tier_context_tokens) != n:
            raise ValueError(f"{ENV_PREFIX}TIER_CONTEXT_TOKENS: needs {n} values, one per tier")
        if len(self.complexity_thresholds) != n - 1:
            raise ValueError(
                f"{ENV_PREFIX}COMPLEXITY_THRESHOLDS: needs {n - 1} values for {n} tiers"
            )
        return self


def load_routing_settings() -> RoutingSettings:
    """Read the settings from the environment; raise ConfigError naming the bad variable."""
    try:
        return RoutingSettings()
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, ENV_PREFIX)) from None
    except SettingsError as exc:
        raise ConfigError(describe_settings_error(exc, ENV_PREFIX)) from None


def describe_validation_error(exc: ValidationError, prefix: str) -> str:
    """Say which variables are wrong and why, without echoing their values."""
    lines = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = err["loc"]
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{prefix}{str(loc[0]).upper()}: {msg}" if loc else msg)
    return "invalid configuration: " + "; ".join(lines)


def describe_settings_error(exc: SettingsError, prefix: str) -> str:
    """Name the variable pydantic-settings could not decode (for example malformed JSON)."""
    match = re.search(r'field "([^"]+)"', str(exc))
    name = f"{prefix}{match.group(1).upper()}" if match else "a setting"
    return f"invalid configuration: {name}: not valid JSON"
