"""The period report, computed by SQL aggregates (never by reading every turn into Python).

Savings compare what was spent with what the same turns would have cost on the top tier and on
the middle tier. By default they use the counterfactual prices recorded with each turn
(`cost_if_top`, `cost_if_mid`: that turn's tokens at that tier's model price when it happened),
so a later price change never rewrites history; turns recorded without them are left out of
that comparison and counted as unpriced. Given `prices`, every turn's tokens are priced at them
instead ("what would this period have cost at these prices").

The queries run concurrently on separate connections; each is one pass of GROUP BY over the
period, helped by the `at` indexes when the period is a slice of the log.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, func, literal, select, true, union_all
from sqlalchemy.sql.elements import KeyedColumnElement

from feedback.errors import FeedbackError
from feedback.filters import TurnFilter, turn_conditions
from feedback.percentiles import Percentiles, tier_percentiles
from feedback.report_types import (
    CounterfactualPrices,
    EscalationLine,
    Report,
    SpenderLine,
)
from feedback.rollup import (
    Group,
    misroute_lines,
    provider_lines,
    savings,
    surface_lines,
    tier_lines,
    totals,
)
from feedback.schema import attempts, events, turns
from feedback.store import FeedbackStore
from feedback.types import EventKind


async def build_report(
    store: FeedbackStore,
    *,
    since: datetime | None,
    until: datetime | None,
    prices: CounterfactualPrices | None = None,
    top: int = 10,
) -> Report:
    """Build the report over the turns, attempts and events in [since, until)."""
    where = turn_conditions(TurnFilter(since=since, until=until))
    try:
        async with asyncio.TaskGroup() as tasks:
            mix = tasks.create_task(_mix(store, where))
            ttft = tasks.create_task(_latency(store, where, turns.c.ttft_s))
            total = tasks.create_task(_latency(store, where, turns.c.total_s))
            misroutes = tasks.create_task(_misroutes(store, where))
            escalations = tasks.create_task(_escalations(store, where))
            spenders = tasks.create_task(_spenders(store, where, top))
            calls = tasks.create_task(_calls(store, _period(attempts.c.at, since, until)))
            happened = tasks.create_task(_events(store, _period(events.c.at, since, until)))
    except ExceptionGroup as failed:
        raise _first_feedback_error(failed) from failed
    groups = mix.result()
    users, top_spenders = spenders.result()
    counts, trips = happened.result()
    requests = sum(g.n for g in groups)
    cost = sum(g.cost for g in groups)
    per_tier, per_cause = misroutes.result()
    return Report(
        since=since,
        until=until,
        requests=requests,
        outcomes=totals(groups),
        cost_usd=cost,
        savings=savings(groups, prices),
        tiers=tier_lines(groups, per_tier, ttft.result(), total.result()),
        misroutes=misroute_lines(groups, per_cause),
        escalations=escalations.result(),
        providers=provider_lines(calls.result(), trips),
        surfaces=surface_lines(groups),
        users=users,
        cost_per_user_usd=cost / users if users else 0.0,
        top_spenders=top_spenders,
        events=counts,
    )


def _first_feedback_error(failed: ExceptionGroup[Exception]) -> Exception:
    """The query failure to report: the first FeedbackError (StoreError...), else the group."""
    for exc in failed.exceptions:
        if isinstance(exc, FeedbackError):
            return exc
    return failed


def _period(
    column: KeyedColumnElement[datetime], since: datetime | None, until: datetime | None
) -> ColumnElement[bool]:
    return and_(
        true() if since is None else column >= since,
        true() if until is None else column < until,
    )


async def _mix(store: FeedbackStore, where: ColumnElement[bool]) -> list[Group]:
    t = turns.c
    zero = 0.0
    stmt = (
        select(
            t.tier,
            t.channel,
            t.surface,
            t.outcome,
            func.count(),
            func.coalesce(func.sum(t.cost_usd), zero),
            func.coalesce(func.sum(t.tokens_in), 0),
            func.coalesce(func.sum(t.tokens_out), 0),
            func.count(t.cost_if_top),
            func.coalesce(func.sum(t.cost_if_top), zero),
            func.coalesce(func.sum(case((t.cost_if_top.is_not(None), t.cost_usd))), zero),
            func.count(t.cost_if_mid),
            func.coalesce(func.sum(t.cost_if_mid), zero),
            func.coalesce(func.sum(case((t.cost_if_mid.is_not(None), t.cost_usd))), zero),
        )
        .where(where)
        .group_by(t.tier, t.channel, t.surface, t.outcome)
    )
    async with store.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [
        Group(
            tier=int(r[0]),
            channel=str(r[1]),
            surface=str(r[2]),
            outcome=str(r[3]),
            n=int(r[4]),
            cost=float(r[5]),
            tokens_in=int(r[6]),
            tokens_out=int(r[7]),
            n_top=int(r[8]),
            if_top=float(r[9]),
            cost_top=float(r[10]),
            n_mid=int(r[11]),
            if_mid=float(r[12]),
            cost_mid=float(r[13]),
        )
        for r in rows
    ]


async def _latency(
    store: FeedbackStore, where: ColumnElement[bool], column: KeyedColumnElement[float | None]
) -> dict[int, Percentiles]:
    async with store.connect() as conn:
        return await tier_percentiles(conn, where, column)


async def _misroutes(
    store: FeedbackStore, where: ColumnElement[bool]
) -> tuple[dict[int, int], list[tuple[int, str, int]]]:
    """Distinct misrouted turns per tier, and per (tier, cause), from one join."""
    misrouted = (
        select(turns.c.tier, turns.c.turn_id, func.coalesce(events.c.cause, "").label("cause"))
        .select_from(events.join(turns, turns.c.turn_id == events.c.related_turn_id))
        .where(events.c.kind == str(EventKind.MISROUTE), where)
        .cte("misrouted")
    )
    distinct_turns = func.count(func.distinct(misrouted.c.turn_id))
    stmt = union_all(
        select(literal(0), misrouted.c.tier, misrouted.c.cause, distinct_turns).group_by(
            misrouted.c.tier, misrouted.c.cause
        ),
        select(literal(1), misrouted.c.tier, literal(""), distinct_turns).group_by(
            misrouted.c.tier
        ),
    )
    async with store.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    per_tier = {int(tier): int(n) for whole, tier, _, n in rows if whole}
    per_cause = sorted((int(tier), str(c), int(n)) for whole, tier, c, n in rows if not whole)
    return per_tier, per_cause


async def _escalations(
    store: FeedbackStore, where: ColumnElement[bool]
) -> tuple[EscalationLine, ...]:
    cause = func.coalesce(events.c.cause, "")
    count = func.count()
    stmt = (
        select(cause, count, func.coalesce(func.sum(turns.c.cost_usd), 0.0))
        .select_from(events.join(turns, turns.c.turn_id == events.c.turn_id))
        .where(events.c.kind == str(EventKind.ESCALATION), where)
        .group_by(cause)
        .order_by(count.desc(), cause)
    )
    async with store.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return tuple(
        EscalationLine(cause=str(r[0]), escalations=int(r[1]), cost_usd=float(r[2])) for r in rows
    )


async def _spenders(
    store: FeedbackStore, where: ColumnElement[bool], top: int
) -> tuple[int, tuple[SpenderLine, ...]]:
    """The number of distinct users, and the `top` users by spend."""
    cost = func.sum(turns.c.cost_usd)
    stmt = (
        select(turns.c.user_hash, func.count(), cost, func.count().over())
        .where(where)
        .group_by(turns.c.user_hash)
        .order_by(cost.desc(), turns.c.user_hash)
        .limit(max(top, 1))
    )
    async with store.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    lines = tuple(
        SpenderLine(user_hash=str(r[0]), requests=int(r[1]), cost_usd=float(r[2])) for r in rows
    )
    return (int(rows[0][3]) if rows else 0), lines[:top]


async def _calls(
    store: FeedbackStore, where: ColumnElement[bool]
) -> list[tuple[str, str, str | None, int]]:
    a = attempts.c
    stmt = select(a.provider, a.model, a.error, func.count()).where(where)
    async with store.connect() as conn:
        result = await conn.execute(stmt.group_by(a.provider, a.model, a.error))
        return [(str(r[0]), str(r[1]), r[2], int(r[3])) for r in result]


async def _events(
    store: FeedbackStore, where: ColumnElement[bool]
) -> tuple[dict[str, int], dict[str, int]]:
    """Events per kind, and breaker trips per `provider:model`."""
    e = events.c
    stmt = select(e.kind, e.cause, func.count()).where(where).group_by(e.kind, e.cause)
    async with store.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    counts: dict[str, int] = {}
    trips: dict[str, int] = {}
    for kind, cause, n in rows:
        counts[kind] = counts.get(kind, 0) + n
        if kind == EventKind.BREAKER_TRIP:
            trips[cause or ""] = trips.get(cause or "", 0) + n
    return dict(sorted(counts.items())), trips
