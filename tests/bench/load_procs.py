"""Process plumbing of the load benchmark: free ports, memory from /proc, and each child's
output read to its end and tallied by log level (with a few samples, and optionally a file)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

_LEVEL = re.compile(r" (DEBUG|INFO|WARNING|ERROR|CRITICAL) |\d\d:\d\d:\d\d\.\d+ (#) ")
"""A Python log line's level, or redis-server's `#` (its warning mark)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of process `pid` in KiB, from /proc/PID/status; (0, 0) once it is gone."""
    values = {"VmRSS": 0, "VmHWM": 0}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in values:
                values[name] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


@dataclass(slots=True)
class Proc:
    """One process of the system, its stderr tallied by log level as it runs."""

    name: str
    process: asyncio.subprocess.Process
    port: int = 0
    levels: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[str]] = field(default_factory=dict)
    """The first few distinct lines per level (WARNING and up), timestamps cut; a traceback is
    kept as its last line, the exception."""
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=30))
    quiet_until: str | None = None
    """Lines are not tallied until one contains this (redis-server's start-up banner)."""
    log: TextIO | None = None
    """Where every line goes as well, when the run keeps logs."""
    _in_traceback: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def take(self, line: str) -> None:
        """Tally one line of the process's output."""
        self.tail.append(line)
        if self.log is not None:
            self.log.write(line + "\n")
        if self.quiet_until is not None:
            if self.quiet_until in line:
                self.quiet_until = None
            return
        if self._in_traceback and line and not line[0].isspace():
            self._in_traceback = False
            self._keep("TRACEBACK", line)
            return
        found = _LEVEL.search(line)
        if found is None:
            if line.startswith("Traceback"):
                self._in_traceback = True
            return
        level = "WARNING" if found.group(2) else found.group(1)
        self.levels[level] += 1
        if level in ("WARNING", "ERROR", "CRITICAL"):
            self._keep(level, line[found.end() :])

    def _keep(self, level: str, text: str) -> None:
        if level == "TRACEBACK":
            self.levels[level] += 1
        kept = self.samples.setdefault(level, [])
        text = re.sub(r"\b[0-9a-f]{16}\b|\b\d{13}-\d+\b", "…", text.strip())[:300]
        if len(kept) < 5 and text not in kept:
            kept.append(text)


async def drain(proc: Proc, stream: asyncio.StreamReader | None) -> None:
    """Read a child's stream to its end (a full pipe would stall the child)."""
    if stream is None:
        return
    while line := (await stream.readline()).decode(errors="replace"):
        proc.take(line.rstrip("\n"))
