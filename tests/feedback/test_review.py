"""Review: every filter, one turn with its conversation, and the time forms --since accepts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from feedback.errors import QueryError, TurnNotFound
from feedback.filters import TurnFilter, parse_when
from feedback.review import Marks, open_turn, review_turns
from feedback.store import FeedbackStore
from feedback.types import EventKind
from tests.feedback.records import T0, at, make_event, make_turn

pytestmark = pytest.mark.timeout(30)

OTHER_CHAT = "another-chat"


@pytest.fixture
async def loaded(store: FeedbackStore) -> FeedbackStore:
    await store.write(
        [
            make_turn("c1", when=at(0), reasons=("base_tier",)),
            make_turn("c2", when=at(1), reasons=("base_tier", "rule_x")),
            make_turn("c3", when=at(2), tier=2, reasons=("escalate_failed_answer",)),
            make_turn("c4", when=at(3), tier=2, channel="whatsapp", outcome="failed"),
            make_turn("c5", when=at(4), surface="group", chat=OTHER_CHAT, message=None),
            make_turn("c6", when=at(5), tier=3, reasons=("rulexx",)),
            make_event(EventKind.MISROUTE, turn_id="c3", related="c2", cause="rephrase"),
            make_event(EventKind.RATING, turn_id="c3", rating="down", when=at(3)),
            make_event(EventKind.RATING, turn_id="c3", rating="stronger", when=at(4)),
            make_event(EventKind.RATING, turn_id="c4", rating="up"),
        ]
    )
    return store


async def _ids(store: FeedbackStore, flt: TurnFilter, limit: int = 50) -> list[str]:
    return [line.turn.turn_id for line in await review_turns(store, flt, limit=limit)]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (TurnFilter(), ["c6", "c5", "c4", "c3", "c2", "c1"]),
        (TurnFilter(since=at(2)), ["c6", "c5", "c4", "c3"]),
        (TurnFilter(until=at(2)), ["c2", "c1"]),
        (TurnFilter(since=at(1), until=at(3)), ["c3", "c2"]),
        (TurnFilter(channel="whatsapp"), ["c4"]),
        (TurnFilter(surface="group"), ["c5"]),
        (TurnFilter(tier=2), ["c4", "c3"]),
        (TurnFilter(reason="rule_x"), ["c2"]),  # the "_" is not a wildcard: rulexx stays out
        (TurnFilter(reason="base"), []),  # whole codes only
        (TurnFilter(rating="down"), ["c3"]),
        (TurnFilter(rating="up"), ["c4"]),
        (TurnFilter(misroute=True), ["c2"]),
        (TurnFilter(outcome="failed"), ["c4"]),
        (TurnFilter(tier=2, rating="up"), ["c4"]),
    ],
)
async def test_review_filters(loaded: FeedbackStore, flt: TurnFilter, expected: list[str]) -> None:
    assert await _ids(loaded, flt) == expected


async def test_review_lines_carry_ratings_and_misroute_causes(loaded: FeedbackStore) -> None:
    lines = {line.turn.turn_id: line.marks for line in await review_turns(loaded, TurnFilter())}
    assert lines["c3"] == Marks(ratings=("down", "stronger"))
    assert lines["c2"] == Marks(misroute_causes=("rephrase",))
    assert lines["c1"] == Marks()


async def test_review_limit_keeps_the_newest(loaded: FeedbackStore) -> None:
    assert await _ids(loaded, TurnFilter(), limit=2) == ["c6", "c5"]


async def test_open_turn_shows_the_conversation_of_its_chat_around_it(
    loaded: FeedbackStore,
) -> None:
    view = await open_turn(loaded, "c3", context=2)
    assert view.turn.turn_id == "c3"
    assert [t.turn_id for t in view.before] == ["c1", "c2"]
    assert [t.turn_id for t in view.after] == ["c4", "c6"]  # c5 is another chat
    assert view.before[1].message_text == "how do I reset my password?"
    assert [(e.kind, e.rating) for e in view.events] == [
        ("misroute", None),  # c3 is the turn that found c2 misrouted
        ("rating", "down"),
        ("rating", "stronger"),
    ]
    assert [a.provider for a in view.attempts] == ["groq"]


async def test_open_turn_lists_the_misroute_that_points_at_it(loaded: FeedbackStore) -> None:
    view = await open_turn(loaded, "c2", context=1)
    assert [(e.kind, e.cause, e.turn_id) for e in view.events] == [("misroute", "rephrase", "c3")]
    assert ([t.turn_id for t in view.before], [t.turn_id for t in view.after]) == (["c1"], ["c3"])


async def test_turns_at_the_same_instant_are_ordered_by_id(store: FeedbackStore) -> None:
    await store.write([make_turn(name, when=T0) for name in ("x2", "x1", "x3")])
    view = await open_turn(store, "x2")
    assert ([t.turn_id for t in view.before], [t.turn_id for t in view.after]) == (["x1"], ["x3"])


async def test_opening_an_unknown_turn_says_so(store: FeedbackStore) -> None:
    with pytest.raises(TurnNotFound, match="no turn 'nope'"):
        await open_turn(store, "nope")


NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", NOW - timedelta(hours=24)),
        ("7d", NOW - timedelta(days=7)),
        ("30m", NOW - timedelta(minutes=30)),
        ("90s", NOW - timedelta(seconds=90)),
        ("2w", NOW - timedelta(weeks=2)),
        (" 1.5h ", NOW - timedelta(minutes=90)),
        ("2025-05-01", datetime(2025, 5, 1, tzinfo=UTC)),
        ("2025-05-01T12:30:00", datetime(2025, 5, 1, 12, 30, tzinfo=UTC)),
        ("2025-05-01T12:30:00+02:00", datetime(2025, 5, 1, 10, 30, tzinfo=UTC)),
    ],
)
def test_parse_when_reads_spans_and_iso_times(text: str, expected: datetime) -> None:
    assert parse_when(text, NOW) == expected


@pytest.mark.parametrize(
    "text", ["yesterday", "7x", "", "-3d", "99999999w", "1e400d", "0001-01-01T00:00:00+01:00"]
)
def test_parse_when_rejects_anything_else(text: str) -> None:
    with pytest.raises(QueryError, match="use a span like 24h"):
        parse_when(text, NOW)
