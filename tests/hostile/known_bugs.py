"""Bugs schemathesis found in code outside `tests/hostile`, reported and not yet fixed.

`known_bug(case)` is True for a request that would meet one of them, so that the schemathesis
run keeps checking everything else; `test_known_bugs.py` holds a regression test per bug,
marked `xfail(strict=True)`. When a fix lands its test passes, which fails the run until the
predicate here and the marker there are removed.
"""

from __future__ import annotations

import re
from typing import Any

INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*")
LAX_BOOLEANS = (0, 1, "0", "1", "true", "false", "t", "f", "yes", "no", "y", "n", "on", "off")


def known_bug(case: Any) -> bool:
    """True when `case` (a schemathesis Case) would meet a reported bug."""
    match case.operation.label:
        case "POST /v1/chat/completions":
            return coerced_scalars(case.body)
        case _:
            return False


def coerced_scalars(body: object) -> bool:
    """bots/openai_wire.py `ChatCompletionRequest`: pydantic's lax mode takes `0`, `"yes"`
    ... as booleans and numeric strings as integers, where OpenAI's API (and our schema)
    want JSON booleans and integers: answered 200, not 400."""
    if not isinstance(body, dict):
        return False
    options = body.get("stream_options")
    flags = [
        body.get("stream"),
        options.get("include_usage") if isinstance(options, dict) else None,
    ]
    numbers = [body.get(name) for name in ("max_tokens", "max_completion_tokens", "n")]
    return any(
        not isinstance(flag, bool) and _lax_boolean(flag) for flag in flags if flag is not None
    ) or any(isinstance(number, str) and INTEGER.fullmatch(number) for number in numbers)


def _lax_boolean(value: object) -> bool:
    if isinstance(value, str):
        return value.lower() in LAX_BOOLEANS
    return isinstance(value, int | float) and value in (0, 1)
