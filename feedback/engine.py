"""Builds the async SQLAlchemy engine for SQLite (aiosqlite) or PostgreSQL (asyncpg)."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

IMMEDIATE = "feedback_begin_immediate"
"""Execution option: on SQLite, start the transaction with BEGIN IMMEDIATE (take the write lock
before the first read), so two processes migrating at once queue instead of deadlocking."""


def build_engine(url: URL) -> AsyncEngine:
    """Return an engine for `url`; SQLite connections get WAL and explicit transactions.

    Statement parameters are kept out of error messages: they hold message text and
    pseudonyms, and those messages end up in logs.
    """
    if url.get_backend_name() == "sqlite":
        engine = create_async_engine(url, connect_args={"timeout": 30.0}, hide_parameters=True)
        _explicit_sqlite_transactions(engine)
        return engine
    return create_async_engine(
        url, pool_pre_ping=True, pool_size=5, max_overflow=5, hide_parameters=True
    )


def _explicit_sqlite_transactions(engine: AsyncEngine) -> None:
    """Let SQLAlchemy, not the sqlite3 module, open transactions, so DDL is transactional too.

    The sqlite3 module opens transactions implicitly and only before DML; a migration's CREATE
    TABLE would then commit on its own. This is SQLAlchemy's documented recipe for pysqlite and
    aiosqlite ("Serializable isolation / Savepoints / Transactional DDL").
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: object) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _switch_to_wal(cursor: Any) -> None:
    """`PRAGMA journal_mode=WAL`, retried for up to 30 s: while another process switches the
    same new file, SQLite can answer "database is locked" at once, without its busy handler
    (seen with three stores opening one file together). This runs on aiosqlite's thread."""
    for attempt in range(300):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 299:
                raise
            time.sleep(0.1)
