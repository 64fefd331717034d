"""One load-generating process of the endpoint benchmark: streams answers through one client.

`bench_endpoint` starts one per path: `--client openai` (the official SDK, against the fake or
against tierbot) or `--client litellm` (a `litellm.Router` in this very process, as a library
user runs it). It writes `{"ready": true}` once the client is built, then reads one JSON command
per line, `{"concurrency": C, "requests": N, "warmup": W, "deadline_s": D}`, and answers each
with one JSON line: the time to first token of every good answer, the errors by kind, the wall
time, and the CPU seconds that this process and each `--watch` pid used in the timed window.
It exits when its stdin closes or after `--max-seconds`.

The load is a closed loop: C lanes, each streaming one answer after another. The timed window
opens when W answers have ended (untimed warm-up: pools filled, caches warm, steady state) and
closes when N more have ended; it holds the answers that ended inside it, and the counters are
read at its two edges, so CPU per request is the CPU of the window over the answers in it.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import itertools
import json
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import httpx2
import openai

from tests.bench.endpoint_procs import cpu_seconds, listen_overflows, machine_busy_seconds
from tests.bench.fake_upstream import ANSWER, MODEL

QUESTION = "How do I change the shipping address on my order? It still shows the old one."
REQUEST_TIMEOUT_S = 180.0
"""Longest a single streamed answer may take, under the heaviest load, before it is an error."""
SETTLE_S = 1.0
"""A pause after a run, for the servers to finish with the dropped streams."""
RAMP_GAP_S = 0.002
"""Between the starts of two lanes: 500 new connections a second at most, which a listen queue
of 128 (aiohttp's default) absorbs."""


class Client(Protocol):
    """Streams one answer; returns seconds to the first text and to its end, and the text."""

    async def answer(self) -> tuple[float, float, str]: ...

    async def aclose(self) -> None: ...


class SdkClient:
    """The official `openai` SDK, streaming, with connection limits above any concurrency here."""

    def __init__(self, *, base_url: str, api_key: str, model: str) -> None:
        limits = httpx2.Limits(max_connections=4000, max_keepalive_connections=4000)
        self._model = model
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key,
            max_retries=0,
            timeout=openai.Timeout(REQUEST_TIMEOUT_S, connect=10.0),
            http_client=openai.DefaultAsyncHttpxClient(limits=limits),
        )

    async def answer(self) -> tuple[float, float, str]:
        start = time.perf_counter()
        first = 0.0
        parts: list[str] = []
        stream = await self._client.chat.completions.create(
            model=self._model, messages=[{"role": "user", "content": QUESTION}], stream=True
        )
        async with stream:
            async for chunk in stream:
                text = chunk.choices[0].delta.content if chunk.choices else None
                if text:
                    if not parts:
                        first = time.perf_counter() - start
                    parts.append(text)
        return first, time.perf_counter() - start, "".join(parts)

    async def aclose(self) -> None:
        await self._client.close()


class LiteLLMClient:
    """LiteLLM's `Router` with one OpenAI-compatible deployment: the fake, under `MODEL`."""

    def __init__(self, *, base_url: str, api_key: str, model: str) -> None:
        # Imported here, by name: litellm lives in the `bench` group only, so the default
        # environment (and mypy there) never needs it. Its objects are untyped (Any).
        litellm = importlib.import_module("litellm")
        params = {"model": f"openai/{model}", "api_base": base_url, "api_key": api_key}
        self._model = model
        self._router: Any = litellm.Router(
            model_list=[{"model_name": model, "litellm_params": params}],
            num_retries=0,
            timeout=REQUEST_TIMEOUT_S,
        )

    async def answer(self) -> tuple[float, float, str]:
        start = time.perf_counter()
        first = 0.0
        parts: list[str] = []
        stream = await self._router.acompletion(
            model=self._model, messages=[{"role": "user", "content": QUESTION}], stream=True
        )
        async for chunk in stream:
            text = chunk.choices[0].delta.content if chunk.choices else None
            if text:
                if not parts:
                    first = time.perf_counter() - start
                parts.append(str(text))
        return first, time.perf_counter() - start, "".join(parts)

    async def aclose(self) -> None:
        return None  # the Router owns no resource that it lets a caller close


@dataclass(frozen=True, slots=True, kw_only=True)
class Counters:
    """The clocks and counters read at each edge of the timed window."""

    wall: float
    cpu_self: float
    cpu_watched: dict[int, float]
    busy: float
    overflows: int

    @classmethod
    def read(cls, watch: list[int]) -> Counters:
        """Read them all now."""
        return cls(
            wall=time.perf_counter(),
            cpu_self=time.process_time(),
            cpu_watched={pid: cpu_seconds(pid) for pid in watch},
            busy=machine_busy_seconds(),
            overflows=listen_overflows(),
        )


@dataclass(slots=True, kw_only=True)
class Phase:
    """What one timed window measured: the answers that ended in it, and the counters' deltas."""

    ttft_s: list[float] = field(default_factory=list)
    last_s: list[float] = field(default_factory=list)
    """Seconds to the end of each good answer (its last text), in the order of `ttft_s`."""
    errors: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    cpu_self_s: float = 0.0
    cpu_watched_s: dict[str, float] = field(default_factory=dict)
    listen_overflows: int = 0
    machine_busy_s: float = 0.0
    """CPU seconds the whole machine was busy meanwhile: what is not ours is other load."""

    def close(self, opened: Counters, closed: Counters) -> None:
        """Record the deltas of the counters over the window."""
        self.wall_s = closed.wall - opened.wall
        self.cpu_self_s = closed.cpu_self - opened.cpu_self
        self.cpu_watched_s = {
            str(pid): closed.cpu_watched[pid] - opened.cpu_watched[pid]
            for pid in opened.cpu_watched
        }
        self.machine_busy_s = closed.busy - opened.busy
        self.listen_overflows = closed.overflows - opened.overflows


async def _one(client: Client) -> tuple[tuple[float, float] | None, str | None]:
    """One answer: its times to first text and to the end, or the kind of error."""
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            ttft, last, text = await client.answer()
    except Exception as exc:  # a lane's boundary: the failure is counted, the lane goes on
        return None, type(exc).__name__
    return ((ttft, last), None) if text == ANSWER else (None, "wrong_text")


@dataclass(slots=True, kw_only=True)
class _Window:
    """The timed window of one run: opens after `warmup` answers, closes after `requests` more."""

    watch: list[int]
    warmup: int
    requests: int
    phase: Phase = field(default_factory=Phase)
    errors: Counter[str] = field(default_factory=Counter)
    ended: int = 0
    opened: Counters | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def open(self) -> None:
        """Read the counters at the opening edge."""
        self.opened = Counters.read(self.watch)

    def close(self) -> None:
        """Read the counters at the closing edge (opening first if the warm-up never ended)."""
        if self.opened is None:
            self.open()
        assert self.opened is not None
        self.phase.close(self.opened, Counters.read(self.watch))
        self.phase.errors = dict(self.errors)
        self.closed.set()

    def record(self, times: tuple[float, float] | None, error: str | None) -> None:
        """One answer has ended: count it in the window, or toward opening it."""
        self.ended += 1
        if self.closed.is_set():
            return
        if self.opened is None:
            if self.ended >= self.warmup:
                self.open()
            return
        if error is None and times is not None:
            self.phase.ttft_s.append(times[0])
            self.phase.last_s.append(times[1])
        else:
            self.errors[str(error)] += 1
        if len(self.phase.ttft_s) + self.errors.total() >= self.requests:
            self.close()


async def run_command(client: Client, command: dict[str, Any], watch: list[int]) -> Phase:
    """Keep `concurrency` answers in flight (the lanes start RAMP_GAP_S apart, so new connections
    do not flood a listen queue); time the window from the `warmup`-th answer's end to the end of
    `requests` more (or `deadline_s`); then drop the answers still in flight."""
    concurrency, deadline_s = int(command["concurrency"]), float(command["deadline_s"])
    window = _Window(watch=watch, warmup=int(command["warmup"]), requests=int(command["requests"]))
    if window.warmup == 0:
        window.open()

    async def lane(delay: float) -> None:
        await asyncio.sleep(delay)
        while not window.closed.is_set():
            window.record(*await _one(client))

    async with asyncio.TaskGroup() as group:
        lanes = [group.create_task(lane(i * RAMP_GAP_S)) for i in range(concurrency)]
        try:
            await asyncio.wait_for(window.closed.wait(), deadline_s)
        except TimeoutError:
            window.close()
        for task in lanes:  # what is still in flight is past the window: drop it
            task.cancel()
    await asyncio.sleep(SETTLE_S)
    return window.phase


async def serve_commands(client: Client, watch: list[int]) -> None:
    """Answer the commands on stdin, one JSON line each, until stdin closes."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    _reply({"ready": True})
    while line := await reader.readline():
        phase = await run_command(client, json.loads(line), watch)
        _reply(asdict(phase))


def _reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def amain(args: argparse.Namespace) -> None:
    """Build the client, then serve commands within `--max-seconds`."""
    maker = LiteLLMClient if args.client == "litellm" else SdkClient
    client: Client = maker(base_url=args.base_url, api_key=args.api_key, model=args.model)
    try:
        async with asyncio.timeout(args.max_seconds):
            await serve_commands(client, list(itertools.chain.from_iterable(args.watch)))
    finally:
        await client.aclose()


def main() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--client", choices=("openai", "litellm"), required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--watch", type=int, nargs="*", action="append", default=[])
    parser.add_argument("--max-seconds", type=float, default=900.0)
    asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    main()
