"""The endpoint benchmark's arithmetic and report: per-run figures, medians, table, verdicts."""

from __future__ import annotations

import math
import os
import platform
import statistics
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

Path_ = Literal["baseline", "tierbot", "litellm"]
PATHS: tuple[Path_, ...] = ("baseline", "tierbot", "litellm")
_CPUS = len(os.sched_getaffinity(0))


@dataclass(frozen=True, slots=True, kw_only=True)
class Level:
    """One concurrency level of the plan: N timed requests per path, split into R runs."""

    concurrency: int
    requests: int
    runs: int


def percentile(samples: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (NaN for no samples)."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """One timed run of one path at one level, in milliseconds per request."""

    path: Path_
    concurrency: int
    ok: int
    errors: Mapping[str, int]
    p50_ms: float
    p99_ms: float
    last_p50_ms: float
    """Time to the end of the answer (its last text), p50."""
    load_cpu_ms: float
    """CPU of the load process (for litellm this includes the Router)."""
    server_cpu_ms: float
    """CPU of the tierbot server (tierbot path only, else 0)."""
    fake_cpu_ms: float
    throughput: float
    overflows: int
    other_load: float
    """Share of the machine's CPUs that other processes used during the run (noise)."""

    @classmethod
    def parse(
        cls, path: Path_, level: Level, result: Mapping[str, Any], watched: Mapping[str, int]
    ) -> Run:
        """From a load process's JSON answer; `watched` names the pids it reported on."""
        ttft = [1000 * float(t) for t in result["ttft_s"]]
        errors = {str(k): int(v) for k, v in result["errors"].items()}
        ran = max(1, len(ttft) + sum(errors.values()))
        cpu = {k: float(v) for k, v in result["cpu_watched_s"].items()}
        server = cpu.get(str(watched["server"]), 0.0) if path == "tierbot" else 0.0
        wall = max(float(result["wall_s"]), 1e-9)
        ours = float(result["cpu_self_s"]) + sum(cpu.values())
        other = max(0.0, float(result["machine_busy_s"]) - ours) / (wall * _CPUS)
        return cls(
            path=path,
            concurrency=level.concurrency,
            ok=len(ttft),
            errors=errors,
            p50_ms=percentile(ttft, 50),
            p99_ms=percentile(ttft, 99),
            last_p50_ms=percentile([1000 * float(t) for t in result.get("last_s", [])], 50),
            load_cpu_ms=1000 * float(result["cpu_self_s"]) / ran,
            server_cpu_ms=1000 * server / ran,
            fake_cpu_ms=1000 * cpu.get(str(watched["fake"]), 0.0) / ran,
            throughput=len(ttft) / wall,
            overflows=int(result["listen_overflows"]),
            other_load=other,
        )

    def progress(self, elapsed_s: float) -> str:
        """A one-line summary for stderr while the benchmark runs."""
        return (
            f"{elapsed_s:5.0f} s {self.path:<8} c={self.concurrency:<5} ok={self.ok:<5}"
            f" err={sum(self.errors.values())} p50={self.p50_ms:.2f} ms"
            f" p99={self.p99_ms:.2f} ms load={self.load_cpu_ms:.2f}"
            f" server={self.server_cpu_ms:.2f} fake={self.fake_cpu_ms:.2f} ms/req"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Cell:
    """One path at one level: medians over its runs."""

    path: Path_
    concurrency: int
    ok: int
    errors: Counter[str]
    p50_ms: float
    p99_ms: float
    last_p50_ms: float
    load_cpu_ms: float
    server_cpu_ms: float
    fake_cpu_ms: float
    throughput: float
    overflows: int
    other_load: float


def _median(runs: Sequence[Run], field: Callable[[Run], float]) -> float:
    return statistics.median(field(run) for run in runs)


def cell_of(runs: Sequence[Run]) -> Cell:
    """The medians of one path's runs at one level (ok, errors and overflows are summed)."""
    errors: Counter[str] = Counter()
    for run in runs:
        errors.update(run.errors)
    return Cell(
        path=runs[0].path,
        concurrency=runs[0].concurrency,
        ok=sum(run.ok for run in runs),
        errors=errors,
        p50_ms=_median(runs, lambda r: r.p50_ms),
        p99_ms=_median(runs, lambda r: r.p99_ms),
        last_p50_ms=_median(runs, lambda r: r.last_p50_ms),
        load_cpu_ms=_median(runs, lambda r: r.load_cpu_ms),
        server_cpu_ms=_median(runs, lambda r: r.server_cpu_ms),
        fake_cpu_ms=_median(runs, lambda r: r.fake_cpu_ms),
        throughput=_median(runs, lambda r: r.throughput),
        overflows=sum(run.overflows for run in runs),
        other_load=max(run.other_load for run in runs),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Added:
    """What a path adds over the baseline at one level."""

    ttft_ms: float
    cpu_ms: float
    """What a deployment pays: tierbot's server; LiteLLM's process minus the baseline's."""
    own_cpu_ms: float
    """Both minus one SDK client's cost: the router's own code, like for like."""


def added(cell: Cell, base: Cell) -> Added:
    """`cell` against the baseline at the same level."""
    if cell.path == "tierbot":
        cpu = cell.server_cpu_ms
        own = cell.server_cpu_ms - base.load_cpu_ms
    else:
        cpu = own = cell.load_cpu_ms - base.load_cpu_ms
    return Added(ttft_ms=cell.p50_ms - base.p50_ms, cpu_ms=cpu, own_cpu_ms=own)


def machine_line() -> str:
    """nproc, CPU model, Python and the versions of the libraries that matter here."""
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    versions = []
    for name in ("openai", "litellm", "aiohttp", "httpx2"):
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} missing")
    return f"machine: nproc {_CPUS}, {model}, Python {platform.python_version()}; " + ", ".join(
        versions
    )


_HEAD = (
    f"{'path':<9}{'conc':>5}{'ok':>6}{'err':>5}{'TTFT p50':>10}{'p99':>10}{'+p50':>10}"
    f"{'end p50':>9}{'CPU/req':>9}{'own':>7}{'req/s':>7}\n"
    f"{'':<9}{'':>5}{'':>6}{'':>5}{'ms':>10}{'ms':>10}{'ms':>10}{'ms':>9}{'ms':>9}{'ms':>7}"
    f"{'':>7}\n"
)


def _row(cell: Cell, base: Cell) -> str:
    err = sum(cell.errors.values())
    head = f"{cell.path:<9}{cell.concurrency:>5}{cell.ok:>6}{err:>5}"
    times = f"{cell.p50_ms:>10.1f}{cell.p99_ms:>10.1f}"
    end = f"{cell.last_p50_ms:>9.1f}"
    if cell.path == "baseline":
        cpu = f"[{cell.load_cpu_ms:.2f}]"
        return f"{head}{times}{'-':>10}{end}{cpu:>9}{'-':>7}{cell.throughput:>7.0f}\n"
    more = added(cell, base)
    return (
        f"{head}{times}{more.ttft_ms:>+10.1f}{end}{more.cpu_ms:>9.2f}{more.own_cpu_ms:>7.2f}"
        f"{cell.throughput:>7.0f}\n"
    )


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _compare(what: str, level: int, mine: float, other: float, failed: int) -> str:
    ratio = mine / other if other > 0 else math.inf
    ok = failed == 0 and other > 0 and mine < other / 4
    note = f"; tierbot failed {failed} requests" if failed else ""
    return (
        f"  {_verdict(ok)}  c={level}: tierbot {what} {mine:.2f} ms vs LiteLLM {other:.2f} ms, "
        f"ratio {ratio:.2f} (target < 0.25){note}\n"
    )


def _targets(cells: Mapping[tuple[Path_, int], Cell], levels: Sequence[int]) -> list[str]:
    first = levels[0]
    ours = cells["tierbot", first]
    one = added(ours, cells["baseline", first])
    failed = sum(ours.errors.values())
    lines = [
        f"  {_verdict(one.ttft_ms <= 1.0 and failed == 0)}  tierbot added TTFT p50 at "
        f"c={first}: {one.ttft_ms:+.2f} ms (target <= 1 ms)\n"
    ]
    for level in levels:
        base, ours = cells["baseline", level], cells["tierbot", level]
        mine, theirs = added(ours, base), added(cells["litellm", level], base)
        failed = sum(ours.errors.values()) + (ours.ok == 0)
        lines.append(_compare("added TTFT p50", level, mine.ttft_ms, theirs.ttft_ms, failed))
        lines.append(_compare("CPU per request", level, mine.cpu_ms, theirs.cpu_ms, failed))
    return lines


def _checks(cells: Mapping[tuple[Path_, int], Cell], levels: Sequence[int]) -> list[str]:
    lines = [
        "checks: the fake's CPU ms/req per path (same upstream work?); tierbot's SDK client "
        "CPU ms/req vs the baseline's; listen-queue overflows and the most CPU that other "
        "processes took during a timed run (noise):\n"
    ]
    for level in levels:
        fake = ", ".join(f"{p} {cells[p, level].fake_cpu_ms:.2f}" for p in PATHS)
        client = cells["tierbot", level].load_cpu_ms
        base = cells["baseline", level].load_cpu_ms
        overflows = ", ".join(f"{p} {cells[p, level].overflows}" for p in PATHS)
        other = max(cells[p, level].other_load for p in PATHS)
        errors = ", ".join(
            f"{p} {dict(cells[p, level].errors)}" for p in PATHS if cells[p, level].errors
        )
        lines.append(
            f"  c={level}: fake {fake}; client {client:.2f} vs {base:.2f}; overflows "
            f"{overflows}; other load {other:.0%}{'; errors ' + errors if errors else ''}\n"
        )
    return lines


def render(plan: Sequence[Level], runs: Sequence[Run], setup: str, elapsed_s: float) -> str:
    """The whole report: setup, machine, table, checks and verdicts. A level that not every
    path finished (the run hit its time cap) is reported as not measured."""
    measured = {(r.path, r.concurrency) for r in runs}
    levels = [lv.concurrency for lv in plan if all((p, lv.concurrency) in measured for p in PATHS)]
    missing = [lv.concurrency for lv in plan if lv.concurrency not in levels]
    cells = {
        (path, level): cell_of([r for r in runs if r.path == path and r.concurrency == level])
        for path in PATHS
        for level in levels
    }
    plan_text = ", ".join(f"c={lv.concurrency}: {lv.requests} x {lv.runs} run(s)" for lv in plan)
    out = [
        f"tierbot endpoint benchmark ({elapsed_s:.0f} s): {setup}\n",
        f"plan (timed requests per path, split into runs): {plan_text}\n",
        machine_line() + "\n\n",
        _HEAD,
    ]
    for level in levels:
        out.extend(_row(cells[path, level], cells["baseline", level]) for path in PATHS)
    out.append(
        "\n+p50: TTFT p50 minus the baseline's. end p50: time to the answer's last text. "
        "CPU/req: what the path adds (tierbot: its server process; litellm: its process minus "
        "the baseline's); baseline: [its own SDK client]. own: minus one SDK client's cost, "
        "like for like. Medians over runs.\n\n"
    )
    out.extend(_checks(cells, levels))
    out.append("\ntargets:\n")
    if levels:
        out.extend(_targets(cells, levels))
    out.extend(f"  MISS  c={level}: not measured, the run hit its time cap\n" for level in missing)
    return "".join(out)
