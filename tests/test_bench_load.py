"""The load benchmark (`tests/bench/bench_load.py`) at a tiny size, so it cannot rot unseen: the
whole system as OS processes (web, worker, a private redis-server, a fresh PostgreSQL database,
the fakes), a few chats on both channels, every acknowledged message answered exactly once, and
a report with every figure."""

from __future__ import annotations

import os
from pathlib import Path

import asyncpg
import pytest

from tests.bench.bench_load import Options, run_load
from tests.bench.load_report import render
from tests.bench.load_system import PG_ADMIN_DSN

TINY = Options(
    chats=5,
    messages=20,
    workers=1,
    web=1,
    duration_s=25.0,
    think_s=0.2,
    provider_speed=4.0,
    drain_s=20.0,
    quiet=True,
    # A turn left by a worker (a Redis call that timed out on a busy machine) is taken over in
    # seconds instead of the production 90 s, within the run.
    env=(
        ("TIERBOT_QUEUE_MIN_IDLE_SECONDS", "4"),
        ("TIERBOT_QUEUE_CLAIM_INTERVAL_SECONDS", "1"),
        ("TIERBOT_CHAT_LOCK_TTL_SECONDS", "3"),
    ),
)
SPREAD = {"n", "p50", "p99", "max"}
PROCESS = {"rss_start_mib", "rss_peak_mib", "rss_end_mib", "cpu_s"}


async def _database_exists(name: str) -> bool:
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        found = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
    finally:
        await admin.close()
    return found is not None


def _children() -> set[int]:
    """Pids of this process's live children."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
            if fields.get("PPid", "").strip() == str(os.getpid()):
                found.add(int(entry.name))
    return found


@pytest.mark.timeout(240)  # start-up alone takes minutes on a machine busy with other work
async def test_tiny_load_answers_every_acknowledged_message_once_and_reports_every_figure() -> None:
    children = _children()
    report = await run_load(TINY)
    messages = report["messages"]
    assert messages["sent"] == messages["acked"] == messages["planned"] == 20
    assert messages["answered_once"] == messages["acked"], report["unanswered_detail"]
    assert messages["duplicate_answers"] == messages["unanswered"] == 0
    assert messages["turn_missing_in_store"] == 0
    assert sum(report["mix"].values()) == 20

    latency = report["latency"]
    spreads = ("ack_ms", "baseline_ack_ms", "final_s", "added_over_provider_s", "outside_llm_s")
    for name in (*spreads, "store_first_token_s", "store_turn_total_s"):
        assert set(latency[name]) == SPREAD
        assert latency[name]["n"] > 0
        assert latency[name]["p50"] is not None
    assert set(latency["first_visible_s"]) == {"all", "telegram", "whatsapp"}
    assert latency["first_visible_s"]["all"]["n"] == 20
    assert 0 < latency["first_visible_s"]["all"]["p50"] <= latency["final_s"]["p99"]

    assert report["throughput"]["acked_per_s"] > 0
    assert report["throughput"]["answered_per_s"] > 0
    cost = report["cost"]
    assert cost["turns"] >= 20
    assert cost["per_1000_messages_usd"] > 0
    assert abs(cost["metrics_total_usd"] - cost["total_usd"]) < 1e-6
    assert abs(sum(t["share"] for t in report["tiers"].values()) - 1) < 1e-3
    names = {"redis-server", "fakes", "baseline", "web-1", "worker-1", "generator (this process)"}
    assert set(report["processes"]) == names
    for process in report["processes"].values():
        assert set(process) == PROCESS
        assert process["rss_peak_mib"] >= process["rss_end_mib"] > 0
    assert report["queue"]["depth"] == report["queue"]["dead"] == 0
    assert report["queue"]["dropped_pending"] == 0
    assert report["cpu"]["ours_s"] > 0
    machine = report["machine"]
    assert machine["cpus"] > 0
    assert machine["redis"]
    assert machine["postgresql"]
    assert render(report).startswith(f"machine: {machine['line']}\n")

    assert report["database"].startswith("tierbot_load_")
    assert not await _database_exists(report["database"])  # it was dropped
    assert _children() <= children  # and its processes are gone
