"""pytest plugin for target T14: after the run, no raw user id, phone number, token or secret in
any log line (DEBUG included) or in a feedback store outside the retained message text.

How it works (`tests/conftest.py` loads it):

* **Capture.** At start-up every logger of this process, and of every Python child the tests
  start, writes every record at every level to `tests/artifacts/log-scrape/run-<pid>/` (see
  `tests/log_capture.py`): `debug-log.txt` for this process, `children/<pid>.log` for each
  child, each record under a mark naming the test that produced it. The stderr pytest
  captured for each test goes to `debug-log.txt` too.
* **Store cells.** After each test, every SQLite file in its `tmp_path` and (through
  `tests/feedback/conftest.py`) every PostgreSQL schema it used is dumped to `store-cells.txt`,
  all columns except the retained texts (`turn_texts.message_text`, `answer_text`).
* **Registry** (`tests/leak_sources.py`). The values the tests hand out: listed constants, the
  secret-named variables (`*_TOKEN`, `*_SECRET`, `*_KEY`, ...) and `*_USERS` lists each test
  set, anything given to `register()`; plus the shapes in `tests/leak_scan.py`.
* **Scan.** A last test, `log-scrape::T14`, scans all of it and fails with the offending lines,
  values masked. Records logged after it (session fixtures' teardown) are scanned at the end
  of the session and fail the run's exit status.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest

from tests.leak_scan import Finding, Scanner, store_lines
from tests.leak_sources import EXEMPT, KNOWN, build_registry, note_environment, register
from tests.log_capture import CHILDREN, SCRAPE_DIR_ENV, Sink, install, uninstall

HERE = Path(__file__).resolve().parent
DEFAULT_DIR = HERE / "artifacts" / "log-scrape"
SITE_DIR = HERE / "log_scrape_site"
LOG, CELLS = "debug-log.txt", "store-cells.txt"
RETAINED_TEXT = {("turn_texts", "message_text"), ("turn_texts", "answer_text")}
"""The only store columns that may hold what the user wrote (inside the retention window)."""
SCAN_ITEM = "log-scrape-T14"


@dataclass(slots=True)
class _State:
    directory: Path
    log: Sink
    cells: Sink
    environ: dict[str, str | None]
    ambient: dict[str, str]
    from_env: dict[str, tuple[str, bool]] = field(default_factory=dict)
    tests: set[str] = field(default_factory=set)
    scanned_bytes: int = 0
    known: int = 0
    summary: str = ""
    late: list[Finding] = field(default_factory=list)


_state: _State | None = None


def record_store(source: str, table: str, column: str, values: list[object]) -> None:
    """Dump one store column's values for the scan (the retained texts are skipped)."""
    if _state is not None and (table, column) not in RETAINED_TEXT:
        for line in store_lines(table, column, values):
            _state.cells.write_line(f"{line.rstrip()}\t[{source}]\n")


def record_sqlite(path: Path) -> None:
    """Dump every table of one SQLite file."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            columns = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
            for column in columns:
                values = [r[0] for r in conn.execute(f'SELECT "{column}" FROM "{table}"')]
                record_store(path.name, table, column, values)
    conn.close()


async def record_postgres(conn: asyncpg.Connection, schema: str) -> None:
    """Dump every table of one PostgreSQL schema."""
    rows = await conn.fetch(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = $1 ORDER BY table_name, ordinal_position",
        schema,
    )
    for row in rows:
        table, column = str(row["table_name"]), str(row["column_name"])
        if (table, column) in RETAINED_TEXT:
            continue
        cells = await conn.fetch(f'SELECT "{column}"::text AS v FROM "{schema}"."{table}"')
        record_store(f"postgres {schema}", table, column, [cell["v"] for cell in cells])


def _sqlite_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.stat().st_size >= 100:
            with path.open("rb") as head:
                if head.read(16) == b"SQLite format 3\x00":
                    yield path


@pytest.fixture(autouse=True)
def _scan_stores_in_tmp_path(request: pytest.FixtureRequest) -> Iterator[None]:
    """After the test (its stores closed), dump the SQLite files it left in its tmp_path."""
    yield
    tmp_path = request.node.funcargs.get("tmp_path")
    if isinstance(tmp_path, Path) and tmp_path.is_dir() and _state is not None:
        for path in _sqlite_files(tmp_path):
            try:
                record_sqlite(path)
            except sqlite3.Error as exc:  # not a store, or left mid-write: say so, go on
                _state.cells.write_line(f"unreadable {path.name}: {exc}\n")


# --- the run ---------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--log-scrape-dir",
        default=None,
        help="where the log scrape keeps the captured logs and store cells (T14); default "
        "tests/artifacts/log-scrape/run-<pid>, kept until a later run starts",
    )


def _run_directory(config: pytest.Config) -> Path:
    """The option's directory, emptied; else this run's own under DEFAULT_DIR, after removing
    those of runs that have ended (several runs may share the tree)."""
    if chosen := config.getoption("--log-scrape-dir"):
        shutil.rmtree(chosen, ignore_errors=True)
        return Path(chosen)
    for old in DEFAULT_DIR.glob("run-*"):
        if not _alive(int(old.name.removeprefix("run-") or 0)):
            shutil.rmtree(old, ignore_errors=True)
    return DEFAULT_DIR / f"run-{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    global _state
    directory = _run_directory(config)
    (directory / CHILDREN).mkdir(parents=True)
    log = Sink((directory / LOG).open("w", encoding="utf-8", buffering=1 << 20))
    cells = Sink((directory / CELLS).open("w", encoding="utf-8", buffering=1 << 16))
    changed = {SCRAPE_DIR_ENV: str(directory), "PYTHONPATH": _with_site(os.environ)}
    _state = _State(
        directory=directory,
        log=log,
        cells=cells,
        environ={name: os.environ.get(name) for name in changed},
        ambient=dict(os.environ),
    )
    os.environ.update(changed)
    log.mark("(start-up and collection)")
    install(log)


def _with_site(environ: os._Environ[str]) -> str:
    current = environ.get("PYTHONPATH", "")
    return os.pathsep.join([str(SITE_DIR), *([current] if current else [])])


def pytest_unconfigure(config: pytest.Config) -> None:
    global _state
    if _state is None:
        return
    uninstall()
    _state.log.close()
    _state.cells.close()
    for name, value in _state.environ.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _state = None


def pytest_runtest_logstart(nodeid: str) -> None:
    if _state is not None:
        _state.tests.add(nodeid)
        _state.log.mark(nodeid)
        _state.cells.mark(nodeid)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """What the test's code wrote to stderr (a CLI's error message, a child's inherited
    stderr) is scanned as well: the last report of a test carries all of it."""
    if _state is not None and report.when == "teardown":
        for title, content in report.sections:
            if "stderr" in title:
                for line in content.splitlines():
                    _state.log.write_line(f"STDERR {title}: {line}\n")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    if _state is not None:  # before the fixtures' teardown undoes the test's variables
        note_environment(_state.ambient, _state.from_env)
    return (yield)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, items: list[pytest.Item]) -> None:
    if _state is not None and items:
        items.append(ScrapeItem.from_parent(session, name=SCAN_ITEM))


class LeaksFound(Exception):
    """The scan's failure: the report."""


class ScrapeItem(pytest.Item):
    """The last test of the run: scans everything captured so far."""

    def runtest(self) -> None:
        assert _state is not None
        findings = scan(_state)
        known = [f for f in findings if any(k.matches(f) for k in KNOWN)]
        _state.known = len(known)
        fresh = [f for f in findings if f not in known]
        stale = [
            k
            for k in KNOWN
            if any(t.startswith(k.tests) for t in _state.tests)
            and not any(k.matches(f) for f in known)
        ]
        (_state.directory / "leaks.txt").write_text(
            report(fresh, limit=None) + "\n\nknown:\n" + report(known, limit=None),
            encoding="utf-8",
        )
        if fresh or stale:
            gone = [f"- known leak no longer seen ({k.owner}): remove it from KNOWN" for k in stale]
            raise LeaksFound("\n".join([report(fresh)] * bool(fresh) + gone))

    def repr_failure(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: object = None
    ) -> str:
        if isinstance(excinfo.value, LeaksFound):
            return str(excinfo.value)
        return str(excinfo.getrepr(style="short"))

    def reportinfo(self) -> tuple[Path, int, str]:
        return HERE / "log_scrape.py", 0, "log scrape (T14): no raw ids or secrets logged or stored"


def scan(state: _State, *, log_from: int = 0) -> list[Finding]:
    """Scan the captured logs (this process's from byte `log_from`) and the store cells."""
    state.log.flush()
    state.cells.flush()
    registry = build_registry(state.from_env)
    scanner = Scanner(registry, EXEMPT)
    log = state.directory / LOG
    with log.open("rb") as stream:
        stream.seek(log_from)
        text = stream.read().decode("utf-8", errors="replace")
    findings = list(scanner.scan_text(text, "this process"))
    state.scanned_bytes = log.stat().st_size
    if log_from:
        return findings
    children = sorted((state.directory / CHILDREN).glob("*.log"))
    for path in children:
        findings += scanner.scan_file(path, f"child pid {path.stem}")
    findings += scanner.scan_file(state.directory / CELLS, "feedback store")
    exempted = ", ".join(f"{n} in {why.split(' (')[0]}" for why, n in scanner.exempted.items())
    state.summary = (
        f"log scrape (T14): {scanner.lines} log lines and store cells scanned "
        f"({len(children)} child processes), {len(registry)} sensitive values registered, "
        f"{len(findings)} leaks; exempted: {exempted or 'none'}; files in {state.directory}"
    )
    return findings


def report(findings: list[Finding], limit: int | None = 40) -> str:
    """One block per (test, label) with its first three lines; values masked."""
    groups: dict[tuple[str, str, str], list[Finding]] = {}
    for finding in findings:
        groups.setdefault((finding.test, finding.source, finding.label), []).append(finding)
    lines = [f"{len(findings)} sensitive values in logs or store cells ({len(groups)} groups):"]
    for (test, source, label), group in list(groups.items())[:limit]:
        lines.append(f"- {test} [{source}] {label} ×{len(group)}")
        lines += [f"    {excerpt}" for excerpt in list(dict.fromkeys(f.excerpt for f in group))[:3]]
    if limit is not None and len(groups) > limit:
        lines.append(f"… and {len(groups) - limit} more groups, all in leaks.txt")
    return "\n".join(lines)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Records logged after the scan test (session teardown) get scanned too."""
    if _state is None or not _state.summary:
        return
    _state.late = scan(_state, log_from=_state.scanned_bytes)
    if _state.late and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _state is None or not _state.summary:
        return
    terminalreporter.write_line(_state.summary)
    for known in KNOWN if _state.known else ():
        terminalreporter.write_line(
            f"known leak, to fix in {known.owner}: {known.why}", yellow=True
        )
    if _state.late:
        terminalreporter.write_line("after the scan test: " + report(_state.late), red=True)


__all__ = ["record_postgres", "register"]
