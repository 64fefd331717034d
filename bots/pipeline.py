"""The turn handler: answers one coalesced turn of one chat, from the limits to the record.

`Pipeline` is the `TurnHandler` that `ChatTurns` calls with a chat's unanswered entries. Text
messages are answered together as one turn: limits, typing, history, `Router.decide`, the
executor's stream into the chat, then the feedback record, the spend, the history and the link
from our message to the turn. A decision that says the previous answer failed (frustration or
a rephrase) answers again one tier up with a notice, at most `max_retries_per_question` times
per question. Buttons, reactions, stop presses and delivery statuses become feedback events;
👎 and "stronger" answer the rated turn's question again one tier up (`pipeline_feedback`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import assert_never

from bots.answer import build_job, messages_of
from bots.chat_state import coalesced_text
from bots.delivery import Delivery
from bots.errors import BotError, StoreUnavailable
from bots.formatting import apology
from bots.ids import hash_id
from bots.pipeline_feedback import FAILED_ANSWER, Feedback
from bots.pipeline_types import Ask, PipelineParts
from bots.queue import Entry
from bots.records import TurnFacts, turn_record
from bots.replies import Reply, reply
from bots.types import InboundMessage
from feedback.types import EventKind, EventRecord, Rating
from routing.types import Conversation, Decision, Turn

logger = logging.getLogger(__name__)

RAISING = ("rule", "confidence_band", FAILED_ANSWER, "context_fit", "channel_floor", "feedback")
"""Decision reasons that move a turn above its base tier (the causes of an escalation event)."""
APOLOGY_TIMEOUT_S = 5.0


def escalation_cause(decision: Decision, *, base_tier: int) -> str | None:
    """Why `decision` is above `base_tier`: its `RAISING` reason codes, comma-joined (else
    `policy`); None when it is not above. The feedback log and the metrics both use it."""
    if decision.tier <= base_tier:
        return None
    causes = [code for code in decision.reason_codes() if code in RAISING]
    return ",".join(dict.fromkeys(causes)) or "policy"


class Pipeline:
    """The `TurnHandler` of the workers: answers a chat's unanswered entries as one turn."""

    def __init__(self, parts: PipelineParts) -> None:
        self.parts = parts
        self.policy = parts.router.policy
        self.max_retries = parts.execution.max_retries_per_question
        self._feedback = Feedback(self)

    async def __call__(self, entries: tuple[Entry, ...], /) -> str | None:
        """Answer `entries` (one chat's, in order); the id of our last message, if any.

        A failure is this task's boundary: logged with ids only, the user gets an apology on
        the first delivery, and the error propagates so the entries stay queued.
        """
        try:
            return await self._turn(entries)
        except Exception:
            last = entries[-1]
            logger.exception(
                "turn failed chat=%s entry=%s deliveries=%d: left for redelivery",
                self.hash(last.message.chat_id),
                last.id,
                last.deliveries,
            )
            if max(entry.deliveries for entry in entries) == 1:
                await self._apologise(last.message)
            raise

    async def _turn(self, entries: tuple[Entry, ...]) -> str | None:
        sent: str | None = None
        texts = tuple(entry for entry in entries if entry.message.kind == "text")
        for entry in entries:
            sent = await self._other(entry.message) or sent
        if texts:
            sent = await self._text_turn(texts) or sent
        return sent

    async def _other(self, message: InboundMessage) -> str | None:
        """Handle one entry that is not text: a button, stop, reaction or delivery status."""
        match message.kind:
            case "text":
                pass
            case "feedback":
                return await self._feedback.press(message)
            case "stop":
                self.event(EventKind.STOP_PRESSED, message)
            case "reaction":
                await self._feedback.reaction(message)
            case "status":
                await self._feedback.status(message)
            case _:
                assert_never(message.kind)
        return None

    async def _text_turn(self, entries: tuple[Entry, ...]) -> str | None:
        message = entries[-1].message
        if not await self.admit(message):
            return None
        async with self.delivery(message).typing(message):
            started = self.parts.clock()
            history = await self.parts.history.load(message.chat_id)
            turn_id = self.turn_id(entries[0].message)
            question = Turn(
                role="user",
                text=coalesced_text(entries),
                ts=message.ts or started,
                turn_id=f"{turn_id}.q",
            )
            conversation = self.conversation(message, (*history, question))
            decision = self.parts.router.decide(conversation)
            feedback = self._feedback
            decision, notice = await feedback.failed_answer(message, decision, history, turn_id)
            return await self.answer(
                Ask(
                    message=message,
                    turn_id=turn_id,
                    conversation=conversation,
                    question=question,
                    decision=decision,
                    notice=notice,
                    started=started,
                )
            )

    async def admit(self, message: InboundMessage) -> bool:
        """Check the user's rate limit and budget; refuse politely if either says no.

        An admitted message is answered inside `delivery(message).typing(message)`, so the
        typing indicator lasts as long as the turn and not a moment longer, even if it fails.
        """
        delivery = self.delivery(message)
        refusal: Reply | None = None
        if not (await self.parts.limiter.hit(message.user_id)).allowed:
            refusal, kind = "rate_limited", EventKind.RATE_LIMITED
        elif not await self.parts.budget.allows(message.user_id):
            refusal, kind = "budget", EventKind.BUDGET_BLOCKED
        if refusal is None:
            return True
        logger.info("turn refused chat=%s reason=%s", self.hash(message.chat_id), refusal)
        self.event(kind, message)
        await delivery.send_text(message, reply(refusal, message))
        return False

    async def answer(self, ask: Ask) -> str | None:
        """Stream the answer into the chat, then record it; the id of our final message."""
        message, decision = ask.message, ask.decision
        job = build_job(
            decision=decision,
            messages=messages_of(ask.conversation, self.parts.system_prompt),
            user=message.user_id,
            channel=message.channel,
            policy=self.policy,
            settings=self.parts.execution,
        )
        logger.info(
            "answering chat=%s turn=%s tier=%s reasons=%s",
            self.hash(message.chat_id),
            ask.turn_id,
            decision.tier_name,
            ",".join(decision.reason_codes()),
        )
        delivered = await self.delivery(message).stream(
            message, self.parts.llm.executor.run(job), turn_id=ask.turn_id, notice=ask.notice
        )
        now = self.parts.clock()
        facts = TurnFacts(
            turn_id=ask.turn_id,
            message=message,
            question=ask.question.text,
            decision=decision,
            delivered=delivered,
            at=datetime.fromtimestamp(now, UTC),
            elapsed_s=now - ask.started,
        )
        self.parts.feedback.record_turn(turn_record(facts, self.parts.llm.chains))
        if self.parts.metrics is not None and delivered.outcome is not None:
            self.parts.metrics.observe_outcome(delivered.outcome)
        self._escalation(ask)
        await self._keep(ask, facts, now)
        return delivered.platform_message_id

    async def _keep(self, ask: Ask, facts: TurnFacts, now: float) -> None:
        """Spend, history and the message link: best effort, the answer is already out."""
        message, delivered = ask.message, facts.delivered
        outcome = delivered.outcome
        turns = [ask.question]
        if delivered.text and (delivered.stopped or (outcome is not None and outcome.ok)):
            tier = ask.decision.tier if outcome is None or outcome.tier is None else outcome.tier
            turns.append(
                Turn(role="assistant", text=delivered.text, ts=now, tier=tier, turn_id=ask.turn_id)
            )
        try:
            if outcome is not None and outcome.cost_usd > 0:
                await self.parts.budget.add(message.user_id, outcome.cost_usd)
            await self.parts.history.append(message.chat_id, turns)
            if delivered.platform_message_id is not None:
                await self.parts.ledger.link(
                    message.chat_id, delivered.platform_message_id, ask.turn_id
                )
        except StoreUnavailable as exc:
            logger.warning(
                "bookkeeping after an answer failed chat=%s turn=%s: %s",
                self.hash(message.chat_id),
                ask.turn_id,
                exc,
            )

    def _escalation(self, ask: Ask) -> None:
        """When the turn went above its base tier: an escalation event and its count, by cause."""
        decision = ask.decision
        base_tier = self.policy.base_tier(decision.scores.complexity)
        cause = escalation_cause(decision, base_tier=base_tier)
        if cause is None:
            return
        self.event(EventKind.ESCALATION, ask.message, turn_id=ask.turn_id, cause=cause)
        if self.parts.metrics is not None:
            self.parts.metrics.escalated(cause)

    async def _apologise(self, message: InboundMessage) -> None:
        delivery = self.parts.deliveries.get(message.channel)
        if delivery is None or message.kind not in ("text", "feedback"):
            return
        try:
            async with asyncio.timeout(APOLOGY_TIMEOUT_S):
                await delivery.send_text(message, apology(message.language))
        except Exception as exc:  # task boundary: the apology is best effort
            logger.warning(
                "apology failed chat=%s: %s", self.hash(message.chat_id), type(exc).__name__
            )

    def delivery(self, message: InboundMessage) -> Delivery:
        """The delivery of the message's channel."""
        delivery = self.parts.deliveries.get(message.channel)
        if delivery is None:
            raise BotError(f"no delivery for the {message.channel} channel: is it configured?")
        return delivery

    def conversation(self, message: InboundMessage, turns: Sequence[Turn]) -> Conversation:
        """The conversation as the router sees it (raw user id: entitlements use it)."""
        return Conversation(
            turns=tuple(turns),
            user=message.user_id,
            channel=message.channel,
            conversation_id=message.chat_id,
        )

    def event(
        self,
        kind: EventKind,
        message: InboundMessage,
        *,
        turn_id: str | None = None,
        related: Turn | None = None,
        cause: str | None = None,
        rating: Rating | None = None,
    ) -> None:
        """Record an event about the message's chat and user (raw ids: the store hashes them).

        Its id comes from the message, so a redelivered message records it once.
        """
        self.parts.feedback.record_event(
            EventRecord(
                kind=kind,
                at=datetime.fromtimestamp(self.parts.clock(), UTC),
                turn_id=turn_id,
                related_turn_id=None if related is None else related.turn_id,
                user_id=message.user_id,
                chat_id=message.chat_id,
                cause=cause,
                rating=rating,
                event_id=hash_id(self.parts.id_key, f"event:{message.dedupe_key}:{kind}:{cause}"),
            )
        )

    def turn_id(self, message: InboundMessage) -> str:
        """A turn's id: opaque, and the same when a redelivered message is answered again."""
        return hash_id(self.parts.id_key, f"turn:{message.dedupe_key}")

    def hash(self, raw_id: str) -> str:
        """A log-safe pseudonym of a chat or user id."""
        return hash_id(self.parts.id_key, raw_id)
