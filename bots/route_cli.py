"""The `tierbot route explain` and `tierbot policy show` commands over a built Router."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import IO, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError
from pydantic_settings import BaseSettings

from routing.policy import Policy
from routing.router import Router
from routing.types import Conversation, Decision, Turn

MASK = "********"


class _Message(BaseModel):
    """One message of an input conversation line (the stable JSONL contract)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    role: Literal["user", "assistant"]
    content: str
    ts: float | None = Field(default=None, allow_inf_nan=False)
    tier: int | None = None


class _Line(BaseModel):
    """One input line: `{"id", "messages", "user"?, "channel"?}`."""

    model_config = ConfigDict(extra="ignore")

    id: JsonValue = None
    messages: list[_Message] = Field(min_length=1)
    user: str | None = None
    channel: str | None = None


def conversation_of(line: str) -> tuple[JsonValue, Conversation]:
    """Parse one JSONL line into its id and Conversation; raise ValueError saying what is wrong."""
    try:
        parsed = _Line.model_validate_json(line)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "line"
        raise ValueError(f"{where}: {first['msg']}") from None
    turns = tuple(Turn(role=m.role, text=m.content, ts=m.ts, tier=m.tier) for m in parsed.messages)
    return parsed.id, Conversation(turns=turns, user=parsed.user, channel=parsed.channel)


def decision_json(line_id: JsonValue, decision: Decision) -> str:
    """Render a decision as one line of the stable output contract."""
    s = decision.scores
    return json.dumps(
        {
            "id": line_id,
            "tier": decision.tier,
            "scores": {
                "complexity": s.complexity,
                "frustration": s.frustration,
                "rephrase": s.rephrase,
                "history_tokens": s.history_tokens,
            },
            "confidence": decision.confidence,
            "reasons": [{"code": r.code, "text": r.text} for r in decision.reasons],
        },
        ensure_ascii=False,
    )


def explain_lines(router: Router, lines: Iterable[str], out: IO[str], err: IO[str]) -> int:
    """Decide every JSONL conversation; report bad lines on `err` and go on. Return the errors."""
    errors = total = 0
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        total += 1
        try:
            line_id, conversation = conversation_of(raw)
        except ValueError as exc:
            errors += 1
            err.write(f"line {number}: {exc}\n")
            continue
        out.write(decision_json(line_id, router.decide(conversation)) + "\n")
    if errors:
        err.write(f"{errors} of {total} lines could not be read\n")
    return errors


def explain_text(decision: Decision) -> str:
    """Render one decision for a person at a terminal."""
    s = decision.scores
    lines = [
        f"tier: {decision.tier} ({decision.tier_name})   confidence: {decision.confidence:.2f}",
        f"scores: complexity={s.complexity:.2f} frustration={s.frustration:.2f} "
        f"rephrase={s.rephrase:.2f} history_tokens={s.history_tokens}",
        "reasons:",
    ]
    lines.extend(f"  [{r.code}] {r.text}" for r in decision.reasons)
    return "\n".join(lines)


def settings_table(settings: Iterable[BaseSettings]) -> list[tuple[str, str]]:
    """Return (ENV_VAR, value) for every field of the given settings, secrets masked."""
    rows: list[tuple[str, str]] = []
    for obj in settings:
        prefix = str(obj.model_config.get("env_prefix", ""))
        dumped = obj.model_dump(mode="json")
        for name, info in type(obj).model_fields.items():
            value = dumped[name]
            secret = "SecretStr" in repr(info.annotation)
            shown = MASK if secret and value else json.dumps(value, ensure_ascii=False)
            rows.append((f"{prefix}{name}".upper(), shown))
    return rows


def policy_text(policy: Policy, settings: Iterable[BaseSettings]) -> str:
    """Render the effective policy: the ladder, then every variable's value."""
    lines = ["tier ladder:"]
    for tier, name in enumerate(policy.tier_names, start=1):
        low = policy.thresholds[tier - 2] if tier > 1 else 0.0
        lines.append(
            f"  {tier} {name:<12} complexity >= {low:<5} context {policy.context_tokens[tier - 1]}"
        )
    lines.append(
        f"entitlement: default up to {policy.name(policy.default_max_tier)}, "
        f"premium up to {policy.name(policy.premium_max_tier)}"
    )
    if policy.single_tier is not None:
        lines.append(f"single-model mode: every message on {policy.name(policy.single_tier)}")
    lines.append("variables:")
    lines.extend(f"  {var}={value}" for var, value in settings_table(settings))
    return "\n".join(lines)
