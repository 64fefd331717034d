"""Process plumbing for the endpoint benchmark: children that die with us, fd limits, CPU time."""

from __future__ import annotations

import asyncio
import ctypes
import os
import resource
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parents[2]
"""The repository root: children run from it, so `python -m tests.bench...` resolves."""


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent exits, however the parent ends."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:  # the parent was already gone before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def raise_fd_limit() -> int:
    """Raise the soft open-files limit to the hard one (1,000 streams need 2,000+ sockets)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds used so far by every thread of process `pid`."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / _CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs of the machine have spent busy since boot (any process)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


def listen_overflows() -> int:
    """Connections the kernel refused because a listen queue was full (all sockets)."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=True):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=True))
            return int(table.get("ListenOverflows", "0"))
    return 0


async def start_child(
    module: str, *args: str, env: Mapping[str, str] | None = None, stdin: bool = True
) -> asyncio.subprocess.Process:
    """`python -m module args` from the repository root, stdout piped, dying with us."""
    launcher = (
        "import runpy, sys;"
        "from tests.bench.endpoint_procs import die_with_parent, raise_fd_limit;"
        "die_with_parent(); raise_fd_limit();"
        "sys.argv = sys.argv[1:];"
        "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)"
    )
    return await asyncio.create_subprocess_exec(
        *(sys.executable, "-c", launcher, module, *args),
        cwd=ROOT,
        env=None if env is None else dict(env),
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def stop_children(children: Sequence[asyncio.subprocess.Process]) -> None:
    """SIGTERM each child still running, then SIGKILL any that has not exited within 5 s."""
    for child in children:
        if child.returncode is None:
            child.terminate()
    for child in children:
        try:
            async with asyncio.timeout(5):
                await child.wait()
        except TimeoutError:
            child.kill()
            await child.wait()
