"""A seeded SQLite feedback log and the admin app over it, for the admin tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web
from pydantic import SecretStr

from bots.admin import create_admin_app
from bots.admin_settings import AdminSettings
from bots.metrics import Metrics
from feedback import EventKind, EventRecord, FeedbackSettings, FeedbackStore, Signals, TurnRecord
from feedback.types import AttemptRecord, ReasonRecord

TOKEN = "admin-token-for-tests-3f9c2a"
HOSTILE = "<script>alert('x')</script> & \"quoted\""
MISROUTED = "turn-misrouted-1"
"""The tier-1 turn a later misroute event points at."""
TIER_MIX = {1: 3, 2: 1, 3: 1}
"""Turns per tier in the seeded log."""


def feedback_settings(tmp_path: Path) -> FeedbackSettings:
    """Settings of a SQLite log in `tmp_path`."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'feedback.sqlite3'}"
    return FeedbackSettings(database_url=SecretStr(url))


def _turn(
    turn_id: str, *, minutes_ago: int, chat: str, tier: int, message: str, answer: str
) -> TurnRecord:
    provider, model = {1: ("groq", "fast"), 2: ("anthropic", "mid"), 3: ("openai", "top")}[tier]
    return TurnRecord(
        turn_id=turn_id,
        conversation_id=f"conv-{chat}",
        at=datetime.now(UTC) - timedelta(minutes=minutes_ago),
        channel="telegram" if chat == "a" else "whatsapp",
        surface="private",
        user_id=f"user-{chat}",
        chat_id=f"chat-{chat}",
        signals=Signals(complexity=0.2 * tier, frustration=0.0, rephrase=0.0, history_tokens=40),
        tier=tier,
        confidence=0.8,
        reasons=(ReasonRecord(code="base_tier", text=f"tier {tier}"),),
        provider=provider,
        model=model,
        attempts=(AttemptRecord(provider=provider, model=model, error=None, latency_s=0.4 * tier),),
        tokens_in=100,
        tokens_out=50,
        cost_usd=0.001 * tier,
        cost_if_top=0.003,
        cost_if_mid=0.002,
        ttft_s=0.3 * tier,
        total_s=1.0 * tier,
        message_text=message,
        answer_text=answer,
    )


def records() -> list[TurnRecord | EventRecord]:
    """Five turns in two chats: a misrouted tier-1 turn and its rephrase answered on tier 2."""
    now = datetime.now(UTC)
    return [
        _turn("turn-a0", minutes_ago=12, chat="a", tier=1, message="hi", answer="Hello!"),
        _turn(
            MISROUTED,
            minutes_ago=10,
            chat="a",
            tier=1,
            message="How do I rotate my API keys safely?",
            answer="Click the button.",
        ),
        _turn(
            "turn-a2",
            minutes_ago=9,
            chat="a",
            tier=2,
            message="No, explain properly how to rotate keys without downtime",
            answer="Create a second key, deploy it, then revoke the first.",
        ),
        _turn("turn-b1", minutes_ago=8, chat="b", tier=1, message=HOSTILE, answer="No scripts."),
        _turn("turn-b2", minutes_ago=7, chat="b", tier=3, message="Prove it", answer="Proof."),
        EventRecord(
            kind=EventKind.MISROUTE,
            at=now - timedelta(minutes=9),
            turn_id="turn-a2",
            related_turn_id=MISROUTED,
            user_id="user-a",
            chat_id="chat-a",
            cause="rephrase",
        ),
        EventRecord(
            kind=EventKind.RATING, at=now, turn_id="turn-b2", chat_id="chat-b", rating="up"
        ),
    ]


async def seed(settings: FeedbackSettings) -> None:
    """Write the seeded records through the store (migrating a fresh database)."""
    store = await FeedbackStore.open(settings)
    try:
        await store.write(records())
    finally:
        await store.aclose()


def admin_settings(token: str | None = TOKEN) -> AdminSettings:
    """Admin settings with `token` (None: no token configured)."""
    return AdminSettings(admin_token=None if token is None else SecretStr(token))


def admin_app(tmp_path: Path, metrics: Metrics | None = None) -> web.Application:
    """The admin app over the log in `tmp_path`."""
    return create_admin_app(
        settings=admin_settings(),
        feedback=feedback_settings(tmp_path),
        metrics=metrics or Metrics(),
    )
