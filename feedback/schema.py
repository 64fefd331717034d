"""The tables of the feedback log as SQLAlchemy Core metadata: turns, attempts, events.

This is the *current* schema; `feedback/migrations.py` holds the ordered steps that bring a
database to it, and a test checks that a migrated database matches these definitions.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Column,
    DateTime,
    Dialect,
    Double,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    TypeDecorator,
)

ID = 64
"""Width of turn, conversation and event ids."""
HASH = 40
"""Width of keyed-HMAC pseudonyms (`h1_` plus 32 hex characters fits with room to spare)."""


class UtcDateTime(TypeDecorator[datetime]):
    """A point in time stored as UTC: timestamptz on PostgreSQL, an ISO string on SQLite."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return aware.replace(tzinfo=None) if dialect.name == "sqlite" else aware

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

schema_version = Table(
    "feedback_schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_at", UtcDateTime, nullable=False),
)

turns = Table(
    "turns",
    metadata,
    Column("turn_id", String(ID), primary_key=True),
    Column("at", UtcDateTime, nullable=False),
    Column("channel", String(32), nullable=False),
    Column("surface", String(32), nullable=False),
    Column("user_hash", String(HASH), nullable=False),
    Column("chat_hash", String(HASH), nullable=False),
    Column("conversation_id", String(ID), nullable=False),
    Column("complexity", Double, nullable=False),
    Column("frustration", Double, nullable=False),
    Column("rephrase", Double, nullable=False),
    Column("history_tokens", Integer, nullable=False),
    Column("tier", SmallInteger, nullable=False),
    Column("confidence", Double, nullable=False),
    Column("reasons", Text, nullable=False),
    Column("reason_codes", Text, nullable=False),
    Column("provider", String(64)),
    Column("model", String(128)),
    Column("tokens_in", Integer, nullable=False),
    Column("tokens_out", Integer, nullable=False),
    Column("cost_usd", Double, nullable=False),
    Column("cost_if_top", Double),
    Column("cost_if_mid", Double),
    Column("ttft_s", Double),
    Column("total_s", Double, nullable=False),
    Column("outcome", String(16), nullable=False),
    Index("ix_turns_at", "at"),
    Index("ix_turns_chat_at", "chat_hash", "at"),
    # Covering indexes: on PostgreSQL the report's latency percentiles and per-user spend read
    # these in order with index-only scans instead of sorting the whole table.
    Index("ix_turns_user", "user_hash", postgresql_include=["at", "cost_usd"]),
    Index("ix_turns_tier_ttft", "tier", "ttft_s", postgresql_include=["at"]),
    Index("ix_turns_tier_total", "tier", "total_s", postgresql_include=["at"]),
)
"""One row per turn. `reasons` is a JSON list of {code, text}; `reason_codes` holds the same
codes space-separated with a leading and trailing space, so a filter is `LIKE '% code %'`."""

turn_texts = Table(
    "turn_texts",
    metadata,
    Column("turn_id", String(ID), primary_key=True),
    Column("at", UtcDateTime, nullable=False),
    Column("message_text", Text),
    Column("answer_text", Text),
    Index("ix_turn_texts_at", "at"),
)
"""The user's message and the answer of a turn, only while inside the retention window. Kept
apart from `turns` so the report's scans stay narrow and a purge is a cheap DELETE."""

attempts = Table(
    "attempts",
    metadata,
    Column("turn_id", String(ID), nullable=False),
    Column("seq", SmallInteger, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("tier", SmallInteger, nullable=False),
    Column("provider", String(64), nullable=False),
    Column("model", String(128), nullable=False),
    Column("error", String(64)),
    Column("latency_s", Double, nullable=False),
    PrimaryKeyConstraint("turn_id", "seq", name="pk_attempts"),
    Index("ix_attempts_at", "at"),
)
"""Every provider call of a turn, in order; `at` repeats the turn's time for period queries."""

events = Table(
    "events",
    metadata,
    Column("event_id", String(ID), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("turn_id", String(ID)),
    Column("related_turn_id", String(ID)),
    Column("user_hash", String(HASH)),
    Column("chat_hash", String(HASH)),
    Column("cause", String(64)),
    Column("rating", String(16)),
    Column("detail", Text, nullable=False),
    Index("ix_events_kind_at", "kind", "at"),
    Index("ix_events_turn", "turn_id"),
    Index("ix_events_related_turn", "related_turn_id"),
    Index("ix_events_user", "user_hash"),
)

DATA_TABLES = (turns, turn_texts, attempts, events)
