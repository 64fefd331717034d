"""Migrations: a migrated database equals `feedback/schema.py`, on both backends, at any start."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Connection, MetaData, func, insert, inspect, select

from feedback.engine import build_engine
from feedback.errors import SchemaError
from feedback.migrations import LATEST, migrate
from feedback.schema import metadata, schema_version
from feedback.store import FeedbackStore, utc_now
from tests.feedback.conftest import MakeSettings

pytestmark = pytest.mark.timeout(30)


def _shape(sync: Connection) -> dict[str, tuple[list[tuple[str, bool]], list[str]]]:
    reflected = MetaData()
    reflected.reflect(sync)
    indexes = inspect(sync)
    return {
        table.name: (
            [(column.name, bool(column.nullable)) for column in table.columns],
            sorted(str(ix["name"]) for ix in indexes.get_indexes(table.name)),
        )
        for table in reflected.sorted_tables
    }


def _expected() -> dict[str, tuple[list[tuple[str, bool]], list[str]]]:
    return {
        table.name: (
            [(column.name, bool(column.nullable)) for column in table.columns],
            sorted(str(ix.name) for ix in table.indexes),
        )
        for table in metadata.sorted_tables
    }


async def test_a_migrated_database_matches_the_schema_module(make_settings: MakeSettings) -> None:
    engine = build_engine(make_settings().url)
    try:
        assert await migrate(engine) == 0
        async with engine.connect() as conn:
            assert await conn.run_sync(_shape) == _expected()
    finally:
        await engine.dispose()


async def test_starting_again_applies_nothing(make_settings: MakeSettings) -> None:
    engine = build_engine(make_settings().url)
    try:
        await migrate(engine)
        assert await migrate(engine) == LATEST
        async with engine.connect() as conn:
            rows = (await conn.execute(select(func.count()).select_from(schema_version))).scalar()
        assert rows == LATEST
    finally:
        await engine.dispose()


@pytest.mark.parametrize("round_", range(8))
async def test_processes_starting_together_migrate_once(
    make_settings: MakeSettings, round_: int
) -> None:
    """Repeated: on a fresh SQLite file the WAL switch could fail at once ("database is
    locked") in about one start in twelve before it was retried."""
    settings = make_settings()
    stores = await asyncio.gather(*(FeedbackStore.open(settings) for _ in range(3)))
    try:
        async with stores[0].connect() as conn:
            versions = (await conn.scalars(select(schema_version.c.version))).all()
        assert list(versions) == list(range(1, LATEST + 1))
    finally:
        for store in stores:
            await store.aclose()


async def test_a_database_from_a_newer_tierbot_is_refused(make_settings: MakeSettings) -> None:
    settings = make_settings()
    engine = build_engine(settings.url)
    try:
        await migrate(engine)
        async with engine.begin() as conn:
            await conn.execute(
                insert(schema_version).values(version=LATEST + 1, applied_at=utc_now())
            )
    finally:
        await engine.dispose()
    with pytest.raises(SchemaError, match=f"schema version {LATEST + 1}, this tierbot knows"):
        await FeedbackStore.open(settings)
