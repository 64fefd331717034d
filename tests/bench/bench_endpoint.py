"""Benchmark: what tierbot's endpoint adds to time-to-first-token and CPU, against LiteLLM.

Run on demand (a few minutes; LiteLLM is in the `bench` dependency group only):
`python3 -m uv run --group bench python -m tests.bench.bench_endpoint`.

One run, one upstream: `FakeLLM` in its own process (`fake_upstream`) streams a fixed answer of
50 tokens after a fixed time to first token, at a fixed pace. Three paths ask it the same
question, one path at a time, each from its own load process (`endpoint_load`):

- baseline: the official `openai` SDK (`AsyncOpenAI`, streaming) calling the fake directly;
- tierbot: the same SDK calling `tierbot serve`, a process of its own configured by environment
  variables: every tier's chain is the fake's model, and the request names `auto`, so the
  router runs on every request;
- litellm: `litellm.Router` (one OpenAI-compatible deployment, the fake), `acompletion(...,
  stream=True)`, running inside the load process as a library user runs it (defaults, except
  that it reads its price list from the package instead of downloading it: loopback only).

Each run of a path is a closed loop of C lanes, each streaming one answer after another (the
lanes start 2 ms apart, so no listen queue overflows). Its timed window opens once max(C/2, 5)
answers have ended (untimed warm-up: every lane started, pools and caches warm) and closes when
N more have ended; the answers still in flight are then dropped. Within a run the paths take
turns in a rotating order, so drift hits all three alike; figures are medians over the runs.

Accounting, so a reader can check it is fair:

- TTFT is measured in the load process, from just before the request is sent to the first
  chunk with text. "Added" is the path's p50 minus the baseline's p50 at the same level.
- CPU per request is user plus system CPU time, from `time.process_time()` in a load process and
  from `/proc/PID/stat` for the others, read at the two edges of the timed window and divided
  by the answers that ended in it. It counts what a deployment pays on top of calling the provider
  with the SDK directly (the baseline):
  - tierbot: all of the server process's CPU. Its clients still run the SDK, and pay what the
    baseline pays (the "client" line checks this), so everything the server burns is added. That
    includes the server's own SDK call to the provider, which a direct caller never makes twice.
  - litellm: the CPU of the process that runs the Router minus the baseline process's CPU per
    request at the same level, that is minus the SDK call and the caller's loop that the
    baseline also pays; what is left is what LiteLLM adds.
  The "own" column of tierbot subtracts the baseline in the same way (server minus an SDK
  client's cost), for a like-for-like look at the two routers' own code; the targets use the
  deployment figures above. The fake's CPU per request is printed per path as a check that the
  upstream did the same work for all.
- The machine has few cores, shared by the fake, the server and the load process: at the higher
  levels it saturates and TTFT includes queueing behind CPU, for every path (by Little's law it
  is then about C divided by the throughput). Whatever else runs on the machine is measured
  (/proc/stat's busy time less ours) and printed as "other load".
- Settings that differ from the defaults, and why: the fake's listen queue is 4,096 deep (a real
  provider's is deep; aiohttp's test server has 128); the SDK clients allow 4,000 connections
  and LiteLLM's connector 4,000 (its default, 500 per host, would queue streams at C=1,000);
  tierbot's first-token, inter-token and connect deadlines are raised so that a saturated
  machine shows up as latency rather than as failovers. tierbot's own limits (its listen queue,
  its provider client's pool) and its stream batching (`TIERBOT_API_STREAM_BATCH_MS`, 10 ms:
  the first text at once, then at most one write per 10 ms) are left as they ship; the
  "end p50" column (time to the answer's last text) shows what the batching costs.

Targets (from the issue): tierbot's added TTFT p50 at concurrency 1 <= 1 ms; at every level,
tierbot's added TTFT p50 and CPU per request < 1/4 of LiteLLM's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.bench.endpoint_procs import raise_fd_limit, start_child, stop_children
from tests.bench.endpoint_report import PATHS, Level, Run, render
from tests.bench.fake_upstream import ANSWER_TOKENS, API_KEY, MODEL

TIERBOT_KEY = "sk-bench-tierbot-91d0"
"""The key tierbot's API accepts; with a key configured, every request runs the auth check."""
START_TIMEOUT_S = 60.0
RUN_DEADLINE_S = 150.0
"""A run's window closes this long after the run began, however few answers ended in it."""
RUN_TIMEOUT_S = 300.0
TIME_CAP_S = 540.0
"""By default the whole benchmark stops after nine minutes, wherever it is, and reports what it
has measured (the children die with it)."""
DEFAULT_PLAN = "1:200:4,100:1000:2,1000:1000:1"


class BenchError(Exception):
    """A process of the benchmark failed to start or answer."""


@dataclass(slots=True)
class Child:
    """A child process with its stderr drained into a short tail, and JSON lines on stdio."""

    name: str
    process: asyncio.subprocess.Process
    tail: deque[str]

    async def read_json(self) -> dict[str, Any]:
        """The next JSON line on the child's stdout (callers bound the wait)."""
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line:
            await asyncio.sleep(0.2)  # let the stderr drain catch the last words
            raise BenchError(f"{self.name} stopped; its stderr ends with:\n" + "".join(self.tail))
        message: dict[str, Any] = json.loads(line)
        return message

    async def send(self, message: Mapping[str, object]) -> None:
        """One JSON line to the child's stdin."""
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        await self.process.stdin.drain()


async def _drain(child: Child, serving: asyncio.Future[str] | None) -> None:
    """Keep the child's stderr flowing (a full pipe would stall it); note `serving on URL`."""
    assert child.process.stderr is not None
    while line := (await child.process.stderr.readline()).decode(errors="replace"):
        child.tail.append(line)
        if serving is not None and not serving.done() and line.startswith("tierbot: serving on"):
            serving.set_result(line.removeprefix("tierbot: serving on ").strip())
    if serving is not None and not serving.done():
        serving.set_exception(BenchError("tierbot stopped:\n" + "".join(child.tail)))


def _tierbot_env(upstream: str, scratch: Path) -> dict[str, str]:
    """Our environment without provider or tierbot settings, plus the benchmark's; tierbot's
    files (its feedback database) go to `scratch`."""
    ours = ("TIERBOT_", "OPENAI_", "ANTHROPIC_", "GROQ_", "REDIS_", "DATABASE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    chain = [f"openai:{MODEL}"]
    return env | {
        "OPENAI_API_KEY": API_KEY,
        "OPENAI_BASE_URL": upstream,
        "DATABASE_URL": f"sqlite+aiosqlite:///{scratch / 'feedback.sqlite3'}",
        "TIERBOT_CHAINS": json.dumps({"fast": chain, "mid": chain, "frontier": chain}),
        "TIERBOT_API_KEYS": TIERBOT_KEY,
        # A saturated machine delays tokens by seconds; the benchmark measures those delays, it
        # does not want the executor to fail over (or its breaker to open) because of them.
        "TIERBOT_TTFT_SLO_SECONDS": "120",
        "TIERBOT_INTER_TOKEN_TIMEOUT_SECONDS": "120",
        "TIERBOT_CONNECT_TIMEOUT_SECONDS": "120",
        "TIERBOT_TOTAL_TIMEOUT_SECONDS": "300",
    }


def _litellm_env() -> dict[str, str]:
    """LiteLLM's own switches: no download of its price list (loopback only), no connection cap
    below the highest concurrency (its defaults are 1,000 in all and 500 per host)."""
    return dict(os.environ) | {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "AIOHTTP_CONNECTOR_LIMIT": "4000",
        "AIOHTTP_CONNECTOR_LIMIT_PER_HOST": "4000",
    }


class Bench:
    """Owns the processes of one benchmark run."""

    def __init__(self, group: asyncio.TaskGroup, scratch: Path) -> None:
        self._group = group
        self.scratch = scratch
        """A directory for the children's files, removed after the run."""
        self.children: list[Child] = []

    async def spawn(
        self,
        name: str,
        module: str,
        *args: str,
        env: Mapping[str, str] | None = None,
        serves: bool = False,
    ) -> tuple[Child, asyncio.Future[str]]:
        """Start a child; if it `serves`, the future gets the URL it says it serves on."""
        process = await start_child(module, *args, env=env)
        child = Child(name=name, process=process, tail=deque(maxlen=40))
        self.children.append(child)
        serving: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._group.create_task(_drain(child, serving if serves else None))
        return child, serving

    async def worker(self, name: str, client: str, url: str, key: str, *watch: int) -> Child:
        """A load process for one path, ready for commands."""
        env = _litellm_env() if client == "litellm" else None
        args = ["--client", client, "--base-url", url, "--api-key", key]
        if watch:
            args += ["--watch", *map(str, watch)]
        child, _ = await self.spawn(name, "tests.bench.endpoint_load", *args, env=env)
        async with asyncio.timeout(START_TIMEOUT_S):
            await child.read_json()
        return child

    async def close(self) -> None:
        """Close every stdin (the fake and the load processes leave), then stop stragglers."""
        for child in self.children:
            if child.process.stdin is not None:
                child.process.stdin.close()
        await stop_children([child.process for child in self.children])


async def _run_plan(
    workers: dict[str, Child], plan: list[Level], watched: dict[str, int], runs: list[Run]
) -> None:
    started = time.perf_counter()
    for level in plan:
        per_run = max(1, level.requests // level.runs)
        for index in range(level.runs):
            for turn in range(len(PATHS)):
                path = PATHS[(index + turn) % len(PATHS)]
                command = {
                    "concurrency": level.concurrency,
                    "requests": per_run,
                    "warmup": max(level.concurrency // 2, 5),
                    "deadline_s": RUN_DEADLINE_S,
                }
                await workers[path].send(command)
                async with asyncio.timeout(RUN_TIMEOUT_S):
                    result = await workers[path].read_json()
                runs.append(Run.parse(path, level, result, watched))
                sys.stderr.write(f"  {runs[-1].progress(time.perf_counter() - started)}\n")


async def bench_endpoint(
    plan: list[Level], ttft: float, tokens_per_second: float, runs: list[Run]
) -> None:
    """Start the fake, tierbot and the three load processes; run the plan, adding to `runs`;
    stop them all, also when cancelled at the time cap."""
    with tempfile.TemporaryDirectory(prefix="bench-endpoint-") as scratch:
        async with asyncio.TaskGroup() as group:
            bench = Bench(group, Path(scratch))
            try:
                await _run(bench, plan, ttft, tokens_per_second, runs)
            finally:
                await bench.close()


async def _run(bench: Bench, plan: list[Level], ttft: float, pace: float, runs: list[Run]) -> None:
    fake, _ = await bench.spawn(
        "fake", "tests.bench.fake_upstream", "--ttft", str(ttft), "--tokens-per-second", str(pace)
    )
    async with asyncio.timeout(START_TIMEOUT_S):
        upstream = str((await fake.read_json())["url"])
    tierbot, serving = await bench.spawn(
        "tierbot",
        "bots",
        "serve",
        "--port",
        "0",
        env=_tierbot_env(upstream, bench.scratch),
        serves=True,
    )
    async with asyncio.timeout(START_TIMEOUT_S):
        tierbot_url = await serving
    fake_pid, tierbot_pid = fake.process.pid, tierbot.process.pid
    workers = {
        "baseline": await bench.worker("baseline", "openai", upstream, API_KEY, fake_pid),
        "tierbot": await bench.worker(
            "tierbot-load", "openai", f"{tierbot_url}/v1", TIERBOT_KEY, tierbot_pid, fake_pid
        ),
        "litellm": await bench.worker("litellm", "litellm", upstream, API_KEY, fake_pid),
    }
    await _run_plan(workers, plan, {"fake": fake_pid, "server": tierbot_pid}, runs)


def parse_plan(text: str) -> list[Level]:
    """`C:N:R,...`: at concurrency C, N timed requests per path, split into R runs."""
    levels = []
    for item in text.split(","):
        concurrency, requests, runs = (int(part) for part in item.split(":"))
        levels.append(Level(concurrency=concurrency, requests=requests, runs=runs))
    return levels


def main() -> None:
    """Run the benchmark and print the table and the verdicts."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--plan", default=DEFAULT_PLAN, help=f"default {DEFAULT_PLAN}")
    parser.add_argument("--ttft", type=float, default=0.05, help="the fake's seconds to 1st token")
    parser.add_argument("--tokens-per-second", type=float, default=1000.0)
    parser.add_argument("--time-cap", type=float, default=TIME_CAP_S, help="seconds in all")
    args = parser.parse_args()
    raise_fd_limit()
    plan = parse_plan(args.plan)
    load_before = Path("/proc/loadavg").read_text().split()[0]
    started = time.perf_counter()
    runs: list[Run] = []
    work = bench_endpoint(plan, args.ttft, args.tokens_per_second, runs)
    try:
        asyncio.run(asyncio.wait_for(work, args.time_cap))
    except TimeoutError:
        sys.stderr.write(f"time cap of {args.time_cap:g} s reached: the report is partial\n")
    setup = (
        f"fake upstream: {ANSWER_TOKENS} tokens, TTFT {args.ttft * 1000:g} ms, "
        f"{args.tokens_per_second:g} tok/s; 1-min load average before the run: {load_before}"
    )
    sys.stdout.write(render(plan, runs, setup, time.perf_counter() - started))


if __name__ == "__main__":
    main()
