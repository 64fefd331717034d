"""Schemathesis against our own OpenAPI descriptions, with every default check, on both listeners.

Each documented operation is one test: schemathesis sends the schema's examples, its coverage
cases (boundaries, missing and wrong-typed values, undeclared methods, malformed content
types) and fuzzed cases, positive and negative, to the real apps on loopback (see `served.py`),
with valid credentials (the probes of `ignored_auth` take them away again). Bounded for the
suite; longer on demand (fuzzed cases per operation, drawn afresh each run):

    HOSTILE_MAX_EXAMPLES=500 python3 -m uv run pytest tests/hostile/test_schemathesis.py -q \
        --timeout=0 -p no:cacheprovider

Every bug these runs found is fixed, with a regression test next to the code's own tests
(`test_admin_input.py` here, `tests/bots/test_openai_api.py`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any, TypeVar, cast

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.bots.e2e_support import TG_SECRET, WA_VERIFY
from tests.hostile.served import ADMIN_TOKEN, API_KEY, Served, serve_in_thread, sign

MAX_EXAMPLES = int(os.environ.get("HOSTILE_MAX_EXAMPLES", "0")) or None
"""Fuzzed cases per operation, on top of the examples and the coverage cases."""
SETTINGS = settings(
    max_examples=MAX_EXAMPLES or 10,
    deadline=None,
    database=None,
    derandomize=MAX_EXAMPLES is None,  # the suite's run is the same every time
    suppress_health_check=list(HealthCheck),  # timing-based, and the machine is shared
)


Case = schemathesis.Case[Any]
Test = TypeVar("Test", bound=Callable[..., None])


def operations_of(name: str) -> Callable[[Test], Test]:
    """`@schema.parametrize()` over the shipped document `name`: one test per operation."""
    document = json.loads(resources.files("bots").joinpath(name).read_text())
    schema = schemathesis.openapi.from_dict(document)
    return cast(Callable[[Test], Test], schema.parametrize())


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve_in_thread(tmp_path_factory.mktemp("hostile")) as running:
        yield running


@operations_of("openapi.json")
@SETTINGS
def test_public_listener(case: Case, served: Served) -> None:
    case.body = cast(Any, whole_numbers_as_integers(case.body))
    case.call_and_validate(base_url=served.public, **_credentials(case))


@operations_of("openapi_admin.json")
@SETTINGS
def test_admin_listener(case: Case, served: Served) -> None:
    case.call_and_validate(
        base_url=served.admin, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )


def whole_numbers_as_integers(value: object) -> object:
    """`value` with every float that holds a whole number spelled as an integer.

    JSON Schema's numbers are mathematical: `2.0` and `1e40` are integers to it, and
    schemathesis sends them where the schema says integer, or as integers out of range. Our
    parsers tell integers by their spelling: ids must be spelled as integers, and the 64-bit
    range applies to what is. Spelled so, what the schema calls an integer is one to the
    parser too. (Negative cases keep their meaning: a number stays a number.)
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [whole_numbers_as_integers(item) for item in value]
    if isinstance(value, dict):
        return {key: whole_numbers_as_integers(item) for key, item in value.items()}
    return value


def _credentials(case: Case) -> dict[str, Any]:
    """What a legitimate caller of this operation adds to the generated request."""
    match case.operation.label:
        case "POST /telegram/webhook":
            return {"headers": {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET}}
        case "GET /whatsapp/webhook":
            return {"params": {"hub.verify_token": WA_VERIFY}}
        case "POST /whatsapp/webhook":
            return _signed(case)
        case "POST /v1/chat/completions" | "GET /v1/models":
            return {"headers": {"Authorization": f"Bearer {API_KEY}"}}
        case _:
            return {}


def _signed(case: Case) -> dict[str, Any]:
    """The body as `requests` would send it, and Meta's signature of exactly those bytes."""
    sent = case.as_transport_kwargs()
    if "json" in sent:
        body = json.dumps(sent["json"], allow_nan=False).encode()
    elif isinstance(sent.get("data"), bytes):
        body = sent["data"]
    else:
        return {}  # no body: nothing to sign, the request goes out unsigned
    return {"data": body, "headers": {"X-Hub-Signature-256": sign(body)}}
