"""Regression tests of the bugs schemathesis found outside `tests/hostile` (see `known_bugs.py`).

Each is `xfail(strict=True)` until its fix lands; then it passes, the run fails, and the marker
and the matching predicate in `known_bugs.py` go.
"""

from __future__ import annotations

import pytest
from pytest_aiohttp import AiohttpClient

from tests.bots.conftest import build_app
from tests.hostile.known_bugs import coerced_scalars


@pytest.mark.xfail(strict=True, reason="bots/openai_wire.py: lax coercion of scalars")
@pytest.mark.parametrize(
    "fields",
    [
        {"stream": 0},
        {"stream": "yes"},
        {"stream_options": {"include_usage": 1}},
        {"max_tokens": "5"},
        {"n": "1"},
    ],
    ids=lambda fields: str(fields),
)
async def test_the_api_takes_booleans_and_integers_only_as_json_ones(
    aiohttp_client: AiohttpClient, fields: dict[str, object]
) -> None:
    client = await aiohttp_client(build_app(offline=True))
    body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}], **fields}

    async with client.post("/v1/chat/completions", json=body) as response:
        assert response.status == 400


def test_the_predicate_matches_the_regression_inputs() -> None:
    assert coerced_scalars({"stream": 0})
    assert coerced_scalars({"stream_options": {"include_usage": "yes"}})
    assert coerced_scalars({"max_tokens": "5"})
    assert not coerced_scalars({"stream": True, "max_tokens": 5})
    assert not coerced_scalars({"stream": "maybe", "max_tokens": "five"})
