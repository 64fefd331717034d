"""Value types of the period report, and the counterfactual prices a report may be given."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from feedback.errors import QueryError
from feedback.percentiles import Percentiles


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelPrice:
    """A model's list price in USD per million input and output tokens."""

    input_per_mtok: float
    output_per_mtok: float

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        """USD for the given token counts."""
        return (tokens_in * self.input_per_mtok + tokens_out * self.output_per_mtok) / 1_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class CounterfactualPrices:
    """The top tier's and the middle tier's model prices, to price every turn's tokens at."""

    top: ModelPrice
    mid: ModelPrice


class _PriceIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    input_per_mtok: float = Field(ge=0, allow_inf_nan=False)
    output_per_mtok: float = Field(ge=0, allow_inf_nan=False)


class _PricesIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    top: _PriceIn
    mid: _PriceIn


def parse_prices(text: str) -> CounterfactualPrices:
    """Parse `{"top": {"input_per_mtok": 3, "output_per_mtok": 15}, "mid": {...}}`."""
    try:
        parsed = _PricesIn.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        path = ".".join(str(part) for part in first["loc"])
        where = f"{path}: " if path else ""
        raise QueryError(
            f"--prices: {where}{first['msg']} (expected "
            '{"top": {"input_per_mtok": N, "output_per_mtok": N}, "mid": {...}})'
        ) from None
    return CounterfactualPrices(
        top=ModelPrice(
            input_per_mtok=parsed.top.input_per_mtok, output_per_mtok=parsed.top.output_per_mtok
        ),
        mid=ModelPrice(
            input_per_mtok=parsed.mid.input_per_mtok, output_per_mtok=parsed.mid.output_per_mtok
        ),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class TierLine:
    """Volume, spend, misroutes and latency of one tier."""

    tier: int
    requests: int
    share: float
    cost_usd: float
    misrouted: int
    misroute_rate: float
    ttft: Percentiles
    total: Percentiles


@dataclass(frozen=True, slots=True, kw_only=True)
class Savings:
    """Actual spend against the same turns on the top tier and on the middle tier.

    With the recorded basis, each comparison covers only the turns that carry that
    counterfactual; `unpriced_top`/`unpriced_mid` count the turns left out.
    """

    basis: Literal["recorded", "prices"]
    cost_usd: float
    if_top_usd: float
    if_mid_usd: float
    saved_vs_top_usd: float
    saved_vs_mid_usd: float
    unpriced_top: int
    unpriced_mid: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MisrouteLine:
    """Turns of a tier that a misroute event of one cause points at, and their share."""

    tier: int
    cause: str
    turns: int
    rate: float


@dataclass(frozen=True, slots=True, kw_only=True)
class EscalationLine:
    """Escalation events of one cause and the total cost of the turns they escalated."""

    cause: str
    escalations: int
    cost_usd: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderLine:
    """Calls to one provider model: errors by class, links skipped by an open breaker, trips."""

    provider: str
    model: str
    calls: int
    errors: int
    error_rate: float
    errors_by_class: dict[str, int]
    skipped_open: int
    breaker_trips: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SurfaceLine:
    """Volume and spend of one channel and surface."""

    channel: str
    surface: str
    requests: int
    cost_usd: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SpenderLine:
    """One user (by pseudonym) and what their turns cost."""

    user_hash: str
    requests: int
    cost_usd: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """Everything `tierbot feedback report` shows for one period [since, until)."""

    since: datetime | None
    until: datetime | None
    requests: int
    outcomes: dict[str, int]
    cost_usd: float
    savings: Savings
    tiers: tuple[TierLine, ...]
    misroutes: tuple[MisrouteLine, ...]
    escalations: tuple[EscalationLine, ...]
    providers: tuple[ProviderLine, ...]
    surfaces: tuple[SurfaceLine, ...]
    users: int
    cost_per_user_usd: float
    top_spenders: tuple[SpenderLine, ...]
    events: dict[str, int]
