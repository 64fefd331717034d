"""The endpoint benchmark's upstream: `FakeLLM` in a process of its own, one fixed answer.

Run by `bench_endpoint` (through `endpoint_procs.start_child`, so it dies with the benchmark):
`python -m tests.bench.fake_upstream --ttft 0.05 --tokens-per-second 500`. It writes one JSON
line with its OpenAI base URL to stdout, then serves until its stdin closes, SIGTERM, or
`--max-seconds` pass.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import stat
import sys
from urllib.parse import urlsplit

from tests.fakes.llm import Behaviour, FakeLLM, tokens

API_KEY = "sk-bench-upstream-4c1f"
"""The key the fake accepts; every path uses it."""
MODEL = "gpt-4o-mini"
"""The model every path asks for: a real name, so tierbot's catalog and LiteLLM's cost map know
it and both do their usual per-request accounting."""
ANSWER = (
    "Sure. To change the shipping address, open Orders, pick the order, then choose Details and "
    "Edit address. The change is possible until the parcel leaves the warehouse, usually within "
    "a day. If the button is grey, the parcel has shipped; contact the carrier with the tracking "
    "number from your email."
)
"""The fixed answer."""
ANSWER_TOKENS = len(tokens(ANSWER))
"""50: the fake sends each word with the whitespace after it as one token."""


BACKLOG = 4096
"""The fake's listen queue: as deep as a real provider's, so that a burst of new connections
from any path waits in it instead of being dropped (aiohttp's test server listens with 128)."""


def widen_backlog(port: int, backlog: int = BACKLOG) -> bool:
    """Call listen() again, deeper, on this process's socket listening on `port` (Linux lets a
    listening socket's queue be resized so); True if one was found."""
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            probe = socket.socket(fileno=os.dup(int(name)))
            with probe:
                listening = probe.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
                if listening and probe.getsockname()[1] == port:
                    probe.listen(backlog)
                    return True
    return False


async def _stdin_closed() -> None:
    """Return when stdin (a pipe from the benchmark) closes; never, if stdin is no pipe."""
    if not stat.S_ISFIFO(os.fstat(sys.stdin.fileno()).st_mode):
        await asyncio.Event().wait()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()


async def serve(ttft: float, tokens_per_second: float, max_seconds: float) -> None:
    """Serve the fixed answer until stdin closes, SIGTERM or SIGINT, or `max_seconds`."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with FakeLLM(api_key=API_KEY) as fake:
        behaviour = Behaviour(text=ANSWER, ttft=ttft, tokens_per_second=tokens_per_second)
        fake.script(MODEL, behaviour)
        port = urlsplit(fake.url).port
        if port is None or not widen_backlog(port):
            raise RuntimeError(f"no listening socket found for {fake.url}")
        sys.stdout.write(json.dumps({"url": fake.openai_url}) + "\n")
        sys.stdout.flush()
        async with asyncio.TaskGroup() as group:
            closed = group.create_task(_stdin_closed())
            stopped = group.create_task(stop.wait())
            await asyncio.wait(
                (closed, stopped), timeout=max_seconds, return_when="FIRST_COMPLETED"
            )
            closed.cancel()
            stopped.cancel()


def main() -> None:
    """Parse the arguments and serve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ttft", type=float, default=0.05, help="seconds to the first token")
    parser.add_argument("--tokens-per-second", type=float, default=500.0)
    parser.add_argument("--max-seconds", type=float, default=900.0)
    args = parser.parse_args()
    asyncio.run(serve(args.ttft, args.tokens_per_second, args.max_seconds))


if __name__ == "__main__":
    main()
