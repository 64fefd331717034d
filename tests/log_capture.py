"""Every log record of a test process at DEBUG, written to a file, without changing what the
process's own handlers see: the capture half of the log scrape (`tests/log_scrape.py`).

The capture is a logger class, not a handler. `tierbot`'s `main()` replaces the root handlers
with `dictConfig`, and `caplog` and the tests raise and lower levels; a handler would be
dropped, or would see only what the level of the moment lets through. `ScrapeLogger` instead
reports every level as enabled, writes each record to the sink, and passes it on to the
handlers only when the logger's configured level admits it, so handlers, `caplog` and the
captured stderr see exactly what they would without it. The effect is that of running every
process at DEBUG, as an operator chasing a bug would.

Standard library only: child processes (`tierbot serve`, the queue and breaker workers) load
this module from `tests/log_scrape_site/sitecustomize.py` before their first import, and a
child must not start by importing pytest. Each child writes its own file, one line per
record, flushed per line so a SIGKILLed worker keeps what it logged.
"""

from __future__ import annotations

import logging
import os
import threading
import traceback
from pathlib import Path
from typing import TextIO

SCRAPE_DIR_ENV = "LOG_SCRAPE_DIR"
"""Set for the children of a scraped test run: the directory their logs go to. Not `TIERBOT_`:
the tests strip those from a child's environment."""
CHILDREN = "children"
"""Sub-directory of the scrape directory for the child processes' logs, one file per pid."""
MARK = "=== "
"""Starts a line that names the test the following lines belong to."""


class Sink:
    """A thread-safe line writer: one line per record, test marks in between."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self.records = 0

    def mark(self, test: str) -> None:
        """From here on, lines belong to `test`."""
        with self._lock:
            self._stream.write(f"{MARK}{test}\n")

    def write(self, record: logging.LogRecord) -> None:
        """Append one record as one line."""
        line = format_record(record)
        with self._lock:
            self._stream.write(line)
            self.records += 1

    def write_line(self, line: str) -> None:
        """Append one line that is not a record (a store cell)."""
        with self._lock:
            self._stream.write(line)

    def flush(self) -> None:
        with self._lock:
            self._stream.flush()

    def close(self) -> None:
        with self._lock:
            self._stream.close()


_sink: Sink | None = None


def format_record(record: logging.LogRecord) -> str:
    """`LEVEL logger: message | exception text`, newlines escaped, so one record is one line.

    The exception part is the type and message of every exception in the chain (causes,
    contexts, groups), not the source lines: what a leak would carry is in the messages."""
    try:
        message = record.getMessage()
    except Exception as exc:  # a broken %-format is the handler's problem, not ours
        message = f"{record.msg!r} % {record.args!r} (unformattable: {type(exc).__name__})"
    parts = [f"{record.levelname} {record.name}: {message}"]
    if record.exc_info and record.exc_info[1] is not None:
        parts.extend(_exception_lines(record.exc_info[1]))
    elif record.exc_text:
        parts.append(record.exc_text)
    return " | ".join(parts).replace("\r", "\\r").replace("\n", "\\n") + "\n"


def _exception_lines(exc: BaseException) -> list[str]:
    lines: list[str] = []
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        lines.extend(traceback.format_exception_only(type(current), current))
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return [line.strip() for line in lines]


class _ScrapeMixin(logging.Logger):
    """Every level is enabled; handlers still get only what the configured level admits."""

    def isEnabledFor(self, level: int) -> bool:
        return not self.disabled and level > self.manager.disable

    def callHandlers(self, record: logging.LogRecord) -> None:
        if _sink is not None:
            _sink.write(record)
        if record.levelno >= self.getEffectiveLevel():
            super().callHandlers(record)


class ScrapeLogger(_ScrapeMixin, logging.Logger):
    """The logger class of a scraped process."""


_classes: dict[type[logging.Logger], type[logging.Logger]] = {}


def _scrape_class(cls: type[logging.Logger]) -> type[logging.Logger]:
    if issubclass(cls, _ScrapeMixin):
        return cls
    if cls is logging.Logger:
        return ScrapeLogger
    if cls not in _classes:
        _classes[cls] = type(f"Scrape{cls.__name__}", (_ScrapeMixin, cls), {})
    return _classes[cls]


def install(sink: Sink) -> None:
    """Capture every record of this process into `sink`, from now on and for every logger,
    those that exist (the root, aiohttp's, asyncio's) and those created later."""
    global _sink
    _sink = sink
    logging.setLoggerClass(ScrapeLogger)
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        if isinstance(logger, logging.Logger):  # not a PlaceHolder
            logger.__class__ = _scrape_class(type(logger))


def uninstall() -> Sink | None:
    """Stop capturing; loggers keep the scrape class but behave as plain ones again."""
    global _sink
    sink, _sink = _sink, None
    logging.setLoggerClass(logging.Logger)
    return sink


def install_in_child(directory: str) -> None:
    """The sitecustomize entry point: capture this child's records into `<dir>/children/`,
    after a mark naming the test that started it (pytest's `PYTEST_CURRENT_TEST`)."""
    children = Path(directory) / CHILDREN
    children.mkdir(parents=True, exist_ok=True)
    stream = (children / f"{os.getpid()}.log").open("a", encoding="utf-8", buffering=1)
    sink = Sink(stream)
    test = os.environ.get("PYTEST_CURRENT_TEST", "(unknown test)").rsplit(" (", 1)[0]
    sink.mark(test)
    install(sink)
