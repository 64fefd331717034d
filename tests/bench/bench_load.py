"""Benchmark: the whole system under load from many chats at once, on both channels.

Run on demand: `python3 -m uv run python -m tests.bench.bench_load [--json out.json]`
(--chats, --messages, --workers, --web, --duration, --seed, --concurrency, --think,
--provider-speed, --drain, --settle, --data, --set NAME=VALUE, --logs DIR). A default run takes
about two minutes on an idle 2-core machine (start-up ~15 s, load 60 s, then draining).

Every part is a real OS process on 127.0.0.1: `tierbot serve --role web` (--web) and `--role
worker` (--workers), configured by environment variables as an operator would (limits raised so
they do not block the load; every other setting as shipped, `--set` changes one); a private
redis-server (AOF everysec) on a free port; a fresh PostgreSQL database for the feedback log;
one process with the fake LLM (time to first token, pace and answer length scripted per model
of the default tier chains, `load_mix.PACES`), the fake Telegram Bot API and the fake WhatsApp
Cloud API; and a bare aiohttp "return 200" server. This process is the load generator
(`load_driver`): each chat is a user who writes, waits for the reply and thinks before writing
again; `load_mix` says what they write (greetings, factual and complex questions, frustrated
follow-ups and rephrases). Baselines measured in the same run: each webhook body is also posted,
at the same moment, to the bare server (the acknowledgement floor of this generator, loopback
and aiohttp), and each answer is compared with what the fake provider alone takes before the
channel can show it (`load_report`).

Printed: a machine line, then the table: acknowledgement and first-visible-reply p50/p99 (and
the final answer, per channel), throughput, cost per 1,000 messages and tier mix from the
feedback store (the workers' /metrics as a cross-check), the queue after the load, store
events, RSS (start, peak = VmHWM, end) and CPU of every process, the machine's CPU spent by
everything else in the same window, and what the processes logged at WARNING and above. No
message is sent after --duration; replies are awaited --drain longer, then the queue may take
--settle to empty before the figures are read. Ctrl-C (or SIGTERM) stops every process it
started and drops the database; the children also die with it if it is killed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import sys
import time
from collections.abc import Coroutine
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests.bench.endpoint_procs import ROOT, cpu_seconds, machine_busy_seconds
from tests.bench.load_driver import Generator, LoadPlan, LoadResult
from tests.bench.load_mix import build_scripts, kind_counts, load_corpus, provider_script
from tests.bench.load_procs import memory_kib
from tests.bench.load_report import (
    cost_and_tiers,
    message_figures,
    read_store,
    render,
    scrape_cost,
    throughput,
)
from tests.bench.load_system import ADMIN_TOKEN, Layout, System, SystemFailure, running_system

DEFAULT_DATA = ROOT.parent / "shared" / "data"


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """One run's size and shape."""

    chats: int = 300
    messages: int = 1200
    workers: int = 2
    web: int = 1
    duration_s: float = 60.0
    seed: int = 1
    concurrency: int = 16
    """TIERBOT_WORKER_CONCURRENCY of each worker (the shipped default)."""
    think_s: float = 8.0
    """Mean pause of a user before the next message (exponential, capped at 5x)."""
    provider_speed: float = 1.0
    drain_s: float = 20.0
    settle_s: float = 20.0
    """After the load: how long the queue may take to empty before the figures are read."""
    data: Path | None = None
    env: tuple[tuple[str, str], ...] = ()
    """Extra tierbot variables (NAME, value), over the benchmark's."""
    quiet: bool = False
    """No progress lines on stderr."""
    log_dir: Path | None = None
    """Keep each process's whole output in this directory."""

    def line(self, source: str) -> str:
        return (
            f"{self.chats} chats, {self.messages} messages, {self.web} web + {self.workers} "
            f"worker processes (concurrency {self.concurrency}), duration {self.duration_s:g} s, "
            f"think {self.think_s:g} s, seed {self.seed}, provider speed x{self.provider_speed:g}, "
            f"texts: {source}" + "".join(f", {name}={value}" for name, value in self.env)
        )


def machine(system: System) -> dict[str, Any]:
    """CPU model and count, RAM, Python, Redis and PostgreSQL versions."""
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    facts = {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "ram_gib": round(mem_kib / 2**20, 1),
        "python": platform.python_version(),
        "redis": system.redis_version,
        "postgresql": system.postgres_version,
    }
    facts["line"] = (
        f"{cpu} x{facts['cpus']}, {facts['ram_gib']} GiB RAM, Python {facts['python']}, "
        f"Redis {system.redis_version}, PostgreSQL {system.postgres_version}"
    )
    return facts


def _progress(options: Options, text: str) -> None:
    if not options.quiet:
        sys.stderr.write(f"bench_load: {text}\n")


GENERATOR = "generator (this process)"


def _usage(pids: dict[str, int]) -> dict[str, tuple[int, int, float]]:
    """(VmRSS KiB, VmHWM KiB, CPU seconds) of each named process (zeros once it is gone)."""
    found = {}
    for name, pid in pids.items():
        try:
            cpu = cpu_seconds(pid)
        except OSError:
            cpu = 0.0
        found[name] = (*memory_kib(pid), cpu)
    return found


def _processes(
    before: dict[str, tuple[int, int, float]], after: dict[str, tuple[int, int, float]]
) -> dict[str, dict[str, float]]:
    """RSS at the start, peak (VmHWM) and end of the load, and CPU seconds spent in it."""
    return {
        name: {
            "rss_start_mib": round(before[name][0] / 1024, 1),
            "rss_peak_mib": round(after[name][1] / 1024, 1),
            "rss_end_mib": round(after[name][0] / 1024, 1),
            "cpu_s": round(after[name][2] - before[name][2], 2),
        }
        for name in before
    }


async def _unless_one_dies(system: System, load: Coroutine[Any, Any, LoadResult]) -> LoadResult:
    """Run `load`; a process of the system that exits meanwhile stops it with SystemFailure."""
    running = asyncio.create_task(load)
    died = asyncio.create_task(system.first_exit())
    try:
        await asyncio.wait((running, died), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (running, died):
            task.cancel()
        await asyncio.gather(running, died, return_exceptions=True)
    if not running.cancelled() and running.exception() is None:
        return running.result()
    if died.done() and not died.cancelled():
        raise SystemFailure(died.result())
    return await running  # raises what the load raised


async def run_load(options: Options) -> dict[str, Any]:
    """Run the benchmark once; return the report (see `load_report.render` for its shape)."""
    corpus = load_corpus(options.data)
    scripts = build_scripts(
        chats=options.chats, messages=options.messages, seed=options.seed, corpus=corpus
    )
    plan = LoadPlan(
        duration_s=options.duration_s,
        ramp_s=min(10.0, options.duration_s / 6),
        think_s=options.think_s,
        drain_s=options.drain_s,
        seed=options.seed,
    )
    layout = Layout(
        webs=options.web,
        workers=options.workers,
        concurrency=options.concurrency,
        overrides=dict(options.env),
        log_dir=options.log_dir,
    )
    began = time.monotonic()
    _progress(options, "starting redis-server, a database, the fakes and tierbot")
    async with running_system(layout, provider_script(options.provider_speed)) as system:
        assert system.fakes is not None
        assert system.baseline is not None
        _progress(options, f"ready after {time.monotonic() - began:.1f} s; load running")
        pids = {p.name: p.pid for p in system.procs} | {GENERATOR: os.getpid()}
        before, busy_before, window_start = _usage(pids), machine_busy_seconds(), time.monotonic()
        load_start = os.getloadavg()[0]
        webs = [f"http://127.0.0.1:{p.port}" for p in system.webs]
        generator = Generator(
            scripts, plan, webs=webs, baseline=f"http://127.0.0.1:{system.baseline.port}"
        )
        fakes = system.fakes.process
        assert fakes.stdout is not None
        result = await _unless_one_dies(system, generator.run(fakes.stdout))
        _progress(options, f"load done after {result.ended - result.started:.1f} s; settling")
        queue, settle_s = await system.settle(options.settle_s)
        after, busy_after, window = _usage(pids), machine_busy_seconds(), time.monotonic()
        processes = _processes(before, after)
        cpu = {
            "window_s": round(window - window_start, 1),
            "machine_capacity_s": round((window - window_start) * (os.cpu_count() or 1), 1),
            "machine_busy_s": round(busy_after - busy_before, 1),
            "ours_s": round(sum(p["cpu_s"] for p in processes.values()), 1),
            "loadavg_1m_start": round(load_start, 2),
            "loadavg_1m_end": round(os.getloadavg()[0], 2),
        }
        cpu["others_s"] = round(cpu["machine_busy_s"] - cpu["ours_s"], 1)
        metrics = [f"http://127.0.0.1:{p.port}/metrics" for p in system.workers]
        metrics_usd = await scrape_cost(metrics, ADMIN_TOKEN)
        await system.stop_tierbot()
        await generator.finish(result, fakes.stdin)
        store = await read_store(system.database_dsn)
        logs = {p.name: {"levels": dict(p.levels), "samples": p.samples} for p in system.procs}
        facts = machine(system)
        database = system.database
    figures = message_figures(result, store, options.provider_speed)
    acked = figures["messages"]["acked"]
    return {
        "machine": facts,
        "config": asdict(options)
        | {"data": str(options.data), "line": options.line(corpus.source)},
        **figures,
        "mix": kind_counts(scripts),
        "throughput": throughput(result),
        **cost_and_tiers(store, acked, metrics_usd),
        "events": dict(sorted(store.events.items())),
        "queue": asdict(queue) | {"settle_s": round(settle_s, 2)},
        "provider_errors": dict(store.attempt_errors),
        "processes": processes,
        "cpu": cpu,
        "platform": {
            "strays": dict(result.strays),
            "errors": dict(result.platform_errors),
            "fakes": result.fakes_summary,
        },
        "logs": logs,
        "wall_s": round(time.monotonic() - began, 1),
        "database": database,
    }


async def _main(options: Options, json_path: Path | None) -> None:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    report = await run_load(options)
    sys.stdout.write(render(report) + "\n")
    if json_path is not None:
        text = json.dumps(report, indent=2, default=str) + "\n"
        await asyncio.to_thread(json_path.write_text, text)


def main() -> None:
    """Parse the options, run, print the table (and write the JSON)."""
    parser = argparse.ArgumentParser(description=__doc__)
    d = Options()
    parser.add_argument("--chats", type=int, default=d.chats)
    parser.add_argument("--messages", type=int, default=d.messages, help="in all, over the chats")
    parser.add_argument("--workers", type=int, default=d.workers, help="worker processes")
    parser.add_argument("--web", type=int, default=d.web, help="web processes")
    parser.add_argument(
        "--duration", type=float, default=d.duration_s, help="seconds during which messages go out"
    )
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--concurrency", type=int, default=d.concurrency, help="turns per worker")
    parser.add_argument("--think", type=float, default=d.think_s, help="mean user pause, s")
    parser.add_argument("--provider-speed", type=float, default=d.provider_speed)
    parser.add_argument("--drain", type=float, default=d.drain_s, help="answer wait after it")
    parser.add_argument(
        "--settle", type=float, default=d.settle_s, help="then the wait for an empty queue, s"
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="calibration data dir")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a tierbot variable for the web and worker processes (repeatable)",
    )
    parser.add_argument("--json", type=Path, help="write the report here as JSON")
    parser.add_argument("--logs", type=Path, help="keep every process's output in this directory")
    args = parser.parse_args()
    pairs = [item.partition("=") for item in args.set]
    if any(not name or not sep for name, sep, _ in pairs):
        parser.error("--set takes NAME=VALUE")
    options = Options(
        chats=args.chats,
        messages=args.messages,
        workers=args.workers,
        web=args.web,
        duration_s=args.duration,
        seed=args.seed,
        concurrency=args.concurrency,
        think_s=args.think,
        provider_speed=args.provider_speed,
        drain_s=args.drain,
        settle_s=args.settle,
        data=args.data if args.data.is_dir() else None,
        env=tuple((name, value) for name, _, value in pairs),
        log_dir=args.logs,
    )
    try:
        asyncio.run(_main(options, args.json))
    except SystemFailure as exc:
        sys.stderr.write(f"bench_load: {exc}\n")
        sys.exit(1)
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.stderr.write(
            "bench_load: interrupted; its processes are stopped, its database dropped\n"
        )
        sys.exit(130)


if __name__ == "__main__":
    main()
