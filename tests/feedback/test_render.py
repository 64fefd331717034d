"""Text tables and JSON rendering of review lines, conversations and reports."""

from __future__ import annotations

import json

from feedback.render import table, to_json
from tests.feedback.records import T0


def test_table_aligns_text_left_and_numbers_right() -> None:
    rendered = table(
        ("name", "n", "cost"),
        [("a", 1, 0.5), ("bbb", 200, 12_345.678), ("c", None, None)],
    )
    assert rendered.splitlines() == [
        "name    n       cost",
        "----  ---  ---------",
        "a       1     0.5000",
        "bbb   200  12,345.68",
        "c       -          -",
    ]


def test_table_renders_times_and_empty_tables() -> None:
    assert table(("at",), [(T0,)]).splitlines()[2] == "2025-05-01 12:00:00"
    assert table(("a", "b"), []) == "a  b\n-  -"


def test_json_turns_dataclasses_times_and_tuples_into_plain_values() -> None:
    assert json.loads(to_json({"at": T0, "pair": (1, 2)})) == {
        "at": "2025-05-01T12:00:00+00:00",
        "pair": [1, 2],
    }
