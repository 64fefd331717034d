"""A pre-imported launcher of worker processes for the chaos tests: `python -m
tests.chaos.zygote MODULE...` imports the modules once and then forks a real OS process per
request, so a SIGKILLed worker is replaced in milliseconds instead of the ~10 s a cold
`python -m bots` takes to import (aiogram's types alone take ~6 s on this machine).

Each child runs `<module>.main(argv)` (`bots.__main__` is `tierbot` itself) with the
environment it was given, stdin on /dev/null and stdout+stderr appended to a log file. Nothing
of the service is changed: the child is what `python -m bots serve ...` would be, minus the
import time.

Protocol, one JSON object per line: on stdin `{"spawn": {"module", "argv", "env", "log"}}` →
`{"pid": N}`; `{"kill": N, "signal": S}` → `{"pid": N, "status": wait status}` once reaped;
`{"poll": N}` → `{"pid": N, "status": null or wait status}`; `{"ping": 1}` → `{"pong": true}`.
The launcher prints `ready` once its imports are done; at the end of stdin it SIGKILLs and
reaps every child it still has.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import cast

SERVICE = (
    "bots.__main__",
    "routing.providers.anthropic_messages",
    "routing.providers.groq_chat",
    "routing.providers.openai_compat",
)
"""What `tierbot serve` imports, the SDKs its LLM stack imports lazily included."""

Main = Callable[[Sequence[str]], int]
GRACE_S = 10.0
"""How long a signalled child may take to exit before it is SIGKILLed."""


def _child(module: str, argv: list[str], env: dict[str, str], log: str) -> None:
    """In the forked child: redirect, take the environment, run `main`, never return."""
    code = 70
    try:
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.environ.clear()
        os.environ.update(env)
        main = cast(Main, importlib.import_module(module).main)
        code = main(argv)
    except BaseException:  # the child's boundary: say why, exit non-zero
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _spawn(request: dict[str, object]) -> int:
    module, argv = str(request["module"]), [str(a) for a in cast(list[object], request["argv"])]
    env = {str(k): str(v) for k, v in cast(dict[object, object], request["env"]).items()}
    pid = os.fork()
    if pid == 0:
        _child(module, argv, env, str(request["log"]))
    return pid


def _end(pid: int, signum: int) -> int:
    """Signal `pid` and reap it; SIGKILL it if it is still there after `GRACE_S`."""
    os.kill(pid, signum)
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    return os.waitpid(pid, 0)[1]


def _reply(payload: object) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def _serve(children: set[int]) -> None:
    for line in sys.stdin:
        command = json.loads(line)
        if "spawn" in command:
            pid = _spawn(command["spawn"])
            children.add(pid)
            _reply({"pid": pid})
        elif "kill" in command:
            pid = int(command["kill"])
            if pid in children:
                status = _end(pid, int(command.get("signal", signal.SIGKILL)))
                children.discard(pid)
                _reply({"pid": pid, "status": status})
            else:
                _reply({"pid": pid, "status": None})
        elif "ping" in command:
            _reply({"pong": True})
        elif "poll" in command:
            pid = int(command["poll"])
            done, status = os.waitpid(pid, os.WNOHANG) if pid in children else (pid, -1)
            if done:
                children.discard(pid)
            _reply({"pid": pid, "status": status if done else None})


def main(preload: Sequence[str]) -> int:
    """Import `preload`, say `ready`, then serve requests until stdin closes."""
    for module in preload:
        importlib.import_module(module)
    children: set[int] = set()
    _reply("ready")
    try:
        _serve(children)
    finally:
        for pid in children:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
