"""Our OpenAPI descriptions: valid documents, shipped in the package, naming exactly the routes
the apps register; the public one served at `/openapi.json`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from aiohttp import web
from jsonschema import Draft202012Validator
from pytest_aiohttp import AiohttpClient

from bots.serve_cli import build_serving
from routing.policy import build_policy
from routing.router import Router
from routing.settings import load_routing_settings
from routing.signals.complexity import load_complexity_model
from tests.bots.admin_support import TOKEN, admin_app
from tests.bots.conftest import build_app
from tests.bots.e2e_support import (
    TG_SECRET,
    WA_PHONE,
    WA_SECRET,
    WA_TOKEN,
    WA_VERIFY,
    serve_args,
)
from tests.bots.pipeline_kit import BOT_TOKEN
from tests.bots.redis_fixtures import REDIS_URL
from tests.hostile.served import build_web_app

PUBLIC = "openapi.json"
ADMIN = "openapi_admin.json"
METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def document(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(resources.files("bots").joinpath(name).read_text())
    return loaded


def documented(name: str) -> set[tuple[str, str]]:
    """(METHOD, path) of every operation; HEAD wherever GET, as aiohttp serves it."""
    found = set()
    for path, item in document(name)["paths"].items():
        for method in METHODS.intersection(item):
            found.add((method.upper(), path))
            if method == "get":
                found.add(("HEAD", path))
    return found


def registered(app: web.Application) -> set[tuple[str, str]]:
    """(METHOD, path) of every route of `app` and its sub-apps."""
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
    }


def refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


@pytest.mark.parametrize("name", [PUBLIC, ADMIN])
def test_the_document_is_valid_openapi_3_1(name: str) -> None:
    raw = document(name)
    schemathesis.openapi.from_dict(raw).validate()  # against the OpenAPI 3.1 meta-schema

    assert raw["openapi"] == "3.1.0"
    for schema in raw["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    for ref in refs(raw):
        kind, name_ = ref.removeprefix("#/components/").split("/")
        assert name_ in raw["components"][kind], ref


@pytest.mark.parametrize("name", [PUBLIC, ADMIN])
def test_every_declared_component_is_used(name: str) -> None:
    raw = document(name)
    used = set(refs(raw["paths"]))
    used |= {ref for schema in raw["components"]["schemas"].values() for ref in refs(schema)}
    used |= {ref for item in raw["components"]["responses"].values() for ref in refs(item)}
    schemes = {
        scheme
        for item in raw["paths"].values()
        for operation in item.values()
        for requirement in operation.get("security", [])
        for scheme in requirement
    }

    for kind in ("schemas", "responses"):
        for component in raw["components"][kind]:
            assert f"#/components/{kind}/{component}" in used, component
    assert schemes == set(raw["components"]["securitySchemes"])


def test_the_public_app_registers_exactly_the_public_document(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {
        "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
        "TELEGRAM_WEBHOOK_SECRET": TG_SECRET,
        "WHATSAPP_ACCESS_TOKEN": WA_TOKEN,
        "WHATSAPP_APP_SECRET": WA_SECRET,
        "WHATSAPP_VERIFY_TOKEN": WA_VERIFY,
        "WHATSAPP_PHONE_NUMBER_ID": WA_PHONE,
        "REDIS_URL": REDIS_URL,
        "TIERBOT_ADMIN_TOKEN": TOKEN,
    }.items():
        monkeypatch.setenv(name, value)

    assert registered(build_web_app()) == documented(PUBLIC)


def test_the_admin_app_registers_exactly_the_admin_document(tmp_path: Path) -> None:
    assert registered(admin_app(tmp_path)) == documented(ADMIN)


def test_a_worker_serves_the_admin_document_on_its_health_listener(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    monkeypatch.setenv("TIERBOT_ADMIN_TOKEN", TOKEN)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'feedback.sqlite3'}")
    policy = build_policy(load_routing_settings())
    router = Router(policy=policy, complexity=load_complexity_model())
    serving = build_serving(serve_args("--role", "worker"), policy=policy, router=router)

    assert registered(serving.app) == documented(ADMIN)


async def test_the_public_document_is_served_as_shipped(aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(build_app(offline=True))

    async with client.get("/openapi.json") as response:
        body = await response.read()
        assert response.status == 200
        assert response.content_type == "application/json"
    assert body == resources.files("bots").joinpath(PUBLIC).read_bytes()
    assert not any(path.startswith(("/admin", "/metrics")) for path in json.loads(body)["paths"])


async def test_an_undeclared_method_under_v1_is_405_with_allow(
    aiohttp_client: AiohttpClient,
) -> None:
    client = await aiohttp_client(build_app(offline=True))

    async with client.delete("/v1/models") as response:
        body = await response.json()
        assert response.status == 405
        assert response.headers["Allow"] == "GET,HEAD"
    assert body["error"]["code"] == "method_not_allowed"
