"""`tierbot feedback review|report|export|forget`, run through the CLI's own entry points."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from bots import feedback_cli
from feedback.settings import FeedbackSettings
from feedback.store import FeedbackStore
from feedback.types import EventKind, EventRecord, TurnRecord
from tests.feedback.conftest import Clock, MakeSettings, PgDatabase, settings_for
from tests.feedback.records import RAW_USER, T0, at, make_event, make_turn

pytestmark = pytest.mark.timeout(60)

NOW = T0 + timedelta(hours=2)


def run(settings: FeedbackSettings, *argv: str) -> tuple[int, str]:
    """Parse `tierbot feedback ARGV` as the composition root does and run it at NOW."""
    parser = argparse.ArgumentParser(prog="tierbot")
    feedback_cli.add_parser(parser.add_subparsers(dest="group", required=True))
    out = io.StringIO()
    status = feedback_cli.run(parser.parse_args(["feedback", *argv]), settings, out=out, now=NOW)
    return status, out.getvalue()


def seed(settings: FeedbackSettings, records: list[TurnRecord | EventRecord]) -> None:
    async def write() -> None:
        store = await FeedbackStore.open(settings, clock=Clock(T0))
        try:
            await store.write(records)
        finally:
            await store.aclose()

    asyncio.run(write())


@pytest.fixture
def settings(make_settings: MakeSettings) -> FeedbackSettings:
    chosen = make_settings()
    seed(
        chosen,
        [
            make_turn("k1", when=at(1)),
            make_turn("k2", when=at(2), tier=2, reasons=("escalate_failed_answer",)),
            make_turn("k3", when=at(3), user="other", chat="other-chat", channel="whatsapp"),
            make_event(EventKind.MISROUTE, turn_id="k2", related="k1", cause="frustration"),
            make_event(EventKind.ESCALATION, turn_id="k2", cause="frustration"),
            make_event(EventKind.RATING, turn_id="k2", rating="up", when=at(3)),
        ],
    )
    return chosen


def test_review_lists_turns_newest_first(settings: FeedbackSettings) -> None:
    status, out = run(settings, "review", "--since", "24h")
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["time", "turn", "channel", "tier"]
    assert [line.split()[2] for line in lines[2:]] == ["k3", "k2", "k1"]
    assert "escalate_failed_answer" in lines[3]
    assert lines[3].split()[-1] == "up"
    assert lines[4].split()[-1] == "frustration"


def test_review_filters_and_json(settings: FeedbackSettings) -> None:
    status, out = run(settings, "review", "--tier", "1", "--channel", "telegram", "--json")
    assert status == 0
    assert [line["turn"]["turn_id"] for line in json.loads(out)] == ["k1"]
    assert run(settings, "review", "--misroute")[1].splitlines()[2].split()[2] == "k1"
    assert run(settings, "review", "--rating", "down") == (0, "no turns match\n")


def test_review_turn_opens_the_conversation(settings: FeedbackSettings) -> None:
    status, out = run(settings, "review", "--turn", "k2")
    assert status == 0
    assert "> 2025-05-01 12:02:00  k2  tier 2" in out
    assert "    user: how do I reset my password?" in out
    assert "    reason [escalate_failed_answer] because escalate_failed_answer" in out
    assert "    attempt tier 2 groq:llama-3.1-8b-instant ok 0.900 s" in out
    assert "    event 12:00:00 misroute frustration" in out
    assert out.index("k1") < out.index("> 2025") < out.rindex("k2")
    view = json.loads(run(settings, "review", "--turn", "k1", "--json")[1])
    assert [t["turn_id"] for t in view["after"]] == ["k2"]


def test_review_of_an_unknown_turn_fails_with_a_message(
    settings: FeedbackSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(settings, "review", "--turn", "nope") == (1, "")
    assert capsys.readouterr().err == "tierbot: no turn 'nope' in the feedback log\n"


def test_a_bad_time_fails_with_a_message(
    settings: FeedbackSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(settings, "export", "--since", "last tuesday")[0] == 1
    assert "cannot read time 'last tuesday'" in capsys.readouterr().err


def test_report_prints_tables(settings: FeedbackSettings) -> None:
    status, out = run(settings, "report", "--since", "1d")
    assert status == 0
    assert out.startswith("period 2025-04-30 14:00 .. now (UTC)   requests 3   (ok 3)\n")
    for title in ("tiers", "latency (seconds)", "misroutes", "escalations", "providers"):
        assert f"\n{title}\n" in out
    assert "savings (recorded prices): vs top tier $0.0270" in out
    assert "\nprovider errors\n  none" in out


def test_report_json_and_prices(settings: FeedbackSettings) -> None:
    prices = (
        '{"top": {"input_per_mtok": 10, "output_per_mtok": 10},'
        ' "mid": {"input_per_mtok": 1, "output_per_mtok": 1}}'
    )
    status, out = run(settings, "report", "--until", "1h", "--prices", prices, "--json")
    assert status == 0
    report = json.loads(out)
    assert report["requests"] == 3
    assert report["savings"]["basis"] == "prices"
    assert report["savings"]["if_top_usd"] == pytest.approx(0.015)
    assert report["until"] == (NOW - timedelta(hours=1)).isoformat()
    assert report["tiers"][1]["misroute_rate"] == 0.0


def test_report_with_bad_prices_fails(
    settings: FeedbackSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(settings, "report", "--prices", "{}")[0] == 1
    assert "--prices: top: Field required" in capsys.readouterr().err


def test_export_jsonl_to_stdout_and_csv_to_a_file(
    settings: FeedbackSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = run(settings, "export", "--reason", "base_tier", "--no-text")
    assert status == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(line["turn_id"], line["message_text"]) for line in lines] == [
        ("k1", None),
        ("k3", None),
    ]
    target = tmp_path / "turns.csv"
    assert run(settings, "export", "--format", "csv", "--output", str(target)) == (0, "")
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert [row["turn_id"] for row in rows] == ["k1", "k2", "k3"]
    assert capsys.readouterr().err == f"exported 3 turns to {target}\n"


def test_export_to_an_unwritable_place_fails(
    settings: FeedbackSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "missing" / "turns.csv"
    assert run(settings, "export", "--output", str(target))[0] == 1
    assert capsys.readouterr().err.startswith(f"tierbot: cannot write {target}:")


def test_forget_deletes_a_user_by_raw_id(settings: FeedbackSettings) -> None:
    assert run(settings, "forget", RAW_USER) == (0, "forgot 2 turns, 2 attempts, 3 events\n")
    assert json.loads(run(settings, "forget", "other", "--json")[1]) == {
        "turns": 1,
        "attempts": 1,
        "events": 0,
    }
    assert run(settings, "review") == (0, "no turns match\n")


def test_a_query_that_runs_too_long_fails_with_the_variable(
    pg_database: PgDatabase, capsys: pytest.CaptureFixture[str]
) -> None:
    # PostgreSQL only: a cancelled aiosqlite call finishes on its own thread after the CLI's
    # event loop has closed, and that thread then reports the closed loop during a later test.
    slow = settings_for(pg_database.url, feedback_query_timeout_s=2.0)
    seed(slow, [make_turn("t1")])

    async def hold_the_table() -> int:
        blocker = await asyncpg.connect(pg_database.url.replace("+asyncpg", ""))
        try:
            async with blocker.transaction():
                await blocker.execute("LOCK TABLE turns IN ACCESS EXCLUSIVE MODE")
                return await asyncio.to_thread(lambda: run(slow, "report")[0])
        finally:
            await blocker.close()

    assert asyncio.run(hold_the_table()) == 1
    assert "longer than TIERBOT_FEEDBACK_QUERY_TIMEOUT_S=2 s" in capsys.readouterr().err


def test_opening_a_database_that_does_not_answer_in_time_fails(
    pg_database: PgDatabase, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(settings_for(pg_database.url, feedback_query_timeout_s=1e-9), "report")[0] == 1
    assert "no answer within TIERBOT_FEEDBACK_QUERY_TIMEOUT_S=1e-09 s" in capsys.readouterr().err


def test_an_empty_report_says_none(make_settings: MakeSettings) -> None:
    status, out = run(make_settings(), "report")
    assert status == 0
    assert "requests 0   (none)" in out
    assert "\ntiers\n  none" in out
