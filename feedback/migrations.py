"""Ordered schema migrations, applied at start-up and recorded in `feedback_schema_version`.

Each step runs in one transaction together with the row that records it, so a database is
always at a whole version. PostgreSQL serialises concurrent starters with an advisory lock,
SQLite with BEGIN IMMEDIATE. Rules for a new step: append it (never edit a released one), write
it with portable Core DDL or per-dialect statements, and change `feedback/schema.py` to match;
`tests/feedback/test_migrations.py` checks that a migrated database equals `schema.py`.
Step 1 builds its tables from `schema.py`; the first change to those tables must therefore also
freeze step 1 as the version-1 DDL before `schema.py` is edited.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Connection, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from feedback.engine import IMMEDIATE
from feedback.errors import SchemaError
from feedback.schema import DATA_TABLES, metadata, schema_version

logger = logging.getLogger(__name__)

Step = Callable[[Connection], None]

_ADVISORY_LOCK_KEY = 0x7469657262 % (2**31)
"""An arbitrary constant of our own ("tierb"), the PostgreSQL advisory lock of migrations."""


def _v1_create_log_tables(conn: Connection) -> None:
    metadata.create_all(conn, tables=list(DATA_TABLES))


STEPS: tuple[Step, ...] = (_v1_create_log_tables,)
"""Step N brings a database from version N-1 to N."""

LATEST = len(STEPS)


async def migrate(engine: AsyncEngine) -> int:
    """Bring the database to the latest version; return the version it had before.

    Raises SchemaError when the database is newer than this code.
    """
    async with engine.connect() as conn:
        await conn.execution_options(**{IMMEDIATE: True})
        async with conn.begin():
            before = await _current_version(conn)
            if before > LATEST:
                raise SchemaError(
                    f"feedback database is at schema version {before}, this tierbot knows "
                    f"{LATEST}; upgrade tierbot"
                )
            for version in range(before + 1, LATEST + 1):
                await conn.run_sync(STEPS[version - 1])
                await conn.execute(
                    insert(schema_version).values(version=version, applied_at=datetime.now(UTC))
                )
                logger.info("feedback schema migrated to version=%d", version)
    return before


async def _current_version(conn: AsyncConnection) -> int:
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
    await conn.run_sync(lambda sync: schema_version.create(sync, checkfirst=True))
    found = (await conn.execute(select(func.max(schema_version.c.version)))).scalar_one()
    return int(found or 0)
