"""The feedback database: writes batches of records, forgets users, purges old text.

The same SQLAlchemy Core code runs on SQLite (aiosqlite) and PostgreSQL (asyncpg). Raw user,
chat and conversation ids are replaced by keyed HMACs here, before any row is built (a
conversation id is often made from a chat id); message and answer text is kept only while it is
younger than the retention window.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Table, delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import Insert

from feedback.engine import build_engine
from feedback.errors import StoreError
from feedback.ids import IdHasher
from feedback.migrations import migrate
from feedback.schema import attempts, events, turn_texts, turns
from feedback.settings import FeedbackSettings
from feedback.types import EventRecord, TurnRecord

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Row = dict[str, object]


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (the default clock)."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class Forgotten:
    """How many rows `forget` deleted."""

    turns: int
    attempts: int
    events: int


def _describe(exc: BaseException) -> str:
    """The error's first line: its class and the database's message, without the SQL."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _cannot_open(settings: FeedbackSettings, exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        limit = settings.feedback_query_timeout_s
        why = f"no answer within TIERBOT_FEEDBACK_QUERY_TIMEOUT_S={limit:g} s"
    else:
        why = _describe(exc)
    return f"cannot open the feedback database {settings.database_display}: {why}"


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, IntegrityError | DataError):
        return False
    return not (isinstance(exc, StatementError) and not isinstance(exc, DBAPIError))


class FeedbackStore:
    """The log's tables behind one engine: batch writes, forget, purge, and query connections."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        hasher: IdHasher,
        retention_days: int,
        clock: Clock = utc_now,
    ) -> None:
        self._engine = engine
        self._hasher = hasher
        self._retention = timedelta(days=retention_days)
        self._keep_text = retention_days > 0
        self._clock = clock

    @classmethod
    async def open(cls, settings: FeedbackSettings, *, clock: Clock = utc_now) -> FeedbackStore:
        """Connect, apply pending migrations and return the store; StoreError if unreachable."""
        if settings.uses_dev_key:
            logger.warning(
                "TIERBOT_ID_HASH_KEY is the development default: user and chat pseudonyms can "
                "be reversed by anyone; set a secret key before real users arrive"
            )
        engine = build_engine(settings.url)
        try:
            async with asyncio.timeout(settings.feedback_query_timeout_s):
                await migrate(engine)
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            await engine.dispose()
            raise StoreError(_cannot_open(settings, exc)) from exc
        except BaseException:
            await engine.dispose()
            raise
        hasher = IdHasher(settings.id_hash_key, version=settings.id_hash_key_version)
        return cls(engine, hasher=hasher, retention_days=settings.text_retention_days, clock=clock)

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self._engine.dispose()

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self._engine.dialect.name

    def hash_id(self, raw_id: str) -> str:
        """The pseudonym the store writes for a raw user or chat id."""
        return self._hasher(raw_id)

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection for read queries; database failures surface as StoreError."""
        try:
            async with self._engine.connect() as conn:
                yield conn
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(f"feedback query failed: {_describe(exc)}") from exc

    async def write(self, records: Sequence[TurnRecord | EventRecord]) -> None:
        """Write a batch in one transaction; rows already present are skipped (retries are safe).

        Raises StoreError; its `transient` flag says whether a retry may succeed.
        """
        try:
            batch = self._rows(records)
        except (TypeError, ValueError, AttributeError) as exc:
            raise StoreError(
                f"feedback record malformed: {_describe(exc)}", transient=False
            ) from exc
        try:
            async with self._engine.begin() as conn:
                for table, rows in batch.items():
                    if rows:
                        await conn.execute(self._insert_new(table), rows)
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(
                f"feedback write failed: {_describe(exc)}", transient=_is_transient(exc)
            ) from exc

    def _rows(self, records: Sequence[TurnRecord | EventRecord]) -> dict[Table, list[Row]]:
        """The rows of each table, in the order they are inserted."""
        batch: dict[Table, list[Row]] = {turns: [], turn_texts: [], attempts: [], events: []}
        text_cutoff = self._clock() - self._retention
        for record in records:
            if isinstance(record, EventRecord):
                batch[events].append(self._event_row(record))
                continue
            batch[turns].append(self._turn_row(record))
            batch[attempts].extend(_attempt_rows(record))
            has_text = record.message_text is not None or record.answer_text is not None
            if has_text and self._keep_text and _aware(record.at) >= text_cutoff:
                batch[turn_texts].append(_text_row(record))
        return batch

    async def forget(self, user_raw_id: str) -> Forgotten:
        """Delete a user's turns, their attempts, and the events that name the user or a turn.

        Events are matched by user pseudonym, by chat pseudonym (a private chat whose id is the
        user's id) and by turn. Returns the number of rows deleted from each table.
        """
        pseudonym = self._hasher(user_raw_id)
        owned = select(turns.c.turn_id).where(
            or_(turns.c.user_hash == pseudonym, turns.c.chat_hash == pseudonym)
        )
        try:
            async with self._engine.begin() as conn:
                await conn.execute(delete(turn_texts).where(turn_texts.c.turn_id.in_(owned)))
                gone_attempts = await conn.execute(
                    delete(attempts).where(attempts.c.turn_id.in_(owned))
                )
                gone_events = await conn.execute(
                    delete(events).where(
                        or_(
                            events.c.user_hash == pseudonym,
                            events.c.chat_hash == pseudonym,
                            events.c.turn_id.in_(owned),
                            events.c.related_turn_id.in_(owned),
                        )
                    )
                )
                gone_turns = await conn.execute(
                    delete(turns).where(
                        or_(turns.c.user_hash == pseudonym, turns.c.chat_hash == pseudonym)
                    )
                )
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(f"feedback forget failed: {_describe(exc)}") from exc
        logger.info("feedback forgot user=%s turns=%d", pseudonym, gone_turns.rowcount)
        return Forgotten(
            turns=gone_turns.rowcount, attempts=gone_attempts.rowcount, events=gone_events.rowcount
        )

    async def purge_texts(self) -> int:
        """Delete message and answer text older than the retention window; return turns purged."""
        cutoff = self._clock() - self._retention
        stmt = delete(turn_texts).where(turn_texts.c.at < cutoff)
        try:
            async with self._engine.begin() as conn:
                purged = (await conn.execute(stmt)).rowcount
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(f"feedback text purge failed: {_describe(exc)}") from exc
        if purged:
            logger.info("feedback purged text of turns=%d older than %s", purged, cutoff)
        return purged

    def _insert_new(self, table: Table) -> Insert:
        if self.dialect == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing()
        return sqlite.insert(table).on_conflict_do_nothing()

    def _turn_row(self, turn: TurnRecord) -> Row:
        signals = turn.signals
        return {
            "turn_id": turn.turn_id,
            "at": turn.at,
            "channel": turn.channel,
            "surface": turn.surface,
            "user_hash": self._hasher(turn.user_id),
            "chat_hash": self._hasher(turn.chat_id),
            "conversation_id": self._hasher(turn.conversation_id),
            "complexity": signals.complexity,
            "frustration": signals.frustration,
            "rephrase": signals.rephrase,
            "history_tokens": signals.history_tokens,
            "tier": turn.tier,
            "confidence": turn.confidence,
            "reasons": json.dumps(
                [{"code": r.code, "text": r.text} for r in turn.reasons], ensure_ascii=False
            ),
            "reason_codes": " " + " ".join(r.code for r in turn.reasons) + " ",
            "provider": turn.provider,
            "model": turn.model,
            "tokens_in": turn.tokens_in,
            "tokens_out": turn.tokens_out,
            "cost_usd": turn.cost_usd,
            "cost_if_top": turn.cost_if_top,
            "cost_if_mid": turn.cost_if_mid,
            "ttft_s": turn.ttft_s,
            "total_s": turn.total_s,
            "outcome": turn.outcome,
        }

    def _event_row(self, event: EventRecord) -> Row:
        return {
            "event_id": event.event_id,
            "kind": str(event.kind),
            "at": event.at,
            "turn_id": event.turn_id,
            "related_turn_id": event.related_turn_id,
            "user_hash": None if event.user_id is None else self._hasher(event.user_id),
            "chat_hash": None if event.chat_id is None else self._hasher(event.chat_id),
            "cause": event.cause,
            "rating": event.rating,
            "detail": event.detail,
        }


def _attempt_rows(turn: TurnRecord) -> list[Row]:
    return [
        {
            "turn_id": turn.turn_id,
            "seq": seq,
            "at": turn.at,
            "tier": a.tier,
            "provider": a.provider,
            "model": a.model,
            "error": a.error,
            "latency_s": a.latency_s,
        }
        for seq, a in enumerate(turn.attempts)
    ]


def _text_row(turn: TurnRecord) -> Row:
    return {
        "turn_id": turn.turn_id,
        "at": turn.at,
        "message_text": turn.message_text,
        "answer_text": turn.answer_text,
    }


def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at
