"""Feedback: the turn and event log that operators review."""

from feedback.errors import FeedbackError, StoreError
from feedback.settings import FeedbackSettings, load_feedback_settings
from feedback.store import FeedbackStore, Forgotten
from feedback.types import (
    AttemptRecord,
    EventKind,
    EventRecord,
    Rating,
    ReasonRecord,
    Signals,
    TurnOutcome,
    TurnRecord,
)
from feedback.writer import FeedbackLog

__all__ = [
    "AttemptRecord",
    "EventKind",
    "EventRecord",
    "FeedbackError",
    "FeedbackLog",
    "FeedbackSettings",
    "FeedbackStore",
    "Forgotten",
    "Rating",
    "ReasonRecord",
    "Signals",
    "StoreError",
    "TurnOutcome",
    "TurnRecord",
    "load_feedback_settings",
]
