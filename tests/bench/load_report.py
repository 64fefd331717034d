"""The load benchmark's figures: read back from the feedback store (PostgreSQL) and the workers'
`/metrics`, combined with what the generator saw, and rendered as a table.

"Answered once" means the message got exactly one final message with feedback buttons: its own
turn's, or (answered together) that of an earlier message it was coalesced with; the provider
floor of an answer is what the fake provider alone takes
before the channel can show it (Telegram streams: the model's time to first token; WhatsApp
sends the whole answer: the model's time to its last token).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
from prometheus_client.parser import text_string_to_metric_families

from tests.bench.load_driver import LoadResult, Message
from tests.bench.load_mix import PACES


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnRow:
    """What the feedback store holds about one turn."""

    tier: int
    model: str | None
    cost_usd: float
    cost_if_top: float | None
    ttft_s: float | None
    total_s: float
    outcome: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreFacts:
    """The feedback store after the run."""

    turns: dict[str, TurnRow]
    events: Counter[str]
    """Event counts by `kind` or `kind:cause`."""
    attempt_errors: Counter[str]


async def read_store(dsn: str) -> StoreFacts:
    """Turns, event counts and failed provider attempts from the run's database."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT turn_id, tier, model, cost_usd, cost_if_top, ttft_s, total_s, outcome"
            " FROM turns"
        )
        events = await conn.fetch("SELECT kind, cause, count(*) AS n FROM events GROUP BY 1, 2")
        errors = await conn.fetch(
            "SELECT model, error, count(*) AS n FROM attempts WHERE error IS NOT NULL GROUP BY 1, 2"
        )
    finally:
        await conn.close()
    turns = {
        r["turn_id"]: TurnRow(
            tier=r["tier"],
            model=r["model"],
            cost_usd=r["cost_usd"],
            cost_if_top=r["cost_if_top"],
            ttft_s=r["ttft_s"],
            total_s=r["total_s"],
            outcome=r["outcome"],
        )
        for r in rows
    }
    kinds: Counter[str] = Counter()
    for r in events:
        kinds[r["kind"]] += r["n"]
        if r["cause"]:
            kinds[f"{r['kind']}:{r['cause']}"] += r["n"]
    return StoreFacts(
        turns=turns,
        events=kinds,
        attempt_errors=Counter({f"{r['model']}:{r['error']}": r["n"] for r in errors}),
    )


async def scrape_cost(urls: Sequence[str], token: str) -> float:
    """`tierbot_cost_usd_total` summed over the processes' `/metrics`."""
    total = 0.0
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        for url in urls:
            async with session.get(url, headers=headers) as response:
                text = await response.text()
            for family in text_string_to_metric_families(text):
                if family.name == "tierbot_cost_usd":
                    total += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return total


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank `q`-th percentile; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def spread(values: Sequence[float], scale: float = 1.0) -> dict[str, float | int | None]:
    """Count, p50, p99 and max of `values` times `scale`, rounded."""

    def at(q: float) -> float | None:
        found = percentile(values, q)
        return None if found is None else round(found * scale, 4)

    return {"n": len(values), "p50": at(50), "p99": at(99), "max": at(100)}


def _floor_s(message: Message, row: TurnRow | None, speed: float) -> float | None:
    pace = PACES.get(row.model or "") if row is not None else None
    if pace is None:
        return None
    return (pace.ttft_s if message.channel == "telegram" else pace.full_s()) / speed


def message_figures(result: LoadResult, store: StoreFacts, speed: float) -> dict[str, Any]:
    """Counts and latency spreads of the messages."""
    sent = result.messages
    acked = [m for m in sent if m.acked is not None]
    once = [m for m in acked if m.replies == 1]
    own = [m for m in once if m.answers == 1]
    counts = {
        "planned": result.planned,
        "sent": len(sent),
        "skipped": result.planned - len(sent),
        "acked": len(acked),
        "not_acked": len(sent) - len(acked),
        "non_2xx_responses": sum(1 for m in sent for s in m.statuses if not 200 <= s < 300),
        "answered_once": len(once),
        "answered_together": sum(1 for m in once if m.answers == 0),
        "answered_twice_or_more": sum(1 for m in acked if m.answers > 1),
        "duplicate_answers": sum(max(0, m.answers - 1) for m in acked),
        "unanswered": sum(1 for m in acked if m.replies == 0),
        "apologies": sum(m.apologies for m in acked),
        "refusals": sum(m.refusals for m in acked),
        "turn_missing_in_store": sum(1 for m in own if m.turn not in store.turns),
    }
    lost = [
        {
            "chat": m.chat,
            "seq": m.seq,
            "channel": m.channel,
            "kind": m.kind,
            "posted_s": round(m.posted - result.started, 3),
            "apologies": m.apologies,
            "first_visible": m.first_visible is not None,
        }
        for m in acked
        if m.replies == 0
    ]
    visible = {"all": [m for m in acked if m.first_visible is not None]}
    for channel in ("telegram", "whatsapp"):
        visible[channel] = [m for m in visible["all"] if m.channel == channel]
    added, outside = [], []
    for m in own:
        row = store.turns.get(m.turn)
        floor = _floor_s(m, row, speed)
        if floor is not None and m.first_answer is not None:
            added.append(m.first_answer - m.posted - floor)
        if row is not None and m.final is not None:
            outside.append(m.final - m.posted - row.total_s)
    latency = {
        "ack_ms": spread([m.ack_s for m in acked if m.ack_s is not None], 1000),
        "baseline_ack_ms": spread([m.baseline_ack for m in sent if m.baseline_ack], 1000),
        "first_visible_s": {
            name: spread([m.first_visible - m.posted for m in ms if m.first_visible])
            for name, ms in visible.items()
        },
        "final_s": spread([m.final - m.posted for m in once if m.final is not None]),
        "added_over_provider_s": spread(added),
        "outside_llm_s": spread(outside),
        "store_first_token_s": spread([r.ttft_s for r in store.turns.values() if r.ttft_s]),
        "store_turn_total_s": spread([r.total_s for r in store.turns.values()]),
    }
    return {"messages": counts, "latency": latency, "unanswered_detail": lost[:20]}


def throughput(result: LoadResult) -> dict[str, float | None]:
    """Messages acknowledged and answered per second, each over the span from the first message
    to the last acknowledgement or answer; and how long the load ran."""
    sent = result.messages
    if not sent:
        return {"acked_per_s": None, "answered_per_s": None, "span_s": None, "load_s": None}
    first = min(m.posted for m in sent)
    acks = [m.acked for m in sent if m.acked is not None]
    finals = [m.final for m in sent if m.final is not None]
    acked_span = max(acks) - first if acks else 0.0
    answered_span = max(finals) - first if finals else 0.0
    return {
        "acked_per_s": round(len(acks) / acked_span, 2) if acked_span else None,
        "answered_per_s": round(len(finals) / answered_span, 2) if answered_span else None,
        "span_s": round(answered_span, 2),
        "load_s": round(result.ended - result.started, 2),
    }


def cost_and_tiers(store: StoreFacts, acked: int, metrics_usd: float | None) -> dict[str, Any]:
    """Spend per 1,000 acknowledged messages and the share of turns per tier."""
    rows = list(store.turns.values())
    total = sum(r.cost_usd for r in rows)
    top = sum(r.cost_if_top or 0.0 for r in rows)
    tiers: dict[str, dict[str, float | int]] = {}
    for tier in sorted({r.tier for r in rows}):
        mine = [r for r in rows if r.tier == tier]
        tiers[str(tier)] = {
            "turns": len(mine),
            "share": round(len(mine) / len(rows), 4),
            "cost_usd": round(sum(r.cost_usd for r in mine), 6),
        }
    per_k = total / acked * 1000 if acked else None
    return {
        "cost": {
            "turns": len(rows),
            "total_usd": round(total, 6),
            "per_1000_messages_usd": None if per_k is None else round(per_k, 4),
            "if_all_top_tier_usd": round(top, 6),
            "metrics_total_usd": None if metrics_usd is None else round(metrics_usd, 6),
        },
        "tiers": tiers,
        "models": dict(Counter(r.model or "none" for r in rows)),
    }


def _fmt(value: object, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}{unit}" if abs(value) < 10 else f"{value:.1f}{unit}"
    return f"{value}{unit}"


def render(report: Mapping[str, Any]) -> str:
    """The human-readable table of a report."""
    lat, msgs = report["latency"], report["messages"]
    lines = [f"machine: {report['machine']['line']}", f"config: {report['config']['line']}"]
    lines.append("messages: " + ", ".join(f"{k} {v}" for k, v in msgs.items()))
    lines.append("mix (sent): " + ", ".join(f"{k} {v}" for k, v in report["mix"].items()))
    lines.append(f"{'figure':34} {'n':>6} {'p50':>9} {'p99':>9} {'max':>9}")
    rows = [
        ("ack, tierbot (ms)", lat["ack_ms"]),
        ("ack, bare aiohttp baseline (ms)", lat["baseline_ack_ms"]),
        ("first visible, all (s)", lat["first_visible_s"]["all"]),
        ("first visible, telegram (s)", lat["first_visible_s"]["telegram"]),
        ("first visible, whatsapp (s)", lat["first_visible_s"]["whatsapp"]),
        ("final answer (s)", lat["final_s"]),
        ("added over provider floor (s)", lat["added_over_provider_s"]),
        ("final answer minus its LLM call (s)", lat["outside_llm_s"]),
        ("store: turn's first token (s)", lat["store_first_token_s"]),
        ("store: turn's total (s)", lat["store_turn_total_s"]),
    ]
    for name, s in rows:
        lines.append(
            f"{name:34} {s['n']:>6} {_fmt(s['p50']):>9} {_fmt(s['p99']):>9} {_fmt(s['max']):>9}"
        )
    base, ours = lat["baseline_ack_ms"]["p50"], lat["ack_ms"]["p50"]
    if base and ours:
        lines.append(f"ack p50 added over the baseline: {ours - base:.2f} ms ({ours / base:.1f}x)")
    t = report["throughput"]
    lines.append(
        f"throughput: {_fmt(t['acked_per_s'])} msg/s acknowledged, "
        f"{_fmt(t['answered_per_s'])} msg/s answered (over {_fmt(t['span_s'])} s)"
    )
    c = report["cost"]
    lines.append(
        f"cost: {_fmt(c['per_1000_messages_usd'])} USD per 1,000 messages "
        f"(store {_fmt(c['total_usd'])} USD over {c['turns']} turns; /metrics "
        f"{_fmt(c['metrics_total_usd'])}; all on the top tier {_fmt(c['if_all_top_tier_usd'])})"
    )
    tiers = ", ".join(
        f"tier {k} {v['share']:.1%} ({v['turns']})" for k, v in report["tiers"].items()
    )
    lines.append(f"tier mix: {tiers or '-'}")
    q = report["queue"]
    lines.append(
        f"queue after the load: emptied in {q['settle_s']:.1f} s, depth {q['depth']}, "
        f"dead letters {q['dead']}, dropped pending {q['dropped_pending']}"
    )
    lines.append("events: " + (", ".join(f"{k} {v}" for k, v in report["events"].items()) or "-"))
    lines.append(
        f"{'process':34} {'RSS start':>9} {'peak':>9} {'end':>9} {'CPU s':>7}  (MiB; in the load)"
    )
    for name, r in report["processes"].items():
        lines.append(
            f"{name:34} {r['rss_start_mib']:>9.1f} {r['rss_peak_mib']:>9.1f} "
            f"{r['rss_end_mib']:>9.1f} {r['cpu_s']:>7.1f}"
        )
    u = report["cpu"]
    lines.append(
        f"CPU in the load window ({u['window_s']:.0f} s): machine busy {u['machine_busy_s']:.0f} "
        f"of {u['machine_capacity_s']:.0f} CPU-s; these processes {u['ours_s']:.0f}, everything "
        f"else (PostgreSQL included) {u['others_s']:.0f}; load average {u['loadavg_1m_start']} "
        f"-> {u['loadavg_1m_end']}"
    )
    for name, log in report["logs"].items():
        if log["levels"]:
            levels = ", ".join(f"{k} {v}" for k, v in log["levels"].items())
            lines.append(f"log {name}: {levels}")
            for level, samples in log["samples"].items():
                lines.extend(f"    {level}: {sample}" for sample in samples[:3])
    return "\n".join(lines)
