"""Value types of the pipeline's modules: the parts a pipeline is built from, and one answer."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from bots.answer import DEFAULT_SYSTEM_PROMPT
from bots.assembly import LLMStack
from bots.chat_ledger import ChatLedger
from bots.delivery import Delivery
from bots.history import HistoryStore
from bots.limits import RateLimiter, SpendBudget
from bots.metrics import Metrics
from bots.types import Channel, InboundMessage
from feedback.types import EventRecord, TurnRecord
from routing.execution_settings import ExecutionSettings
from routing.router import Router
from routing.types import Conversation, Decision, Turn


class FeedbackSink(Protocol):
    """Where turns and events are recorded; `feedback.FeedbackLog` is one (it never blocks)."""

    def record_turn(self, turn: TurnRecord) -> None: ...

    def record_event(self, event: EventRecord) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineParts:
    """Everything a pipeline uses; the composition root builds it (`bots.runtime`)."""

    router: Router
    execution: ExecutionSettings
    llm: LLMStack
    deliveries: Mapping[Channel, Delivery]
    history: HistoryStore
    limiter: RateLimiter
    budget: SpendBudget
    ledger: ChatLedger
    feedback: FeedbackSink
    id_key: bytes
    """Key of the HMAC that makes turn ids and the chat ids in logs."""
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    clock: Callable[[], float] = time.time
    metrics: Metrics | None = None
    """Prometheus counters and histograms of the admin listener's /metrics, when it runs."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Ask:
    """One answer to produce: where, for which conversation, on which decision."""

    message: InboundMessage
    turn_id: str
    conversation: Conversation
    """What the model sees; its last user turn is the question."""
    question: Turn
    """The user turn appended to the history before the answer."""
    decision: Decision
    notice: str | None = None
    started: float
