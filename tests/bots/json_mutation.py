"""Hypothesis strategies for parser properties: small arbitrary JSON, and mutated valid bodies."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any, cast

from hypothesis import strategies as st

Json = None | bool | int | float | str | list["Json"] | dict[str, "Json"]
Path = tuple[str | int, ...]


def scalars(*samples: Json) -> st.SearchStrategy[Json]:
    """JSON scalars including the awkward ones (NaN, ±Infinity, ints beyond 64 bits), plus
    `samples`: values that mean something to the parser under test."""
    return (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.text(max_size=8)
        | st.sampled_from(samples or (None,))
    )


def json_values(leaves: st.SearchStrategy[Json]) -> st.SearchStrategy[Json]:
    """Small JSON documents of any shape built from `leaves`."""
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=6), children, max_size=3)
        ),
        max_leaves=6,
    )


def mutations(
    templates: Sequence[Json], replacements: st.SearchStrategy[Json]
) -> st.SearchStrategy[Json]:
    """A valid template with up to three values replaced by `replacements` or removed, so that
    every field's checks are reached, not only the top-level ones."""
    texts = [json.dumps(template) for template in templates]
    paths = [_paths(template) for template in templates]

    def build(which: int, edits: list[tuple[int, Json, bool]]) -> Json:
        document: Any = json.loads(texts[which])
        for index, replacement, remove in edits:
            _edit(document, paths[which][index % len(paths[which])], replacement, remove=remove)
        return cast(Json, document)

    edit = st.tuples(st.integers(0, 10_000), replacements, st.booleans())
    return st.builds(build, st.integers(0, len(templates) - 1), st.lists(edit, max_size=3))


def flip(data: bytes, bit: int) -> bytes:
    """`data` with one bit inverted (`bit` wraps around the length)."""
    index = bit % (len(data) * 8)
    flipped = bytearray(data)
    flipped[index // 8] ^= 1 << (index % 8)
    return bytes(flipped)


def _paths(node: Json, prefix: Path = ()) -> list[Path]:
    """Every path into a JSON document, parents before children."""
    children: list[tuple[str | int, Json]] = []
    if isinstance(node, dict):
        children = list(node.items())
    elif isinstance(node, list):
        children = list(enumerate(node))
    found = [prefix] if prefix else []
    for key, child in children:
        found.extend(_paths(child, (*prefix, key)))
    return found


def _edit(document: Any, path: Path, replacement: Json, *, remove: bool) -> None:
    """Replace (or remove) the value at `path`; a path an earlier edit destroyed is skipped."""
    *parents, last = path
    container = document
    try:
        for key in parents:
            container = container[key]
        if remove and isinstance(container, dict):
            del container[last]
        else:
            container[last] = copy.deepcopy(replacement)  # sampled values are shared objects
    except (KeyError, IndexError, TypeError):
        pass
