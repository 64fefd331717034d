"""Text tables and JSON for review lists, one conversation, and the period report."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime

from feedback.percentiles import Percentiles
from feedback.report_types import Report
from feedback.review import ConversationView, ReviewLine, TurnView


def to_json(value: object) -> str:
    """One JSON document for a report, a conversation or a list of review lines."""
    return json.dumps(_plain(value), ensure_ascii=False, indent=2)


def _plain(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns separated by two spaces; numbers right-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [_numeric([row[i] for row in rows]) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, cells)])


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numeric(column: list[object]) -> bool:
    """A column of numbers (blanks allowed) is right-aligned."""
    present = [v for v in column if v is not None]
    return bool(present) and all(_is_number(v) for v in present)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:,.2f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def review_text(lines: Sequence[ReviewLine]) -> str:
    """The review list as a table, newest first."""
    if not lines:
        return "no turns match"
    rows = [
        (
            line.turn.at,
            line.turn.turn_id,
            f"{line.turn.channel}/{line.turn.surface}",
            line.turn.tier,
            line.turn.confidence,
            line.turn.outcome,
            line.turn.cost_usd,
            line.turn.ttft_s,
            " ".join(r.code for r in line.turn.reasons),
            " ".join(line.marks.ratings),
            " ".join(line.marks.misroute_causes),
        )
        for line in lines
    ]
    headers = ("time", "turn", "channel", "tier", "conf", "outcome", "cost $", "ttft s")
    return table((*headers, "reasons", "rating", "misroute"), rows)


def _turn_block(turn: TurnView, marker: str) -> list[str]:
    head = (
        f"{marker} {turn.at:%Y-%m-%d %H:%M:%S}  {turn.turn_id}  tier {turn.tier}  "
        f"{turn.provider or '-'}:{turn.model or '-'}  {turn.outcome}  ${turn.cost_usd:.6f}"
    )
    message = "(text not retained)" if turn.message_text is None else turn.message_text
    answer = "(text not retained)" if turn.answer_text is None else turn.answer_text
    return [head, f"    user: {message}", f"    bot:  {answer}"]


def conversation_text(view: ConversationView) -> str:
    """One turn in full between the turns of its chat before and after it."""
    t = view.turn
    s = t.signals
    lines = [f"chat {t.chat_hash}  user {t.user_hash}  conversation {t.conversation_id}", ""]
    for before in view.before:
        lines.extend(_turn_block(before, " "))
    lines.extend(_turn_block(t, ">"))
    lines.append(
        f"    signals: complexity={s.complexity:.2f} frustration={s.frustration:.2f} "
        f"rephrase={s.rephrase:.2f} history_tokens={s.history_tokens}   "
        f"confidence={t.confidence:.2f}"
    )
    lines.append(
        f"    tokens {t.tokens_in}/{t.tokens_out}  ttft {_cell(t.ttft_s)} s  "
        f"total {t.total_s:.3f} s"
    )
    lines.extend(f"    reason [{r.code}] {r.text}" for r in t.reasons)
    for a in view.attempts:
        lines.append(
            f"    attempt tier {a.tier} {a.provider}:{a.model} "
            f"{a.error or 'ok'} {a.latency_s:.3f} s"
        )
    for e in view.events:
        what = e.rating or e.cause or ""
        lines.append(f"    event {e.at:%H:%M:%S} {e.kind} {what} {e.detail}".rstrip())
    for after in view.after:
        lines.extend(_turn_block(after, " "))
    return "\n".join(lines)


def _pct(p: Percentiles) -> tuple[float | None, float | None, float | None]:
    return p.p50, p.p95, p.p99


Section = tuple[str, Sequence[str], list[Sequence[object]]]

_TIER_HEADERS = ("tier", "requests", "share", "cost $", "misrouted", "rate")
_LATENCY_HEADERS = ("ttft p50", "p95", "p99", "total p50", "p95", "p99")
_PROVIDER_HEADERS = ("provider", "model", "calls", "errors", "rate", "skipped", "trips")


def _summary(report: Report) -> list[str]:
    since = "start" if report.since is None else f"{report.since:%Y-%m-%d %H:%M}"
    until = "now" if report.until is None else f"{report.until:%Y-%m-%d %H:%M}"
    sv = report.savings
    outcomes = ", ".join(f"{k} {v}" for k, v in report.outcomes.items()) or "none"
    return [
        f"period {since} .. {until} (UTC)   requests {report.requests}   ({outcomes})",
        f"cost ${report.cost_usd:.4f}   users {report.users}   "
        f"per user ${report.cost_per_user_usd:.6f}",
        f"savings ({sv.basis} prices): vs top tier ${sv.saved_vs_top_usd:.4f} "
        f"(all-top ${sv.if_top_usd:.4f}, {sv.unpriced_top} unpriced); "
        f"vs mid tier ${sv.saved_vs_mid_usd:.4f} "
        f"(all-mid ${sv.if_mid_usd:.4f}, {sv.unpriced_mid} unpriced)",
    ]


def _sections(report: Report) -> list[Section]:
    tiers: list[Sequence[object]] = [
        (t.tier, t.requests, t.share, t.cost_usd, t.misrouted, t.misroute_rate)
        for t in report.tiers
    ]
    latency: list[Sequence[object]] = [
        (t.tier, *_pct(t.ttft), *_pct(t.total)) for t in report.tiers
    ]
    providers: list[Sequence[object]] = [
        (p.provider, p.model, p.calls, p.errors, p.error_rate, p.skipped_open, p.breaker_trips)
        for p in report.providers
    ]
    errors: list[Sequence[object]] = [
        (p.provider, p.model, name, n)
        for p in report.providers
        for name, n in p.errors_by_class.items()
    ]
    return [
        ("tiers", _TIER_HEADERS, tiers),
        ("latency (seconds)", ("tier", *_LATENCY_HEADERS), latency),
        ("misroutes", ("tier", "cause", "turns", "rate"), [
            (m.tier, m.cause, m.turns, m.rate) for m in report.misroutes
        ]),
        ("escalations", ("cause", "escalations", "cost $"), [
            (e.cause, e.escalations, e.cost_usd) for e in report.escalations
        ]),
        ("providers", _PROVIDER_HEADERS, providers),
        ("provider errors", ("provider", "model", "error", "count"), errors),
        ("surfaces", ("channel", "surface", "requests", "cost $"), [
            (s.channel, s.surface, s.requests, s.cost_usd) for s in report.surfaces
        ]),
        ("top spenders", ("user", "requests", "cost $"), [
            (u.user_hash, u.requests, u.cost_usd) for u in report.top_spenders
        ]),
        ("events", ("kind", "count"), list(report.events.items())),
    ]  # fmt: skip


def report_text(report: Report) -> str:
    """The report as a summary and titled text tables."""
    parts = _summary(report)
    for title, headers, rows in _sections(report):
        parts.append(f"\n{title}")
        parts.append(table(headers, rows) if rows else "  none")
    return "\n".join(parts)
