"""Benchmark: decision latency on a 50-turn conversation, and `route explain` over 10,000 lines.

Run on demand: `python3 -m uv run python -m tests.bench.bench_decide`. Prints medians and
percentiles, plus the ratio to a baseline measured in the same run (one VADER sentiment call on
the same message, the cost floor of any lexicon-based frustration signal).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from routing.policy import build_policy
from routing.router import Router
from routing.settings import load_routing_settings
from routing.signals.complexity import load_complexity_model
from routing.types import Conversation, Turn

USER_LINES = [
    "How do I change the shipping address on my order?",
    "It still shows the old address, I already tried that twice!!",
    "Can you explain why my invoice total is higher than the cart total?",
    "ok thanks. and what about the refund for the broken item?",
    "that's not what I asked, you didn't answer my question",
]
ASSISTANT_LINE = "You can change it under Orders → Details → Edit address before the parcel ships."


def fifty_turns() -> Conversation:
    """A realistic support chat: 25 user turns and 25 answers, one minute apart."""
    turns = []
    for i in range(50):
        if i % 2 == 0:
            turns.append(Turn(role="user", text=USER_LINES[(i // 2) % 5], ts=60.0 * i))
        else:
            turns.append(Turn(role="assistant", text=ASSISTANT_LINE, ts=60.0 * i, tier=1))
    turns.append(Turn(role="user", text=USER_LINES[1], ts=3000.0))
    return Conversation(turns=tuple(turns[-50:]), user="u1", channel="telegram")


def percentiles(fn: Callable[[], object], n: int) -> tuple[float, float]:
    """Return (p50, p99) of `fn` in milliseconds over n calls after a warm-up."""
    for _ in range(200):
        fn()
    samples = []
    for _ in range(n):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    cuts = statistics.quantiles(samples, n=100)
    return statistics.median(samples), cuts[98]


def explain_10k(router_line: str) -> float:
    """Time `tierbot route explain` over 10,000 JSONL lines, process start included."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.jsonl"
        path.write_text((router_line + "\n") * 10_000, encoding="utf-8")
        start = time.perf_counter()
        with path.open("rb") as stdin:
            subprocess.run(
                [sys.executable, "-m", "bots", "route", "explain"],
                stdin=stdin,
                stdout=subprocess.DEVNULL,
                check=True,
            )
        return time.perf_counter() - start


def main() -> None:
    """Print the figures."""
    router = Router(
        policy=build_policy(load_routing_settings()), complexity=load_complexity_model()
    )
    conversation = fifty_turns()
    vader = SentimentIntensityAnalyzer()
    last = USER_LINES[1]
    base50, base99 = percentiles(lambda: vader.polarity_scores(last), 5000)
    p50, p99 = percentiles(lambda: router.decide(conversation), 5000)
    out = sys.stdout
    out.write("decision on a 50-turn conversation (5,000 calls)\n")
    out.write(f"  decide:          p50 {p50:.3f} ms   p99 {p99:.3f} ms   (targets 0.3 / 2)\n")
    out.write(f"  baseline VADER:  p50 {base50:.3f} ms   p99 {base99:.3f} ms\n")
    out.write(f"  ratio decide/baseline p50: {p50 / base50:.1f}x\n")
    line = json.dumps(
        {
            "id": 1,
            "messages": [
                {"role": "user", "content": t.text}
                if t.role == "user"
                else {"role": "assistant", "content": t.text, "tier": 1}
                for t in conversation.turns[-10:]
            ],
        }
    )
    seconds = explain_10k(line)
    out.write(f"route explain, 10,000 ten-turn lines: {seconds:.1f} s (target < 30 s)\n")


if __name__ == "__main__":
    main()
