"""The log scrape (T14) catches what it must: planted leaks in a real pytest run, and the rules
of the scanner one by one."""

from __future__ import annotations

import hashlib
import hmac
import importlib
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.leak_scan import Registry, Scanner, mask, store_lines
from tests.leak_sources import EXEMPT, IDS, SECRETS
from tests.log_capture import MARK, format_record
from tests.log_scrape import SCAN_ITEM

ROOT = Path(__file__).resolve().parents[1]
PLANTED_TOKEN = "planted-0f3a9c7e5b1d"
PLANTED_PHONE = "4915199988877"
INNER = textwrap.dedent(
    f"""
    import logging
    import logging.config
    import os
    import sqlite3
    import subprocess
    import sys

    from tests.log_scrape import register

    PHONE = "{PLANTED_PHONE}"

    class Collect(logging.Handler):
        def __init__(self):
            super().__init__()
            self.seen = []

        def emit(self, record):
            self.seen.append(record.getMessage())

    def test_leaks(tmp_path, monkeypatch):
        monkeypatch.setenv("PLANTED_TOKEN", "{PLANTED_TOKEN}")  # a secret-named variable
        register(PHONE, "the planted phone", raw_id=True)
        collect = Collect()
        logging.config.dictConfig(  # what `tierbot --log-level WARNING` does
            {{"version": 1, "disable_existing_loggers": False,
             "root": {{"handlers": [], "level": "WARNING"}}}}
        )
        logging.getLogger().addHandler(collect)
        token = os.environ["PLANTED_TOKEN"]
        logging.getLogger("bots.planted").debug("calling with token %s", token)
        assert collect.seen == []  # the handlers see what they always saw
        sys.stderr.write(f"tierbot: bad token {{token}}\\n")  # an error message, to stderr
        child = "import logging; logging.getLogger('bots.child').info('sender ' + PHONE)"
        child = f"PHONE = {{PHONE!r}}; {{child}}"
        subprocess.run([sys.executable, "-c", child], check=True)
        db = sqlite3.connect(tmp_path / "f.db")
        db.execute("CREATE TABLE turns (turn_id TEXT, user_hash TEXT)")
        db.execute("CREATE TABLE turn_texts (turn_id TEXT, message_text TEXT)")
        db.execute("INSERT INTO turns VALUES ('t1', ?)", (PHONE,))
        db.execute("INSERT INTO turn_texts VALUES ('t1', 'call me on ' || ?)", (PHONE,))
        db.commit()
        db.close()

    def test_clean():
        logging.getLogger("bots.planted").debug("nothing here chat=%s", "a3f5c2d1e0b9a8f7")
    """
)


def test_a_run_with_planted_leaks_fails_and_names_each_one_masked(tmp_path: Path) -> None:
    """A real pytest run with the plugin: a token (set as a variable by the test) in a DEBUG
    record below the configured level and in an error message on stderr, a phone number
    logged by a child process and stored in a hashed column. Each is reported, masked; the
    same number in the retained message text is not; the exit status is a failure."""
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
    )
    (tmp_path / "test_planted.py").write_text(INNER)
    scrape = tmp_path / "scrape"
    env = {k: v for k, v in os.environ.items() if k not in ("LOG_SCRAPE_DIR", "PYTHONPATH")}
    env |= {"PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.log_scrape", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env=env | {"PYTEST_ADDOPTS": f"--log-scrape-dir={scrape} -q"},
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert f"FAILED ::{SCAN_ITEM}" in out
    assert "1 failed, 2 passed" in out
    assert "4 sensitive values in logs or store cells" in out
    assert "test_planted.py::test_leaks [this process] $PLANTED_TOKEN ×2" in out
    assert "DEBUG bots.planted: calling with token " + mask(PLANTED_TOKEN) in out
    assert "STDERR Captured stderr call: tierbot: bad token " + mask(PLANTED_TOKEN) in out
    assert "test_planted.py::test_leaks [child pid " in out
    assert "INFO bots.child: sender " + mask(PLANTED_PHONE) in out
    assert "STORE turns.user_hash\t" + mask(PLANTED_PHONE) in out
    assert "message_text" not in out
    assert "test_clean" not in out
    assert PLANTED_TOKEN not in out
    assert PLANTED_PHONE not in out


def _scan(registry: Registry, *lines: str) -> list[tuple[str, str, str]]:
    text = "".join(f"{line}\n" for line in (f"{MARK}t::one", *lines))
    return [(f.test, f.label, f.excerpt) for f in Scanner(registry).scan_text(text, "test")]


def test_short_ids_count_only_where_a_line_names_them_as_ids() -> None:
    registry = Registry()
    registry.add_id(4242, "tg chat")
    harmless = ["port 42421 took 4242 ms", "entry=4242-0 seq=4242", "id 4242 of 9000"]
    assert _scan(registry, *harmless) == []
    named = ["turn refused chat=4242 reason=x", 'payload {"user_id": "4242"}', "'chat': 4242"]
    assert [label for _, label, _ in _scan(registry, *named)] == ["tg chat"] * 3


def test_long_values_count_anywhere_and_are_masked_in_the_report() -> None:
    registry = Registry()
    registry.add_secret("wa-app-secret-f00d", "app secret")
    registry.add_id("4915112345678", "phone")
    found = _scan(registry, "signature wa-app-secret-f00dX failed", "sent to +4915112345678.")
    assert found == [
        ("t::one", "app secret", f"signature {mask('wa-app-secret-f00d')}X failed"),
        ("t::one", "phone", f"sent to +{mask('4915112345678')}."),
    ]
    assert mask("wa-app-secret-f00d") == "wa-*************0d"


def test_an_unkeyed_hash_of_a_raw_id_is_caught_and_a_keyed_one_is_not() -> None:
    registry = Registry()
    registry.add_id("vip-7", "premium user")
    unkeyed = hashlib.sha256(b"vip-7").hexdigest()[:12]
    keyed = hmac.new(b"server key", b"vip-7", hashlib.sha256).hexdigest()[:16]
    found = _scan(registry, f"api answer user={unkeyed} tier=3", f"answer user={keyed}")
    assert [label for _, label, _ in found] == ["unkeyed sha256 of premium user"]


def test_shapes_are_caught_without_being_registered() -> None:
    lines = [
        "POST /bot123456789:AAFakeTokenForTests_0123456789abcdef/sendMessage",
        "headers {'Authorization': 'Bearer xyzSecret12345678'}",
        "GET /whatsapp/webhook?hub.mode=subscribe&hub.verify_token=letmein&hub.challenge=1",
        'update {"from": "4915112345678", "id": "wamid.1"}',
        'update {"message": {"chat": {"id": 99, "type": "private"}}}',
        "turn failed chat=c1 entry=1-0",
        "provider key sk-proj-abcdefgh rejected",
    ]
    assert [label for _, label, _ in _scan(Registry(), *lines)] == [
        "Telegram bot token",
        "Bearer credential",
        "WhatsApp verify token",
        "raw WhatsApp sender",
        "raw Telegram sender or chat",
        "id in a log line is not a hash",
        "sk- API key",
    ]
    hashed = ["turn refused chat=0123456789abcdef", "forgot user=h1_0a1b2c3d4e5f", "user=-"]
    assert _scan(Registry(), *hashed) == []


def test_exemptions_cover_only_lines_that_are_not_tierbots() -> None:
    registry = Registry()
    registry.add_secret("123456789:AAFakeTokenForTests_0123456789abcdef", "bot token")
    fake = '127.0.0.1 [22/Nov/2026:02:31:07 +0000] "POST /bot123456789:AAFakeTokenForTests_'
    fake += '0123456789abcdef/sendMessage HTTP/1.1" 200 187 "-" "Python/3.11 aiohttp/3.14.5"'
    ours = '127.0.0.1 "GET /whatsapp/webhook HTTP/1.1" 403 9 0.001s hub.verify_token=x'
    lines = [f"INFO aiohttp.access: {fake}", "DEBUG urllib3.connectionpool: " + fake]
    lines += [f"INFO aiohttp.access: {ours}", "INFO bots.x: " + fake]
    scanner = Scanner(registry, EXEMPT)
    found = list(scanner.scan_text("".join(f"{line}\n" for line in lines), "x"))
    assert [(f.label, f.excerpt.split(":")[0]) for f in found] == [
        ("WhatsApp verify token", "INFO aiohttp.access"),
        ("bot token", "INFO bots.x"),
    ]
    assert sorted(scanner.exempted.values()) == [1, 1]


def test_a_store_cell_that_is_a_short_raw_id_is_caught() -> None:
    registry = Registry()
    registry.add_id("777", "pipeline user")
    cells = list(store_lines("turns", "user_hash", ["777", "h1_7770", None]))
    assert [label for _, label, _ in _scan(registry, *(c.rstrip("\n") for c in cells))] == [
        "pipeline user"
    ]


def test_a_test_name_in_a_mark_is_not_a_leak_and_lines_belong_to_their_test() -> None:
    registry = Registry()
    registry.add_secret("tg-secret_0123456789", "webhook secret")
    text = f"{MARK}t::a[tg-secret_0123456789]\nok\n{MARK}t::b\nbad tg-secret_0123456789\n"
    found = list(Scanner(registry).scan_text(text, "x"))
    assert [(f.test, f.label) for f in found] == [("t::b", "webhook secret")]


def test_a_record_is_one_line_with_the_messages_of_its_exception_chain() -> None:
    try:
        try:
            raise KeyError("inner key sk-chained-cause")
        except KeyError as exc:
            raise ExceptionGroup("many", [ValueError("first\nsecond")]) from exc
    except ExceptionGroup as group:
        record = logging.LogRecord("bots.x", logging.ERROR, "f", 1, "failed %s", ("a",), None)
        record.exc_info = (type(group), group, group.__traceback__)
    line = format_record(record)
    assert line.count("\n") == 1
    assert line.startswith("ERROR bots.x: failed a | ")
    assert "ValueError: first\\nsecond" in line
    assert "KeyError: 'inner key sk-chained-cause'" in line


def test_this_run_captures_debug_without_changing_what_handlers_get(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("bots.log_scrape_probe")
    with caplog.at_level(logging.WARNING):
        assert logger.isEnabledFor(logging.DEBUG)  # records are made, for the scrape
        assert logger.getEffectiveLevel() == logging.WARNING
        logger.debug("below the level")
        logger.warning("at the level")
    assert [r.getMessage() for r in caplog.records] == ["at the level"]


def test_every_listed_constant_still_exists() -> None:
    missing = [
        f"{module}.{name}"
        for table in (SECRETS, IDS)
        for module, names in table.items()
        for name in names
        if not hasattr(importlib.import_module(module), name)
    ]
    assert missing == []
