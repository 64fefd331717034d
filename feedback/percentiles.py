"""Latency percentiles per tier in SQL: `percentile_cont` on PostgreSQL, window functions on SQLite.

Both give the same numbers: the continuous percentile at position p·(n−1) of the sorted
non-NULL values, interpolated linearly between its two neighbours (PostgreSQL's definition).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Integer, case, cast, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY, array
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import KeyedColumnElement
from sqlalchemy.types import Double

from feedback.schema import turns

POINTS = (0.5, 0.95, 0.99)
SORT_MEMORY = "64MB"


@dataclass(frozen=True, slots=True, kw_only=True)
class Percentiles:
    """p50, p95 and p99 of a latency in seconds; None when there was no value."""

    p50: float | None = None
    p95: float | None = None
    p99: float | None = None


NONE = Percentiles()


def _of(values: Sequence[float | None] | None) -> Percentiles:
    if not values:
        return NONE
    return Percentiles(p50=values[0], p95=values[1], p99=values[2])


async def tier_percentiles(
    conn: AsyncConnection, where: ColumnElement[bool], column: KeyedColumnElement[float | None]
) -> dict[int, Percentiles]:
    """For each tier, the percentiles of `column` over the turns `where` selects (NULLs skipped)."""
    if conn.dialect.name == "postgresql":
        return await _postgresql(conn, where, column)
    return await _portable(conn, where, column)


async def _postgresql(
    conn: AsyncConnection, where: ColumnElement[bool], column: KeyedColumnElement[float | None]
) -> dict[int, Percentiles]:
    # The sorts behind percentile_cont spill to disk at the default 4 MB; this transaction only.
    await conn.execute(text(f"SET LOCAL work_mem = '{SORT_MEMORY}'"))
    points = array(list(POINTS))
    aggregate = func.percentile_cont(points).within_group(column).cast(ARRAY(Double))
    stmt = select(turns.c.tier, aggregate).where(where).group_by(turns.c.tier)
    return {int(tier): _of(values) for tier, values in await conn.execute(stmt)}


async def _portable(
    conn: AsyncConnection, where: ColumnElement[bool], column: KeyedColumnElement[float | None]
) -> dict[int, Percentiles]:
    ranked = (
        select(
            turns.c.tier.label("tier"),
            column.label("x"),
            (func.row_number().over(partition_by=turns.c.tier, order_by=column) - 1).label("rn"),
            func.count().over(partition_by=turns.c.tier).label("n"),
        )
        .where(where, column.is_not(None))
        .cte("ranked")
    )
    picks = []
    for p in POINTS:
        low = cast(p * (ranked.c.n - 1), Integer)
        picks.append(func.max(case((ranked.c.rn == low, ranked.c.x))))
        picks.append(func.max(case((ranked.c.rn == low + 1, ranked.c.x))))
    stmt = select(ranked.c.tier, func.max(ranked.c.n), *picks).group_by(ranked.c.tier)
    found: dict[int, Percentiles] = {}
    for row in await conn.execute(stmt):
        n = int(row[1])
        values = [_interpolate(p, n, row[2 + 2 * i], row[3 + 2 * i]) for i, p in enumerate(POINTS)]
        found[int(row[0])] = _of(values)
    return found


def _interpolate(p: float, n: int, low: float, high: float | None) -> float:
    position = p * (n - 1)
    fraction = position - int(position)
    if high is None or fraction == 0.0:
        return low
    return low + (high - low) * fraction
