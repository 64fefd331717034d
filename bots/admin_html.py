"""HTML of the admin pages and their server-side SVG charts; every value passes through `esc`."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

from feedback.percentiles import Percentiles
from feedback.report_types import Report
from feedback.review import ConversationView, ReviewLine, TurnView

_STYLE = """
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
nav a{margin-right:1em}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}
.num{text-align:right}.current{background:#fff6d5}.error{color:#a00}
.turn{border:1px solid #ccc;margin:.5em 0;padding:.5em}.msg{white-space:pre-wrap}
form.filters label{margin-right:.8em}svg text{font:12px sans-serif}
"""
_CHART_WIDTH = 520
_LABEL_WIDTH = 130
_BAR_SPACE = 300
_ROW = 24


def esc(value: object) -> str:
    """`value` as text safe inside HTML elements and quoted attributes."""
    return html.escape(str(value), quote=True)


def page(title: str, body: str, *, nav: bool = True) -> str:
    """A whole document: head, style, navigation and `body` (already escaped HTML)."""
    links = (
        '<nav><a href="/admin/review">Review</a><a href="/admin/report">Report</a>'
        '<form method="post" action="/admin/logout" style="display:inline">'
        '<button type="submit">Log out</button></form></nav>'
        if nav
        else ""
    )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)} · '
        f"tierbot admin</title><style>{_STYLE}</style></head><body>{links}"
        f"<h1>{esc(title)}</h1>{body}</body></html>"
    )


def login_page(problem: str | None = None) -> str:
    """The login form; `problem` says why the last attempt failed."""
    error = f'<p class="error" role="alert">{esc(problem)}</p>' if problem else ""
    form = (
        f'{error}<form method="post" action="/admin/login">'
        '<label>Admin token <input type="password" name="token" id="token" '
        'autocomplete="current-password" required autofocus></label> '
        '<button type="submit">Log in</button></form>'
    )
    return page("Log in", form, nav=False)


def error_page(title: str, message: str) -> str:
    """A page that only says what went wrong."""
    return page(title, f'<p class="error">{esc(message)}</p>')


def _num(value: float | None, fmt: str = "{:.2f}") -> str:
    return "–" if value is None else esc(fmt.format(value))


def _model(turn: TurnView) -> str:
    return esc(f"{turn.provider}:{turn.model}") if turn.provider else "–"


def _field(name: str, label: str, value: str, size: int = 8) -> str:
    return (
        f'<label>{esc(label)} <input name="{esc(name)}" id="f-{esc(name)}" '
        f'value="{esc(value)}" size="{size}"></label>'
    )


def filter_form(values: dict[str, str]) -> str:
    """The review filters, filled with the current `values` (name → text)."""
    fields = "".join(
        _field(name, label, values.get(name, ""), size)
        for name, label, size in (
            ("since", "Since", 12),
            ("until", "Until", 12),
            ("channel", "Channel", 9),
            ("tier", "Tier", 3),
            ("reason", "Reason", 14),
            ("rating", "Rating", 8),
        )
    )
    checked = " checked" if values.get("misroute") else ""
    return (
        f'<form class="filters" method="get" action="/admin/review">{fields}'
        f'<label><input type="checkbox" name="misroute" id="f-misroute" value="1"{checked}> '
        'Misrouted only</label> <button type="submit">Filter</button></form>'
    )


def review_page(values: dict[str, str], lines: Sequence[ReviewLine]) -> str:
    """The review page: filters, then one row per turn, newest first."""
    head = (
        "<tr><th>Time</th><th>Channel</th><th>Tier</th><th>Model</th><th>Reasons</th>"
        "<th>Ratings</th><th>Misroute</th><th>Cost USD</th><th>TTFT s</th><th>Outcome</th>"
        "<th>Message</th></tr>"
    )
    rows = "".join(_review_row(line) for line in lines)
    table = f'<table id="turns">{head}{rows}</table>' if lines else "<p>No turns match.</p>"
    return page("Review", filter_form(values) + f"<p>{len(lines)} turns</p>" + table)


def _review_row(line: ReviewLine) -> str:
    t = line.turn
    reasons = " ".join(r.code for r in t.reasons)
    message = (t.message_text or "")[:80]
    return (
        f'<tr class="turn-row"><td><a href="/admin/turn/{esc(t.turn_id)}">'
        f"{esc(t.at.isoformat(timespec='seconds'))}</a></td><td>{esc(t.channel)}</td>"
        f'<td class="num tier">{t.tier}</td><td>{_model(t)}</td><td>{esc(reasons)}</td>'
        f"<td>{esc(' '.join(line.marks.ratings))}</td>"
        f'<td class="misroute">{esc(" ".join(line.marks.misroute_causes))}</td>'
        f'<td class="num">{_num(t.cost_usd, "{:.5f}")}</td><td class="num">{_num(t.ttft_s)}</td>'
        f"<td>{esc(t.outcome)}</td><td>{esc(message)}</td></tr>"
    )


def _turn_box(turn: TurnView, *, current: bool = False) -> str:
    cls = "turn current" if current else "turn"
    return (
        f'<div class="{cls}" id="turn-{esc(turn.turn_id)}"><p>'
        f"{esc(turn.at.isoformat(timespec='seconds'))} · tier {turn.tier} · {_model(turn)} · "
        f"{esc(turn.outcome)}</p>"
        f'<p class="msg user"><b>User:</b> {esc(turn.message_text or "(text not kept)")}</p>'
        f'<p class="msg bot"><b>Bot:</b> {esc(turn.answer_text or "(text not kept)")}</p></div>'
    )


def conversation_page(view: ConversationView) -> str:
    """One turn with the turns of its chat around it, its attempts and its events."""
    t = view.turn
    reasons = "".join(f"<li>{esc(r.code)}: {esc(r.text)}</li>" for r in t.reasons)
    attempts = "".join(
        f"<tr><td>{a.tier}</td><td>{esc(a.provider)}:{esc(a.model)}</td>"
        f'<td>{esc(a.error or "ok")}</td><td class="num">{_num(a.latency_s)}</td></tr>'
        for a in view.attempts
    )
    events = "".join(
        f"<li>{esc(e.at.isoformat(timespec='seconds'))} {esc(e.kind)} "
        f"{esc(e.cause or '')} {esc(e.rating or '')}</li>"
        for e in view.events
    )
    body = (
        f"<p>Turn {esc(t.turn_id)} · chat {esc(t.chat_hash[:12])} · confidence "
        f"{_num(t.confidence)} · cost {_num(t.cost_usd, '{:.5f}')} USD</p>"
        f"<h2>Reasons</h2><ul>{reasons}</ul>"
        f'<h2>Conversation</h2><div id="conversation">'
        + "".join(_turn_box(b) for b in view.before)
        + _turn_box(t, current=True)
        + "".join(_turn_box(a) for a in view.after)
        + "</div><h2>Attempts</h2><table><tr><th>Tier</th><th>Model</th><th>Result</th>"
        f'<th>Latency s</th></tr>{attempts}</table><h2>Events</h2><ul id="events">{events}</ul>'
    )
    return page("Turn", body)


@dataclass(frozen=True, slots=True, kw_only=True)
class Bar:
    """One bar of a chart: its label, its length and the text written after it."""

    label: str
    value: float
    text: str


def bar_chart(chart_id: str, title: str, bars: Sequence[Bar]) -> str:
    """A horizontal bar chart as inline SVG, scaled to its largest bar."""
    top = max((b.value for b in bars), default=0.0) or 1.0
    height = _ROW * len(bars) + 30
    parts = [
        f'<svg id="{esc(chart_id)}" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'width="{_CHART_WIDTH}" height="{height}" viewBox="0 0 {_CHART_WIDTH} {height}">'
        f"<title>{esc(title)}</title>"
        f'<text x="0" y="14" font-weight="bold">{esc(title)}</text>'
    ]
    for i, bar in enumerate(bars):
        y = 24 + i * _ROW
        width = max(bar.value, 0.0) / top * _BAR_SPACE
        parts.append(
            f'<text x="0" y="{y + 14}">{esc(bar.label)}</text>'
            f'<rect x="{_LABEL_WIDTH}" y="{y + 2}" width="{width:.1f}" height="{_ROW - 6}" '
            f'fill="#4a7bd0"><title>{esc(bar.label)}: {esc(bar.text)}</title></rect>'
            f'<text class="value" x="{_LABEL_WIDTH + width + 6:.1f}" y="{y + 14}">'
            f"{esc(bar.text)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _latency_bars(report: Report) -> list[Bar]:
    bars: list[Bar] = []
    for line in report.tiers:
        p: Percentiles = line.ttft
        for name, value in (("p50", p.p50), ("p95", p.p95), ("p99", p.p99)):
            if value is not None:
                bars.append(
                    Bar(label=f"tier {line.tier} {name}", value=value, text=f"{value:.2f} s")
                )
    return bars


def report_page(period: dict[str, str], report: Report) -> str:
    """The report: tier mix, cost against the top-tier baseline and TTFT percentiles."""
    mix = [
        Bar(
            label=f"tier {t.tier}",
            value=t.requests,
            text=f"{t.requests} ({t.share:.0%})",
        )
        for t in report.tiers
    ]
    s = report.savings
    cost = [
        Bar(label="actual", value=s.cost_usd, text=f"{s.cost_usd:.4f} USD"),
        Bar(label="all on top tier", value=s.if_top_usd, text=f"{s.if_top_usd:.4f} USD"),
        Bar(label="all on mid tier", value=s.if_mid_usd, text=f"{s.if_mid_usd:.4f} USD"),
    ]
    form = (
        '<form method="get" action="/admin/report">'
        + _field("since", "Since", period.get("since", ""), 12)
        + _field("until", "Until", period.get("until", ""), 12)
        + ' <button type="submit">Show</button></form>'
    )
    summary = (
        f'<p id="summary">{report.requests} requests · {report.cost_usd:.4f} USD · saved '
        f"{s.saved_vs_top_usd:.4f} USD against the top tier ({s.unpriced_top} turns unpriced)</p>"
    )
    charts = (
        bar_chart("tier-mix", "Tier mix (requests)", mix)
        + bar_chart("cost", "Cost against baselines", cost)
        + bar_chart("latency", "Time to first token per tier", _latency_bars(report))
    )
    return page("Report", form + summary + charts)
