"""Processes of the chaos runs: a durable private redis-server (AOF), and worker processes
forked by the pre-imported launcher (`tests.chaos.zygote`), which the tests SIGKILL at will."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest

from tests.bots.redis_fixtures import REDIS_SERVER, ROOT, PrivateRedis

PYCACHE = Path(tempfile.gettempdir()) / "tierbot-chaos-pycache"
"""Where the launchers keep compiled modules. This machine sets PYTHONDONTWRITEBYTECODE, so a
Python process compiles every module it imports (~15 s of CPU for `tierbot`'s); the launchers
cache theirs outside the source tree (`PYTHONPYCACHEPREFIX`) and start in ~3 s from the
second run on."""
REDO = "answering again after an unfinished attempt"
"""What `ChatTurns` logs (WARNING) before it answers a message whose earlier attempt may have
gone out: every duplicate answer must come with one."""
LOCK_LOST = "chat lock lost while answering"
Launch = Callable[[str], tuple[str, list[str], dict[str, str]]]
"""A worker's name → the module to run, its argv and its environment."""
ZYGOTE_START_S = 60.0
"""Bound on the launcher's imports (~10 s here, more while other suites load the machine)."""


class DurableRedis(PrivateRedis):
    """A private redis-server with the append-only file on and `appendfsync always`, so a
    SIGKILL and a restart on the same port bring back the stream, its consumer group and every
    key acknowledged before the kill (reliability §1.3: a process crash, not a host crash)."""

    async def start(self) -> None:
        """Start the server (again) and wait until it has loaded its data and answers."""
        self.process = await asyncio.create_subprocess_exec(
            *(REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "yes", "--appendfsync", "always"),
            *("--dir", str(self.directory)),
            stdout=asyncio.subprocess.DEVNULL,
        )
        async with asyncio.timeout(10):
            while await self._ping() != b"+PONG\r\n":  # noqa: ASYNC110 (refused, or -LOADING)
                await asyncio.sleep(0.02)

    async def _ping(self) -> bytes:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return b""
        try:
            writer.write(b"PING\r\n")
            return await reader.readline()
        except OSError:
            return b""
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class Zygote:
    """The launcher process; its requests are blocking pipe calls, run in a thread."""

    def __init__(self, preload: Sequence[str]) -> None:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.chaos.zygote", *preload],
            cwd=ROOT,
            env=env | {"PYTHONPYCACHEPREFIX": str(PYCACHE)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._lock = threading.Lock()
        self._ready = False

    def _call(self, command: dict[str, object]) -> dict[str, object]:
        process = self._process
        assert process.stdin is not None
        assert process.stdout is not None
        with self._lock:
            if not self._ready:
                first = process.stdout.readline().strip()
                if first != '"ready"':
                    pytest.fail(f"the worker launcher did not start: {first!r}")
                self._ready = True
            process.stdin.write(json.dumps(command) + "\n")
            process.stdin.flush()
            reply = process.stdout.readline()
        if not reply:
            pytest.fail("the worker launcher died")
        return cast(dict[str, object], json.loads(reply))

    async def warm(self) -> None:
        """Wait until the launcher has imported everything."""
        async with asyncio.timeout(ZYGOTE_START_S):
            await asyncio.to_thread(self._call, {"ping": 1})

    async def spawn(self, module: str, argv: list[str], env: dict[str, str], log: Path) -> Proc:
        """Fork a process running `module.main(argv)` with exactly `env`, logging to `log`."""
        request = {"module": module, "argv": argv, "env": env, "log": str(log)}
        async with asyncio.timeout(ZYGOTE_START_S):
            reply = await asyncio.to_thread(self._call, {"spawn": request})
        return Proc(zygote=self, pid=cast(int, reply["pid"]), log=log)

    async def kill(self, pid: int, signum: int = signal.SIGKILL) -> int | None:
        """Signal `pid` and reap it; its wait status (None if it was gone already)."""
        reply = await asyncio.to_thread(self._call, {"kill": pid, "signal": int(signum)})
        return cast(int | None, reply["status"])

    async def poll(self, pid: int) -> int | None:
        """The wait status if `pid` has exited, else None."""
        reply = await asyncio.to_thread(self._call, {"poll": pid})
        return cast(int | None, reply["status"])

    def close(self) -> None:
        """End the launcher; it SIGKILLs whatever it still runs."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()


@dataclass(slots=True)
class Proc:
    """One forked process and its log file."""

    zygote: Zygote
    pid: int
    log: Path
    killed: bool = False

    def text(self) -> str:
        """Everything the process has written so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def said(self, needle: str) -> bool:
        return needle in self.text()

    async def until_said(self, needle: str, timeout_s: float = 15.0) -> None:
        """Wait until the log holds `needle`; fail with the log if the process exits first."""
        async with asyncio.timeout(timeout_s):
            while not self.said(needle):
                status = await self.zygote.poll(self.pid)
                if status is not None:
                    pytest.fail(f"process {self.pid} exited ({status}):\n{self.text()[-3000:]}")
                await asyncio.sleep(0.05)

    async def kill(self) -> None:
        """SIGKILL (once)."""
        if not self.killed:
            self.killed = True
            await self.zygote.kill(self.pid)


def clean_environ() -> dict[str, str]:
    """This process's environment without any `TIERBOT_*` variable."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TIERBOT_")}


class Fleet:
    """Worker processes under a test's control: started, SIGKILLed and replaced by index, the
    way a supervisor would restart them; every log is kept for the checks."""

    def __init__(self, zygote: Zygote, directory: Path, launch: Launch, *, ready: str) -> None:
        self._zygote = zygote
        self._directory = directory
        self._launch = launch
        self._ready = ready
        self._started = 0
        self.current: list[Proc] = []
        self.every: list[Proc] = []
        self.kills = 0
        self.stops = 0

    async def start(self, count: int) -> None:
        """Start `count` workers and wait until each is ready."""
        procs = [await self._spawn() for _ in range(count)]
        for proc in procs:
            await proc.until_said(self._ready)
        self.current.extend(procs)

    async def kill(self, index: int) -> None:
        """SIGKILL the `index`-th current worker and start its replacement (not waited for);
        nothing if the fleet is down."""
        if not self.current:
            return
        victim = self.current[index % len(self.current)]
        await victim.kill()
        self.kills += 1
        if victim in self.current:  # not stopped meanwhile
            self.current[self.current.index(victim)] = await self._spawn()

    async def stop_all(self) -> None:
        """SIGTERM every current worker at once and wait until they are gone (a graceful stop
        of the fleet, as a deploy does); `start` brings new ones."""
        for proc in self.current:
            os.kill(proc.pid, signal.SIGTERM)
        for proc in self.current:
            await proc.zygote.kill(proc.pid, signal.SIGTERM)  # reaps it once it has exited
            proc.killed = True
        self.stops += 1
        self.current = []

    async def ready(self) -> None:
        """Wait until every current worker is ready."""
        for proc in self.current:
            await proc.until_said(self._ready)

    def count(self, needle: str) -> int:
        """Occurrences of `needle` in every log."""
        return sum(proc.text().count(needle) for proc in self.every)

    async def close(self) -> None:
        for proc in self.current:
            await proc.kill()
        self.current = []

    async def _spawn(self) -> Proc:
        self._started += 1
        name = f"w{self._started}"
        module, argv, env = self._launch(name)
        proc = await self._zygote.spawn(module, argv, env, self._directory / f"{name}.log")
        self.every.append(proc)
        return proc
