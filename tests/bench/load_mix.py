"""The load benchmark's workload: who writes what, and how fast the fake providers answer.

Each chat is a short conversation on one channel: maybe a greeting, then questions (short
factual ones, or long and complex ones that route to higher tiers); after an answer the user
sometimes follows up frustrated, or rephrases the question, which makes tierbot answer it again
one tier up. Texts come from small built-in lists; with `data` (the calibration data beside the
repository, never shipped) complex questions are also drawn from its routing prompts, and
question/rephrase pairs from its real user reactions to chatbot errors.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from routing.execution_settings import DEFAULT_CHAINS

Kind = Literal["greeting", "factual", "complex", "frustrated", "rephrase"]
KINDS: tuple[Kind, ...] = ("greeting", "factual", "complex", "frustrated", "rephrase")
Channel = Literal["telegram", "whatsapp"]
MAX_TEXT = 3000
"""Longest message sent (Telegram allows 4096 characters)."""

GREETINGS = (
    "hi",
    "hello!",
    "hey there",
    "good morning",
    "hi, are you there?",
    "hello, can you help me?",
    "yo",
    "hey 👋",
)
FACTUAL = (
    "What is the capital of Australia?",
    "How many ounces are in a pound?",
    "When did the Berlin Wall fall?",
    "What is the boiling point of water in Fahrenheit?",
    "Who wrote Pride and Prejudice?",
    "How far is the Moon from the Earth?",
    "What does HTTP stand for?",
    "How many days are in a leap year?",
    "What is the largest planet in the solar system?",
    "What time zone is Tokyo in?",
    "How do I convert Celsius to Fahrenheit?",
    "What is the population of Canada?",
    "Which language has the most native speakers?",
    "What's the difference between a virus and a bacterium?",
    "How long should I boil an egg for a soft yolk?",
    "What is the speed of light?",
    "Who painted the Mona Lisa?",
    "What is the currency of Switzerland?",
    "How do I reset my router?",
    "What is a prime number?",
)
COMPLEX = (
    "Explain step by step how to prove that there are infinitely many primes, then analyze the "
    "complexity of the sieve of Eratosthenes compared to trial division, with Python code for "
    "both and a discussion of memory use.",
    "I run a small online shop on PostgreSQL. Orders sometimes get charged twice when the "
    "payment provider retries its webhook. Design an idempotent webhook handler, explain the "
    "table schema, the transaction isolation you need, and how to test the race conditions.",
    "Compare the trade-offs between event sourcing and a classic CRUD model for a banking "
    "ledger: consistency, auditing, schema evolution, performance and operational cost. Give a "
    "recommendation for a team of five engineers and justify it.",
    "Write an asyncio Python function that downloads 10,000 URLs with at most 50 concurrent "
    "requests, retries with exponential backoff and jitter, respects Retry-After headers, and "
    "reports p50 and p99 latency at the end. Explain each design choice.",
    "A train leaves city A at 9:00 at 80 km/h, another leaves city B, 300 km away, at 10:00 at "
    "100 km/h towards A. Derive when and where they meet, then generalise the formula and "
    "prove it, and finally discuss what changes if the second train stops for 15 minutes.",
    "Analyze the causes of the 2008 financial crisis from the perspective of incentives, "
    "regulation and leverage, and evaluate which reforms since then actually reduced "
    "systemic risk. Cite the mechanisms, not just the events.",
    "Derive the closed form of the sum of the first n squares, prove it by induction, and then "
    "explain how the same technique generalises to sums of cubes and why.",
    "Design a rate limiter shared by many processes using Redis: compare fixed window, sliding "
    "log, sliding window counter and token bucket, give Lua scripts for the best two, and "
    "explain how to test them under clock skew.",
)
FRUSTRATED = (
    "That's not what I asked!! Please answer the actual question.",
    "you didn't answer my question",
    "This is useless. Wrong again.",
    "No, that's wrong. Can I talk to a human?",
    "ugh, that makes no sense at all!!!",
    "WHY IS THIS SO HARD. That answer is wrong.",
)
REPHRASE_LEADS = ("I mean: ", "Let me ask again. ", "Again: ", "To be clear, ")


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One message of a chat."""

    kind: Kind
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatScript:
    """What one chat says, in order; each message waits for the answer to the one before."""

    index: int
    channel: Channel
    steps: tuple[Step, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Corpus:
    """Where the texts come from."""

    complex: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...]
    """(question, the user's rephrase of it after a wrong answer)."""
    source: str


def load_corpus(data: Path | None) -> Corpus:
    """The built-in texts, plus the calibration data's under `data` when it is there."""
    if data is None or not data.is_dir():
        return Corpus(complex=COMPLEX, pairs=(), source="built-in")
    prompts: list[str] = []
    with (data / "routing" / "open-model-outcomes.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            prompt = str(json.loads(line)["prompt"]).strip()
            if 200 <= len(prompt) <= MAX_TEXT:
                prompts.append(prompt)
    pairs: list[tuple[str, str]] = []
    with (data / "signals" / "user-reactions-to-errors.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            question = str(row["context"]).split("<user>")[-1].split("<system>")[0].strip()
            reaction = str(row["user_reaction"]).strip()
            if row["user_reaction_type"] == "Repeat or Rephrase" and question and reaction:
                pairs.append((question, reaction))
    return Corpus(
        complex=COMPLEX + tuple(prompts),
        pairs=tuple(pairs),
        source=f"built-in + {data} (routing prompts: {len(prompts)}, rephrase pairs: {len(pairs)})",
    )


def _question(rng: random.Random, corpus: Corpus) -> tuple[Step, str | None]:
    """A question, and the user's own rephrase of it when the data has one."""
    roll = rng.random()
    if roll < 0.25:
        return Step(kind="complex", text=rng.choice(corpus.complex)), None
    if roll < 0.40 and corpus.pairs:
        question, rephrase = rng.choice(corpus.pairs)
        return Step(kind="factual", text=question), rephrase
    return Step(kind="factual", text=rng.choice(FACTUAL)), None


def _follow_up(rng: random.Random, question: Step, rephrase: str | None) -> Step:
    if rng.random() < 0.5:
        return Step(kind="frustrated", text=rng.choice(FRUSTRATED))
    text = rephrase or rng.choice(REPHRASE_LEADS) + question.text
    return Step(kind="rephrase", text=text[:MAX_TEXT])


def chat_steps(rng: random.Random, corpus: Corpus, count: int) -> tuple[Step, ...]:
    """`count` messages of one conversation."""
    steps: list[Step] = []
    if count > 1 and rng.random() < 0.4:
        steps.append(Step(kind="greeting", text=rng.choice(GREETINGS)))
    while len(steps) < count:
        question, rephrase = _question(rng, corpus)
        steps.append(question)
        if len(steps) < count and rng.random() < 0.25:
            steps.append(_follow_up(rng, question, rephrase))
    return tuple(steps[:count])


def build_scripts(
    *, chats: int, messages: int, seed: int, corpus: Corpus, whatsapp_share: float = 0.5
) -> list[ChatScript]:
    """`messages` messages spread over `chats` conversations (as evenly as they divide)."""
    rng = random.Random(seed)
    scripts = []
    for index in range(chats):
        count = messages // chats + (1 if index < messages % chats else 0)
        channel: Channel = "whatsapp" if rng.random() < whatsapp_share else "telegram"
        steps = chat_steps(rng, corpus, count)
        scripts.append(ChatScript(index=index, channel=channel, steps=steps))
    return scripts


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelPace:
    """How the fake provider answers one model: first-token time, pace, answer length."""

    ttft_s: float
    tokens_per_second: float
    answer_tokens: int

    def full_s(self) -> float:
        """Seconds from the request to the last token."""
        return self.ttft_s + (self.answer_tokens - 1) / self.tokens_per_second


PACES: dict[str, ModelPace] = {
    "llama-3.1-8b-instant": ModelPace(ttft_s=0.15, tokens_per_second=300, answer_tokens=60),
    "gpt-4o-mini": ModelPace(ttft_s=0.40, tokens_per_second=90, answer_tokens=80),
    "claude-haiku-4-5": ModelPace(ttft_s=0.50, tokens_per_second=120, answer_tokens=110),
    "claude-sonnet-4-5": ModelPace(ttft_s=0.90, tokens_per_second=70, answer_tokens=150),
    "gpt-4o": ModelPace(ttft_s=0.60, tokens_per_second=80, answer_tokens=150),
}
"""Loosely after public figures for these models; every model of the default chains is here."""
_FILLER = " ".join(
    (
        "Here is a short answer. The key point is the first one, and the details follow from it.",
        "In practice you would check the assumptions first, then apply the usual method, and",
        "verify the result against a simple example before relying on it.",
    )
).split()


def answer_text(tokens: int) -> str:
    """A plausible answer of `tokens` fake tokens (words), under 1,024 characters."""
    words = [_FILLER[i % len(_FILLER)] for i in range(tokens)]
    return " ".join(words)[:1000]


def provider_script(speed: float = 1.0) -> dict[str, dict[str, float | str]]:
    """The fake LLM's script for every model of the default chains; `speed` > 1 is faster."""
    models = {link.split(":", 1)[1] for chain in DEFAULT_CHAINS.values() for link in chain}
    missing = models - PACES.keys()
    if missing:
        raise ValueError(f"no pace for the default chain models {sorted(missing)}")
    return {
        model: {
            "text": answer_text(pace.answer_tokens),
            "ttft": pace.ttft_s / speed,
            "tokens_per_second": pace.tokens_per_second * speed,
        }
        for model, pace in PACES.items()
    }


def kind_counts(scripts: Sequence[ChatScript]) -> dict[str, int]:
    """How many messages of each kind the scripts hold."""
    counts: dict[str, int] = dict.fromkeys(KINDS, 0)
    for script in scripts:
        for step in script.steps:
            counts[step.kind] += 1
    return counts
