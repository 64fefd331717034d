"""Fixtures for the feedback tests: a fresh database per test on SQLite and on PostgreSQL.

PostgreSQL must run on 127.0.0.1:5432 with trust auth for user `postgres`; each test gets its
own database, dropped afterwards. A missing server fails the test with how to start it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from pydantic import SecretStr

from feedback.settings import FeedbackSettings
from feedback.store import FeedbackStore, utc_now
from tests.feedback.records import T0
from tests.log_scrape import record_postgres

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
TEST_KEY = "test-id-hash-key-0123456789"
START_POSTGRES = (
    "PostgreSQL is not reachable on 127.0.0.1:5432 as user postgres ({error}). Start it with "
    "`service postgresql start` (or `pg_ctlcluster 15 main start`), with trust auth for "
    "local TCP connections in pg_hba.conf."
)

MakeSettings = Callable[..., FeedbackSettings]


async def admin_connection() -> asyncpg.Connection:
    """A connection to the `postgres` database, or a failed test saying how to start it."""
    try:
        return await asyncpg.connect(ADMIN_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(START_POSTGRES.format(error=exc))


class PgDatabase:
    """A throwaway PostgreSQL database and the admin connection that made it."""

    def __init__(self, admin: asyncpg.Connection, name: str) -> None:
        self.admin = admin
        self.name = name
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"

    async def refuse_connections(self) -> None:
        """Take the database down: refuse new connections and end the open ones."""
        await self.admin.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false')
        await self.admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            self.name,
        )

    async def accept_connections(self) -> None:
        """Bring the database back."""
        await self.admin.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')


@pytest.fixture
async def pg_database() -> AsyncIterator[PgDatabase]:
    """A fresh, empty PostgreSQL database, dropped after the test."""
    admin = await admin_connection()
    name = f"tierbot_fb_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    database = PgDatabase(admin, name)
    try:
        yield database
        await database.accept_connections()  # the test may have taken it down
        scanned = await asyncpg.connect(database.url.replace("+asyncpg", ""), timeout=5)
        try:
            await record_postgres(scanned, "public")  # for the log scrape (T14)
        finally:
            await scanned.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(scope="session")
def pg_session_database() -> Iterator[str]:
    """One database for the whole run; each test gets its own schema in it."""
    name = f"tierbot_fb_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        admin = await admin_connection()
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()

    async def drop() -> None:
        admin = await admin_connection()
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    asyncio.run(create())
    try:
        yield name
    finally:
        asyncio.run(drop())


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, pg_session_database: str
) -> AsyncIterator[str]:
    """The URL of an empty database, once per backend.

    On PostgreSQL the test connects as a role of its own whose schema has the role's name, so
    the default search path (`"$user", public`) puts every table there; both are dropped after.
    """
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'feedback.sqlite3'}"
        return
    database = pg_session_database
    role = f"fb_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{database}", timeout=5)
    await admin.execute(
        f'CREATE ROLE "{role}" LOGIN; CREATE SCHEMA "{role}" AUTHORIZATION "{role}"'
    )
    try:
        yield f"postgresql+asyncpg://{role}@127.0.0.1:5432/{database}"
        await record_postgres(admin, role)  # for the log scrape (T14)
    finally:
        await admin.execute(f'DROP SCHEMA "{role}" CASCADE; DROP ROLE "{role}"')
        await admin.close()


def settings_for(url: str, **changes: object) -> FeedbackSettings:
    """Test settings: a real key, fast flushing, short retries."""
    values: dict[str, object] = {
        "database_url": SecretStr(url),
        "id_hash_key": SecretStr(TEST_KEY),
        "feedback_flush_interval_s": 0.02,
        "feedback_retry_max_s": 0.1,
        "feedback_write_timeout_s": 2.0,
        "feedback_shutdown_timeout_s": 5.0,
    }
    return FeedbackSettings.model_validate(values | changes)


@pytest.fixture
def make_settings(database_url: str) -> MakeSettings:
    """Settings for this test's database, with any field changed."""

    def build(**changes: object) -> FeedbackSettings:
        return settings_for(database_url, **changes)

    return build


@pytest.fixture
async def store(make_settings: MakeSettings) -> AsyncIterator[FeedbackStore]:
    """An open store on this test's database, whose clock reads one day after T0."""
    opened = await FeedbackStore.open(make_settings(), clock=Clock(T0 + timedelta(days=1)))
    try:
        yield opened
    finally:
        await opened.aclose()


class Clock:
    """A settable clock for retention tests."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or utc_now()

    def __call__(self) -> datetime:
        return self.now
