"""Strict decoding of untrusted JSON bodies: bounded nesting, finite numbers, 64-bit integers."""

from __future__ import annotations

import math

import pydantic_core
from pydantic import ValidationError

from bots.errors import BadUpdate

MAX_DEPTH = 32
"""Containers nested deeper than this are refused; real platform updates stay under 10."""
_INT64_LIMIT = 2**63


def loads(raw: bytes) -> object:
    """Decode `raw`, or raise BadUpdate.

    Refused: anything that is not one UTF-8 JSON document, NaN and Infinity (also as `1e999`),
    integers outside the signed 64-bit range, and nesting deeper than `MAX_DEPTH`.
    """
    try:
        value: object = pydantic_core.from_json(raw, allow_inf_nan=False, cache_strings=False)
    except ValueError as exc:  # the message says where, never echoes the input
        raise BadUpdate(f"not JSON: {exc}") from None
    _check(value)
    return value


def describe(exc: ValidationError) -> str:
    """Where and why a body failed its model, without echoing any of its values."""
    problems = [
        f"{'.'.join(str(part) for part in err['loc']) or '<body>'}: {err['type']}"
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]
    return "; ".join(problems[:5])


def _check(value: object) -> None:
    """Walk the document level by level: no recursion, and no allocation per item (it is hot)."""
    level = [value]
    depth = 0
    while level:
        children: list[object] = []
        for item in level:
            if isinstance(item, str):
                continue
            if isinstance(item, dict | list):
                if depth >= MAX_DEPTH:
                    raise BadUpdate(f"nested deeper than {MAX_DEPTH}")
                children.extend(item.values() if isinstance(item, dict) else item)
            elif isinstance(item, float):
                if not math.isfinite(item):
                    raise BadUpdate("number out of range")
            elif isinstance(item, int) and not -_INT64_LIMIT <= item < _INT64_LIMIT:
                raise BadUpdate("integer outside 64 bits")
        level = children
        depth += 1
