"""Benchmark: the cost of `record_turn` on the worker's path, and `report` over 1,000,000 turns.

Run on demand: `python3 -m uv run python -m tests.bench.bench_feedback [--turns N] [--runs R]`.
(a) times `FeedbackLog.record_turn` against a baseline measured in the same run: building the
`TurnRecord` alone (the least any caller pays). Target <= 0.2 ms per call.
(b) bulk-loads N turns (default 1,000,000) with their texts, attempts and events into a
throwaway PostgreSQL database with COPY, then times the full report R times (median printed)
against a baseline of one `count(*)` scan of the turns table: once right after the load and
ANALYZE, and once after VACUUM ANALYZE (what autovacuum does to an insert-only table, and what
lets the covering indexes serve index-only scans). Target <= 5 s. Needs PostgreSQL on
127.0.0.1:5432 (user postgres, trust auth); the database is dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from pydantic import SecretStr

from feedback.report import build_report
from feedback.settings import FeedbackSettings
from feedback.store import FeedbackStore
from feedback.types import AttemptRecord, ReasonRecord, Signals, TurnRecord
from feedback.writer import FeedbackLog

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
KEY = "bench-key-0123456789abcdef"
END = datetime(2025, 6, 1, tzinfo=UTC)
SPAN_S = 30 * 86_400
ATTEMPT_ERRORS = ("ProviderTimeout", "ProviderUnavailable", "ProviderRateLimited", "breaker_open")
MODELS = (
    ("groq", "llama-3.1-8b-instant"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-sonnet-4"),
)


def make_turn(i: int, at: datetime) -> TurnRecord:
    """A realistic turn record, as the worker builds one after an answer."""
    return TurnRecord(
        turn_id=f"turn-{i}",
        conversation_id=f"conv-{i // 10}",
        at=at,
        channel="telegram",
        surface="private",
        user_id="123456789",
        chat_id="123456789",
        signals=Signals(complexity=0.42, frustration=0.1, rephrase=0.0, history_tokens=812),
        tier=1,
        confidence=0.83,
        reasons=(ReasonRecord(code="base_tier", text="complexity 0.42 < 0.60"),),
        provider="groq",
        model="llama-3.1-8b-instant",
        attempts=(
            AttemptRecord(
                provider="groq", model="llama-3.1-8b-instant", error=None, latency_s=0.8, tier=1
            ),
        ),
        tokens_in=812,
        tokens_out=230,
        cost_usd=0.0000590,
        cost_if_top=0.005886,
        cost_if_mid=0.000304,
        ttft_s=0.21,
        total_s=0.93,
        outcome="ok",
        message_text="How do I change the shipping address on my order?",
        answer_text="You can change it under Orders, then Details, then Edit address.",
    )


def _p(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100)[q - 1]


async def bench_record(n: int) -> None:
    """(a) Time building a record alone, then building it and handing it to record_turn."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = FeedbackSettings(
            database_url=SecretStr(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}"),
            id_hash_key=SecretStr(KEY),
            feedback_buffer_limit=n + 1,
            feedback_shutdown_timeout_s=600.0,
        )
        store = await FeedbackStore.open(settings)
        log = FeedbackLog(store, settings)
        log.start()
        at = datetime.now(UTC)
        build: list[float] = []
        both: list[float] = []
        for i in range(n):
            start = time.perf_counter_ns()
            make_turn(i, at)
            build.append((time.perf_counter_ns() - start) / 1e6)
        for i in range(n):
            start = time.perf_counter_ns()
            log.record_turn(make_turn(i, at))
            both.append((time.perf_counter_ns() - start) / 1e6)
            if i % 1000 == 0:
                await asyncio.sleep(0)  # let the writer run, as a worker's awaits would
        drain_start, backlog = time.perf_counter(), log.pending
        await log.aclose()
        drain_s = time.perf_counter() - drain_start
        await store.aclose()
    out = sys.stdout
    b50, r50 = statistics.median(build), statistics.median(both)
    out.write(f"(a) recording overhead, {n:,} turns (ms per call)\n")
    out.write(f"  baseline, build TurnRecord:   p50 {b50:.4f}  p99 {_p(build, 99):.4f}\n")
    out.write(f"  build + record_turn:          p50 {r50:.4f}  p99 {_p(both, 99):.4f}\n")
    out.write(f"  record_turn alone (p50 diff): {r50 - b50:.4f} ms   (target <= 0.2 ms)\n")
    out.write(f"  ratio (build+record)/build p50: {r50 / b50:.2f}x   dropped: {log.dropped}\n")
    out.write(
        f"  background writer (SQLite): {n - backlog:,} written during the loop, the other "
        f"{backlog:,} drained at close in {drain_s:.1f} s ({backlog / drain_s:,.0f} turns/s)\n"
    )


_TURN_COLUMNS = [
    "turn_id", "at", "channel", "surface", "user_hash", "chat_hash", "conversation_id",
    "complexity", "frustration", "rephrase", "history_tokens", "tier", "confidence", "reasons",
    "reason_codes", "provider", "model", "tokens_in", "tokens_out", "cost_usd", "cost_if_top",
    "cost_if_mid", "ttft_s", "total_s", "outcome",
]  # fmt: skip
_TEXT_COLUMNS = ["turn_id", "at", "message_text", "answer_text"]
_ATTEMPT_COLUMNS = ["turn_id", "seq", "at", "tier", "provider", "model", "error", "latency_s"]
_EVENT_COLUMNS = [
    "event_id", "kind", "at", "turn_id", "related_turn_id", "user_hash", "chat_hash", "cause",
    "rating", "detail",
]  # fmt: skip
_CHANNELS = (
    ("telegram", "private"),
    ("telegram", "group"),
    ("whatsapp", "private"),
    ("api", "api"),
)
_PRICE = ((0.05, 0.08), (0.59, 0.79), (3.0, 15.0))


Rows = list[tuple[object, ...]]
_REASONS = (
    '[{"code": "base_tier", "text": "complexity 0.42 is below 0.60: tier fast"}, '
    '{"code": "complexity", "text": "task looks like lookup (0.42)"}]'
)
_MESSAGE = "How do I change the shipping address on my order? It still shows the old one. " * 2
_ANSWER = "You can change it under Orders, then Details, then Edit address, before it ships. " * 4


def _turn_id(i: int) -> str:
    return f"tg-{i:020d}"  # a chat id and message id, as long as a Telegram turn id


def _pseudonym(kind: str, n: int) -> str:
    return f"h1_{kind}{n:031d}"  # as wide as a real 32-hex-digit HMAC


def _turn_rows(rng: random.Random, first: int, count: int) -> tuple[Rows, Rows, Rows, Rows]:
    """Synthetic turns, texts, attempts and events: tiers 60/30/10, 50k users, 30 days."""
    turns: Rows = []
    texts: Rows = []
    tried: Rows = []
    happened: Rows = []
    for i in range(first, first + count):
        at = END - timedelta(seconds=rng.random() * SPAN_S)
        tier = 1 if (r := rng.random()) < 0.6 else 2 if r < 0.9 else 3
        user = rng.randrange(50_000)
        channel, surface = _CHANNELS[user % 4]
        provider, model = MODELS[tier - 1]
        t_in, t_out = rng.randrange(50, 4000), rng.randrange(20, 800)
        cost = (t_in * _PRICE[tier - 1][0] + t_out * _PRICE[tier - 1][1]) / 1e6
        ttft = rng.lognormvariate(-1.2 + 0.4 * tier, 0.5)
        turn_id = _turn_id(i)
        turns.append((
            turn_id, at, channel, surface, _pseudonym("u", user), _pseudonym("c", user),
            f"conv-{i // 8:012d}", rng.random(), rng.random() * 0.3, 0.0, rng.randrange(2000),
            tier, rng.random(), _REASONS, " base_tier complexity ", provider, model,
            t_in, t_out, cost, (t_in * 3.0 + t_out * 15.0) / 1e6,
            (t_in * 0.59 + t_out * 0.79) / 1e6, ttft, ttft + rng.random() * 4,
            "ok" if rng.random() < 0.97 else "failed",
        ))  # fmt: skip
        texts.append((turn_id, at, _MESSAGE, _ANSWER))
        seq = 0
        if rng.random() < 0.15:
            error = ATTEMPT_ERRORS[rng.randrange(4)]
            tried.append((turn_id, 0, at, tier, provider, model, error, rng.random()))
            seq = 1
        tried.append((turn_id, seq, at, tier, provider, model, None, ttft + 1.0))
        _events_for(rng, happened, i, at, user)
    return turns, texts, tried, happened


def _events_for(rng: random.Random, happened: Rows, i: int, at: datetime, user: int) -> None:
    roll = rng.random()
    if roll < 0.03:
        kind, cause, related, rating = (
            "misroute",
            ("frustration", "rephrase")[i % 2],
            _turn_id(i),
            None,
        )
    elif roll < 0.13:
        kind, cause, related, rating = (
            "escalation",
            ("complexity", "frustration")[i % 2],
            None,
            None,
        )
    elif roll < 0.18:
        kind, cause, related, rating = "rating", None, None, ("up", "down", "stronger")[i % 3]
    elif roll < 0.1802:
        kind, cause, related, rating = "breaker_trip", "openai:gpt-4o-mini", None, None
    else:
        return
    turn = _turn_id(i + 1) if kind == "misroute" else _turn_id(i)
    happened.append(
        (uuid.uuid4().hex, kind, at, turn, related, _pseudonym("u", user), None, cause, rating, "")
    )


async def _load(conn: asyncpg.Connection, n: int) -> float:
    rng = random.Random(7)
    start = time.perf_counter()
    for first in range(0, n, 100_000):
        turns, texts, tried, happened = _turn_rows(rng, first, min(100_000, n - first))
        await conn.copy_records_to_table("turns", records=turns, columns=_TURN_COLUMNS)
        await conn.copy_records_to_table("turn_texts", records=texts, columns=_TEXT_COLUMNS)
        await conn.copy_records_to_table("attempts", records=tried, columns=_ATTEMPT_COLUMNS)
        await conn.copy_records_to_table("events", records=happened, columns=_EVENT_COLUMNS)
    await conn.execute("ANALYZE")
    return time.perf_counter() - start


async def _timed_runs(runs: int, work: Callable[[], Awaitable[object]]) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        await work()
        times.append(time.perf_counter() - start)
    return times


async def _measure(conn: asyncpg.Connection, store: FeedbackStore, runs: int, label: str) -> None:
    since, until = END - timedelta(days=31), END
    scan = await _timed_runs(runs, lambda: conn.fetchval("SELECT count(*) FROM turns"))
    reports = await _timed_runs(runs, lambda: build_report(store, since=since, until=until))
    base, median = statistics.median(scan), statistics.median(reports)
    out = sys.stdout
    out.write(f"  {label}\n")
    out.write(f"    baseline, count(*) scan of turns: median {base:.3f} s\n")
    out.write(
        f"    full report: median {median:.3f} s (runs {', '.join(f'{t:.2f}' for t in reports)};"
        f" target <= 5 s)   ratio report/scan {median / base:.1f}x\n"
    )


async def bench_report(n: int, runs: int) -> None:
    """(b) Load n turns into a throwaway PostgreSQL database and time the report."""
    name = f"tierbot_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        settings = FeedbackSettings(
            database_url=SecretStr(f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"),
            id_hash_key=SecretStr(KEY),
        )
        store = await FeedbackStore.open(settings)
        conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{name}")
        try:
            load_s = await _load(conn, n)
            sys.stdout.write(
                f"(b) report over {n:,} turns on PostgreSQL "
                f"(COPY-loaded with texts, attempts and events in {load_s:.1f} s)\n"
            )
            await _measure(conn, store, runs, "right after the load and ANALYZE:")
            await conn.execute("VACUUM ANALYZE")
            await _measure(conn, store, runs, "after VACUUM ANALYZE, as autovacuum leaves it:")
        finally:
            await conn.close()
            await store.aclose()
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    asyncio.run(bench_record(args.records))
    asyncio.run(bench_report(args.turns, args.runs))


if __name__ == "__main__":
    main()
