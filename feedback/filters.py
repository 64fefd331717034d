"""Which turns a review, export or report covers: the filter type, its SQL, and time parsing."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, and_, select, true

from feedback.errors import QueryError
from feedback.schema import events, turns
from feedback.types import EventKind, Rating, TurnOutcome

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnFilter:
    """Conditions on turns; every field left at None (or False) does not filter."""

    since: datetime | None = None
    until: datetime | None = None
    channel: str | None = None
    surface: str | None = None
    tier: int | None = None
    reason: str | None = None
    """A reason code the decision must carry."""
    rating: Rating | None = None
    """Only turns the user rated so."""
    misroute: bool = False
    """Only turns a later misroute event points at."""
    outcome: TurnOutcome | None = None


def parse_when(text: str, now: datetime) -> datetime:
    """Parse `24h`, `7d`, `30m`, `90s`, `2w` (that long before `now`) or an ISO date/time (UTC
    when it carries no offset); raise QueryError saying what is accepted, also for a time that
    falls outside the calendar (`99999999w`, year 1 with a positive offset)."""
    try:
        relative = _RELATIVE.match(text)
        if relative:
            amount, unit = float(relative.group(1)), relative.group(2)
            return now - timedelta(seconds=amount * _UNIT_SECONDS[unit])
        parsed = datetime.fromisoformat(text.strip())
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise QueryError(
            f"cannot read time {text!r}: use a span like 24h, 7d, 30m, 2w or an ISO date/time "
            "like 2025-05-01 or 2025-05-01T12:00:00+02:00"
        ) from None


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def turn_conditions(flt: TurnFilter) -> ColumnElement[bool]:
    """The WHERE clause over `turns` that selects what `flt` asks for."""
    conditions: list[ColumnElement[bool]] = [true()]
    if flt.since is not None:
        conditions.append(turns.c.at >= flt.since)
    if flt.until is not None:
        conditions.append(turns.c.at < flt.until)
    if flt.channel is not None:
        conditions.append(turns.c.channel == flt.channel)
    if flt.surface is not None:
        conditions.append(turns.c.surface == flt.surface)
    if flt.tier is not None:
        conditions.append(turns.c.tier == flt.tier)
    if flt.outcome is not None:
        conditions.append(turns.c.outcome == flt.outcome)
    if flt.reason is not None:
        pattern = f"% {_escape_like(flt.reason)} %"
        conditions.append(turns.c.reason_codes.like(pattern, escape="\\"))
    conditions.extend(_event_conditions(flt))
    return and_(*conditions)


def _event_conditions(flt: TurnFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if flt.rating is not None:
        rated = select(events.c.turn_id).where(
            events.c.kind == str(EventKind.RATING), events.c.rating == flt.rating
        )
        conditions.append(turns.c.turn_id.in_(rated))
    if flt.misroute:
        misrouted = select(events.c.related_turn_id).where(events.c.kind == str(EventKind.MISROUTE))
        conditions.append(turns.c.turn_id.in_(misrouted))
    return conditions
