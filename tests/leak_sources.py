"""Where the log scrape (T14) learns the sensitive values of a test run (the constants the
tests define, the variables they set, what fixtures `register()`), and what it forgives: lines
that are not tierbot's (`EXEMPT`) and leaks awaiting a fix in another change (`KNOWN`).

A listed module that this run never imported cannot have handed its values to anything, so
it is skipped; a listed name that is gone from a module is an error, so the lists cannot rot
silently when a constant is renamed.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from tests.leak_scan import Exemption, Finding, Registry

SECRET_NAME = re.compile(r"(?:TOKEN|SECRET|_KEY|_KEYS|PASSWORD)$")
"""Variables whose values are credentials (comma lists split): `TELEGRAM_BOT_TOKEN`,
`TIERBOT_API_KEYS`, `OPENAI_API_KEY`, `TIERBOT_ID_HASH_KEY`, ..."""
ID_LIST_NAME = re.compile(r"_USERS$")
"""Variables that list raw user ids (`TIERBOT_PREMIUM_USERS`)."""
SECRETS: dict[str, tuple[str, ...]] = {
    "tests.bots.webhook_support": (
        "BOT_TOKEN",
        "TG_SECRET",
        "ACCESS_TOKEN",
        "APP_SECRET",
        "VERIFY_TOKEN",
    ),
    "tests.bots.e2e_support": ("TG_SECRET", "WA_TOKEN", "WA_SECRET", "WA_VERIFY"),
    "tests.bots.pipeline_kit": ("BOT_TOKEN", "ID_KEY"),
    "tests.bots.admin_support": ("TOKEN",),
    "tests.bots.conftest": ("LLM_KEY", "API_KEYS"),
    "tests.feedback.conftest": ("TEST_KEY",),
    "tests.routing.providers.support": ("API_KEY",),
    "tests.bots.test_whatsapp_ingest": ("SECRET",),
    "tests.bots.test_chat_cli": ("KEY",),
    "tests.routing.test_executor": ("KEY",),
    "tests.bots.test_webhook_cli": ("TOKEN", "SECRET"),
    "tests.bots.test_telegram_delivery": ("TOKEN",),
    "tests.bots.test_whatsapp_delivery": ("ACCESS_TOKEN",),
    "tests.bots.test_fakes_platforms": ("TOKEN", "ACCESS_TOKEN"),
}
"""Tokens, keys and secrets the tests define, by module."""
IDS: dict[str, tuple[str, ...]] = {
    "tests.bots.webhook_support": ("WA_ID", "BSUID"),
    "tests.bots.e2e_support": ("TG_CHAT", "WA_USER"),
    "tests.bots.pipeline_kit": ("CHAT", "USER"),
    "tests.bots.pipeline_support": ("CHAT",),
    "tests.feedback.records": ("RAW_USER", "RAW_CHAT"),
    "tests.routing.test_injection": ("PLAIN_USER", "PREMIUM_USERS"),
    "tests.bots.test_whatsapp_ingest": ("WA_ID", "BSUID"),
    "tests.bots.test_whatsapp_delivery": ("USER",),
    "tests.bots.test_fakes_platforms": ("CHAT", "WA_ID"),
}
"""Raw user ids, chat ids and phone numbers the tests define, by module."""

Value = str | bytes | int
_registered: list[tuple[Value, str, bool]] = []


def register(value: Value, label: str, *, raw_id: bool = False) -> None:
    """Add a value that must not leak: a secret, or with `raw_id` a user/chat id or number.
    For values a fixture or fake makes up at run time; constants belong in the lists above."""
    _registered.append((value, label, raw_id))


def build_registry(from_env: Mapping[str, tuple[str, bool]]) -> Registry:
    """Everything known so far: the listed constants, `register()`, and `from_env`
    (value → (label, raw_id), as `note_environment` collects it)."""
    registry = Registry()
    for table, raw_id in ((SECRETS, False), (IDS, True)):
        for module_name, names in table.items():
            module = sys.modules.get(module_name)
            if module is None:
                continue  # this run never imported it, so never used its values
            for name in names:
                if not hasattr(module, name):
                    raise LookupError(f"{module_name}.{name} is gone: update {__name__}")
                for value in _values(getattr(module, name)):
                    _add(registry, value, f"{module_name}.{name}", raw_id=raw_id)
    for value, label, raw_id in _registered:
        _add(registry, value, label, raw_id=raw_id)
    for text, (label, raw_id) in from_env.items():
        _add(registry, text, label, raw_id=raw_id)
    return registry


def note_environment(ambient: Mapping[str, str], found: dict[str, tuple[str, bool]]) -> None:
    """Add to `found` the secret-named and user-list variables a test set. Values the shell
    already had (`ambient`) are left alone: the scrape never reads the machine's own."""
    for name, value in os.environ.items():
        if ambient.get(name) == value:
            continue
        if SECRET_NAME.search(name) or ID_LIST_NAME.search(name):
            raw_id = ID_LIST_NAME.search(name) is not None
            for part in value.split(","):
                if part.strip():
                    found.setdefault(part.strip(), (f"${name}", raw_id))
        elif name.endswith("_URL") and (password := _password(value)):
            found.setdefault(password, (f"password in ${name}", False))


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def _values(value: object) -> Iterator[Value]:
    if isinstance(value, str | bytes | int) and not isinstance(value, bool):
        yield value
    elif isinstance(value, tuple | list | frozenset | set):
        for item in value:
            yield from _values(item)


def _add(registry: Registry, value: Value, label: str, *, raw_id: bool) -> None:
    if raw_id:
        registry.add_id(value.decode() if isinstance(value, bytes) else value, label)
    else:
        registry.add_secret(value if isinstance(value, str | bytes) else str(value), label)


EXEMPT: tuple[Exemption, ...] = (
    (
        "aiohttp's default access log line: servers the tests build themselves (the fakes, "
        "whose Bot API URLs carry the token by design, and bare apps around our routes); "
        "tierbot's apps log through bots/access_log.py, and those lines are scanned",
        re.compile(r"^INFO aiohttp\.access: \S+ \[\d\d/\w{3}/\d{4}:"),
    ),
    (
        "urllib3, the HTTP client of schemathesis (tests/hostile): tierbot does not use it",
        re.compile(r"^[A-Z]+ urllib3\."),
    ),
)
"""Lines that are not tierbot's logs, though they run in the test process."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Known:
    """A leak found in a file another change owns: reported on every run, not failed, until
    the fix lands; then the scan fails until the entry is removed (as `xfail_strict`)."""

    tests: str
    """Node id prefix of the tests that show it."""
    label: str
    """Start of the findings' label."""
    owner: str
    why: str

    def matches(self, finding: Finding) -> bool:
        return finding.test.startswith(self.tests) and finding.label.startswith(self.label)


KNOWN: tuple[Known, ...] = ()
