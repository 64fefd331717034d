"""On-demand evaluation of the frustration and rephrase signals against labelled public data.

Run: python3 -m uv run python -m tests.bench.eval_signals [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import timeit
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from routing.errors import EvaluationError
from routing.settings import RoutingSettings
from routing.signals.frustration import NEGATIVE_SENTIMENT, frustration, sentiment
from routing.signals.rephrase import rephrase
from routing.types import Conversation, Role, Turn

DEFAULT_DATA: Final = Path("/work/shared/data/signals")
REACTIONS: Final = "user-reactions-to-errors.jsonl"
TWEETS: Final = "sentiment-tweets.tsv"

REPHRASE: Final = frozenset({"Repeat or Rephrase"})
MAKE_AWARE: Final = frozenset({"Make Aware With Correction", "Make Aware Without Correction"})
# Which reactions count as frustrated. "brief" is the mapping we were asked for; "aware" drops
# rephrases, which are mostly polite and are the rephrase signal's job; "noticed" is every
# reaction showing the user saw the error (all but "Ignore and Continue").
FRUSTRATION_MAPPINGS: Final = {
    "brief": MAKE_AWARE | REPHRASE,
    "aware": MAKE_AWARE,
    "noticed": MAKE_AWARE | REPHRASE | {"Ask for Clarification"},
}
RECOMMENDED_FRUSTRATION: Final = 0.5
RECOMMENDED_REPHRASE: Final = 0.65
RECOMMENDED_WINDOW_TURNS: Final = 3

_MARKER: Final = re.compile(r"(<user>|<system>)")
# ConvAI logs prefix each turn with its index ("12 i am great ."); it is not part of the text.
_TURN_INDEX: Final = re.compile(r"^\d{1,2} (?=\D)")


@dataclass(frozen=True, slots=True, kw_only=True)
class Example:
    """One labelled reaction: the conversation ending in it, and how annotators typed it."""

    conversation: Conversation
    reaction_type: str


def load_examples(path: Path) -> list[Example]:
    """Read the user-reactions JSONL into conversations that end with the user's reaction."""
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            row = json.loads(line)
            turns = _context_turns(row["context"] + "<system>" + row["error_text"])
            turns.append(_turn("user", row["user_reaction"]))
            reaction_type = str(row["user_reaction_type"])
        except (ValueError, KeyError, TypeError) as exc:
            raise EvaluationError(f"{path}:{number}: unusable row ({exc})") from exc
        conversation = Conversation(turns=tuple(turns))
        examples.append(Example(conversation=conversation, reaction_type=reaction_type))
    return examples


def _context_turns(context: str) -> list[Turn]:
    """Split `<user> ... <system> ...` text into turns, dropping an exchange logged twice in a row.

    The corpus repeats the opening exchange of many ConvAI chats; that is a logging artefact,
    and left in, it reads as the user repeating themselves.
    """
    turns: list[Turn] = []
    role: Role | None = None
    for part in _MARKER.split(context):
        if part in ("<user>", "<system>"):
            role = "user" if part == "<user>" else "assistant"
        elif role is not None and part.strip():
            turns.append(_turn(role, part))
            if len(turns) >= 4 and turns[-2:] == turns[-4:-2] and turns[-1].role == "assistant":
                del turns[-2:]
    return turns


def _turn(role: Role, text: str) -> Turn:
    return Turn(role=role, text=_TURN_INDEX.sub("", text.strip()))


def load_tweets(path: Path) -> list[tuple[float, str]]:
    """Read (mean human rating, text) pairs from the tab-separated tweets file."""
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split("\t", 2)
        try:
            pairs.append((float(fields[1]), fields[2]))
        except (IndexError, ValueError) as exc:
            raise EvaluationError(f"{path}:{number}: unusable row ({exc})") from exc
    return pairs


def ordinary_turns(examples: Sequence[Example]) -> list[Conversation]:
    """Return every distinct conversation that ends in a user turn before the error.

    These turns mostly follow ordinary answers, so how often a signal fires on them
    approximates its false-alarm rate in everyday traffic.
    """
    seen: set[tuple[Turn, ...]] = set()
    for example in examples:
        before_error = example.conversation.turns[:-2]
        for end, turn in enumerate(before_error, start=1):
            if turn.role == "user":
                seen.add(before_error[:end])
    return [Conversation(turns=turns) for turns in sorted(seen, key=len)]


def _row(
    scores: Sequence[float], gold: Sequence[bool], ordinary: Sequence[float], at: float
) -> str:
    flagged = [s >= at for s in scores]
    tp = sum(f and g for f, g in zip(flagged, gold, strict=True))
    precision = tp / sum(flagged) if any(flagged) else 0.0
    recall = tp / sum(gold)
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    alarms = sum(s >= at for s in ordinary) / len(ordinary)
    counts = f"{tp:3d}/{sum(flagged):<3d}"
    return f"{at:4.2f} {precision:5.2f} {recall:6.2f} {f1:5.2f} {counts} {alarms:8.1%}"


_HEADER: Final = "thr   prec recall    f1  tp/flag  ordinary"


def report_rephrase(
    examples: Sequence[Example], ordinary: Sequence[Conversation], settings: RoutingSettings
) -> list[str]:
    """Precision/recall of the score against "Repeat or Rephrase", over windows and thresholds."""
    gold = [e.reaction_type in REPHRASE for e in examples]
    lines = [f"rephrase: {sum(gold)} of {len(gold)} reactions are rephrases", f"  window {_HEADER}"]
    notes = {
        (settings.rephrase_window_turns, settings.rephrase_threshold): "settings default",
        (RECOMMENDED_WINDOW_TURNS, RECOMMENDED_REPHRASE): "recommended",
    }
    seconds = settings.rephrase_window_minutes * 60.0
    for window in sorted({1, 2, RECOMMENDED_WINDOW_TURNS, settings.rephrase_window_turns}):

        def score(c: Conversation, window: int = window) -> float:
            return rephrase(c, window_turns=window, window_seconds=seconds, threshold=1.0).score

        scores = [score(e.conversation) for e in examples]
        background = [score(c) for c in ordinary]
        for threshold in (0.5, 0.6, 0.65, 0.7, 0.8, 0.9):
            note = notes.get((window, threshold), "")
            lines.append(
                f"  {window:6d} {_row(scores, gold, background, threshold)}  {note}".rstrip()
            )
    verbatim = sum(not g and _repeats_verbatim(e) for e, g in zip(examples, gold, strict=True))
    lines.append(f"  non-rephrase reactions that repeat an earlier user turn verbatim: {verbatim}")
    return lines


def _repeats_verbatim(example: Example) -> bool:
    users = [t.text.casefold().strip(" .?!") for t in example.conversation.user_turns()]
    return len(users[-1]) > 5 and users[-1] in users[:-1]


def report_frustration(
    examples: Sequence[Example], ordinary: Sequence[Conversation], settings: RoutingSettings
) -> list[str]:
    """Scores per reaction type, then precision/recall under each label mapping."""
    results = [frustration(e.conversation) for e in examples]
    threshold = settings.frustration_threshold
    lines = [f"frustration by reaction type    n  mean  >={threshold}  top reasons"]
    for kind in sorted({e.reaction_type for e in examples}):
        picked = [r for r, e in zip(results, examples, strict=True) if e.reaction_type == kind]
        codes = Counter(reason.code for result in picked for reason in result.reasons)
        top = ", ".join(f"{code} {n}" for code, n in codes.most_common(3))
        mean = statistics.fmean(r.score for r in picked)
        high = sum(r.score >= threshold for r in picked)
        lines.append(f"  {kind:29s} {len(picked):3d}  {mean:4.2f}  {high:6d}  {top}")
    lines.append(
        f"  same reaction text labelled both clarification and make-aware: {_overlap(examples)}"
    )
    lines.append(f"  mapping {_HEADER}")
    scores = [r.score for r in results]
    background = [frustration(c).score for c in ordinary]
    for name, positive in FRUSTRATION_MAPPINGS.items():
        gold = [e.reaction_type in positive for e in examples]
        for at in (0.3, 0.4, 0.5, 0.6):
            note = "settings default" if at == threshold else ""
            note += ", recommended" if at == RECOMMENDED_FRUSTRATION else ""
            row = f"  {name:7s} {_row(scores, gold, background, at)}  {note.strip(', ')}"
            lines.append(row.rstrip())
    return lines


def _overlap(examples: Sequence[Example]) -> int:
    """Count reaction texts that annotators gave both a clarification and a make-aware label."""
    labels: dict[str, set[str]] = {}
    for example in examples:
        text = example.conversation.turns[-1].text.casefold().strip(" .?!")
        labels.setdefault(text, set()).add(example.reaction_type)
    clarify = "Ask for Clarification"
    return sum(1 for kinds in labels.values() if clarify in kinds and kinds & MAKE_AWARE)


def report_sentiment(tweets: Sequence[tuple[float, str]]) -> list[str]:
    """Pearson r of VADER's compound with the mean human rating, and a check of the fast path."""
    compounds = [sentiment(text) for _, text in tweets]
    r = statistics.correlation([rating for rating, _ in tweets], compounds)
    # frustration() skips VADER when a message cannot score negative; check it never misses.
    missed = sum(
        (c <= NEGATIVE_SENTIMENT)
        != any(x.code == "negative_sentiment" for x in frustration(_single(text)).reasons)
        for c, (_, text) in zip(compounds, tweets, strict=True)
    )
    return [
        f"sentiment  Pearson r = {r:.3f} over {len(tweets)} tweets (VADER paper: 0.88)",
        f"  negative_sentiment reason disagrees with sentiment() on {missed} tweets",
    ]


def _single(text: str) -> Conversation:
    return Conversation(turns=(Turn(role="user", text=text),))


def report_timing(
    examples: Sequence[Example], ordinary: Sequence[Conversation], settings: RoutingSettings
) -> list[str]:
    """Per-call time of each signal on the reactions and on the ordinary turns."""
    window = settings.rephrase_window_turns
    seconds = settings.rephrase_window_minutes * 60.0

    def rephrase_call(c: Conversation) -> object:
        return rephrase(c, window_turns=window, window_seconds=seconds, threshold=1.0)

    calls: dict[str, Callable[[Conversation], object]] = {
        "frustration": frustration,
        f"rephrase ({window} turns)": rephrase_call,
    }
    reactions = [e.conversation for e in examples]
    lines = ["timing per call (µs)            median    p90    max"]
    for name, call in calls.items():
        for label, conversations in (("reactions", reactions), ("ordinary", ordinary)):
            samples = [_time(call, c) for c in conversations]
            p90 = statistics.quantiles(samples, n=10)[-1]
            median = statistics.median(samples)
            lines.append(f"  {name:18s} {label:9s} {median:6.1f} {p90:6.1f} {max(samples):6.1f}")
    return lines


def _time(call: Callable[[Conversation], object], conversation: Conversation) -> float:
    """Microseconds per call: the best of 5 runs of 10 calls, to discount a busy machine."""
    runs = timeit.repeat(lambda: call(conversation), number=10, repeat=5)
    return min(runs) / 10 * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    """Print the evaluation tables; return the process exit status."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="directory of the data")
    args = parser.parse_args(argv)
    defaults = RoutingSettings.model_construct()  # declared defaults; the environment is not read
    examples = load_examples(args.data / REACTIONS)
    ordinary = ordinary_turns(examples)
    tweets = load_tweets(args.data / TWEETS)
    header = (
        f"{len(examples)} labelled reactions to assistant errors; {len(ordinary)} ordinary user"
        " turns before the errors ('ordinary' = share of those flagged)"
    )
    sections = (
        [header],
        report_rephrase(examples, ordinary, defaults),
        report_frustration(examples, ordinary, defaults),
        report_sentiment(tweets),
        report_timing(examples, ordinary, defaults),
    )
    # The tables are this script's output, not diagnostics, so they go to stdout, not a logger.
    sys.stdout.write("\n\n".join("\n".join(lines) for lines in sections) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
