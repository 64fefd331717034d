"""Feedback on answers, and what the pipeline does with it: a frustrated or rephrased follow-up
answers the question again one tier up (a bounded number of times); button presses, reactions
and delivery statuses become events, and 👎 or "try a stronger model" answers the rated turn's
question again one tier up."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from bots.delivery import FEEDBACK_DOWN, FEEDBACK_STRONGER, FEEDBACK_UP, parse_feedback
from bots.pipeline_types import Ask
from bots.replies import reply
from bots.types import InboundMessage
from feedback.types import EventKind, Rating
from routing.types import Decision, Reason, Turn

if TYPE_CHECKING:
    from bots.pipeline import Pipeline

logger = logging.getLogger(__name__)

FAILED_ANSWER = "escalate_failed_answer"
"""The decision reason that says the previous answer failed (frustration or rephrase)."""

_RATINGS: dict[str, Rating] = {
    FEEDBACK_UP: "up",
    FEEDBACK_DOWN: "down",
    FEEDBACK_STRONGER: "stronger",
}
_MISROUTE_CAUSES = {FEEDBACK_DOWN: "rating_down", FEEDBACK_STRONGER: "stronger_asked"}
_EMOJI_RATINGS: tuple[tuple[str, Rating], ...] = (("👍", "up"), ("👎", "down"))


class Feedback:
    """What a pipeline does with feedback; `host` is the pipeline it belongs to."""

    def __init__(self, host: Pipeline) -> None:
        self._host = host

    async def failed_answer(
        self, message: InboundMessage, decision: Decision, history: Sequence[Turn], turn_id: str
    ) -> tuple[Decision, str | None]:
        """After a decision that says the previous answer failed (frustration or a rephrase
        over its threshold): the decision (the router already put it one tier above that
        answer) and a notice, with a misroute event on the earlier turn; the decision held on
        the earlier tier and no notice once the question's retries are used up. Any other
        decision starts a new question."""
        host = self._host
        chat = message.chat_id
        earlier = _last_answer(history)
        if FAILED_ANSWER not in decision.reason_codes() or earlier is None:
            await host.parts.ledger.new_question(chat)
            return decision, None
        done = await host.parts.ledger.retries(chat)
        if done >= host.max_retries:
            logger.info("retries of the question used up chat=%s retries=%d", host.hash(chat), done)
            return self._hold(decision, earlier, done), None
        await host.parts.ledger.add_retry(chat)
        scores = decision.scores
        frustrated = scores.frustration >= host.policy.frustration_threshold
        cause = "frustration" if frustrated else "rephrase"
        host.event(EventKind.MISROUTE, message, turn_id=turn_id, related=earlier, cause=cause)
        if frustrated:
            host.event(EventKind.FRUSTRATION_RETRY, message, turn_id=turn_id, related=earlier)
        return decision, reply("stronger", message)

    def _hold(self, decision: Decision, earlier: Turn, done: int) -> Decision:
        """The decision kept on the earlier answer's tier (or the message's own base tier)."""
        policy = self._host.policy
        base = policy.base_tier(decision.scores.complexity)
        tier = min(decision.tier, max(earlier.tier or 1, base))
        why = Reason(code="retries_used", text=f"{done} retries of this question already")
        return replace(
            decision,
            tier=tier,
            tier_name=policy.name(tier),
            reasons=(*decision.reasons, why),
        )

    async def press(self, message: InboundMessage) -> str | None:
        """Answer the button at once; rate the turn; 👎/stronger answer it again one tier up.

        Returns the id of the new answer's final message, if there is one.
        """
        host = self._host
        delivery = host.delivery(message)
        parsed = parse_feedback(message.payload)
        history = await host.parts.history.load(message.chat_id) if parsed else ()
        found = None if parsed is None else _find(history, parsed[0])
        if parsed is None or found is None:
            await delivery.answer_button(message, reply("unknown_turn", message))
            return None
        turn_id, choice = parsed
        host.event(EventKind.RATING, message, turn_id=turn_id, rating=_RATINGS[choice])
        if choice == FEEDBACK_UP:
            await delivery.answer_button(message, reply("thanks", message))
            return None
        if await host.parts.ledger.retries(message.chat_id) >= host.max_retries:
            await delivery.answer_button(message, reply("retried_enough", message))
            return None
        await delivery.answer_button(message, reply("stronger", message))
        return await self._again(message, history, found, choice)

    async def _again(
        self,
        message: InboundMessage,
        history: Sequence[Turn],
        found: tuple[int, int],
        choice: str,
    ) -> str | None:
        host = self._host
        if not await host.admit(message):
            return None
        async with host.delivery(message).typing(message):
            await host.parts.ledger.add_retry(message.chat_id)
            asked, answered = found
            earlier = history[answered]
            started = host.parts.clock()
            turn_id = host.turn_id(message)
            conversation = host.conversation(message, history[: asked + 1])
            decision = self._one_up(
                host.parts.router.decide(conversation), earlier, message, choice
            )
            cause = _MISROUTE_CAUSES[choice]
            host.event(EventKind.MISROUTE, message, turn_id=turn_id, related=earlier, cause=cause)
            question = Turn(
                role="user", text=history[asked].text, ts=started, turn_id=f"{turn_id}.q"
            )
            return await host.answer(
                Ask(
                    message=message,
                    turn_id=turn_id,
                    conversation=conversation,
                    question=question,
                    decision=decision,
                    notice=reply("stronger", message),
                    started=started,
                )
            )

    def _one_up(
        self, decision: Decision, earlier: Turn, message: InboundMessage, choice: str
    ) -> Decision:
        """One tier above the earlier answer, within the user's entitlement and the channel's
        ceiling (single-tier mode keeps its tier)."""
        policy = self._host.policy
        before = earlier.tier or 1
        ceiling = policy.single_tier or min(
            policy.entitlement(message.user_id),
            policy.channel_ceilings.get(message.channel, policy.top),
        )
        tier = min(max(before + 1, decision.tier), ceiling)
        why = Reason(
            code="feedback",
            text=f"{choice} on the answer from {policy.name(before)}: "
            f"answered again on {policy.name(tier)}",
        )
        return replace(
            decision, tier=tier, tier_name=policy.name(tier), reasons=(*decision.reasons, why)
        )

    async def reaction(self, message: InboundMessage) -> None:
        """A 👍 or 👎 reaction rates the turn our message shows; other emoji are ignored."""
        emoji = message.payload or ""
        rating = next((r for prefix, r in _EMOJI_RATINGS if emoji.startswith(prefix)), None)
        if rating is None:
            return
        turn_id = await self._turn_of(message)
        self._host.event(
            EventKind.RATING, message, turn_id=turn_id, rating=rating, cause="reaction"
        )

    async def status(self, message: InboundMessage) -> None:
        """A `failed` delivery status becomes a delivery-failure event (others are ignored)."""
        if message.payload != "failed":
            return
        turn_id = await self._turn_of(message)
        cause = f"whatsapp:{message.text}" if message.text else "whatsapp"
        self._host.event(EventKind.DELIVERY_FAILURE, message, turn_id=turn_id, cause=cause)
        logger.info(
            "delivery failed chat=%s turn=%s codes=%s",
            self._host.hash(message.chat_id),
            turn_id,
            message.text,
        )

    async def _turn_of(self, message: InboundMessage) -> str | None:
        if message.message_id is None:
            return None
        return await self._host.parts.ledger.turn_of(message.chat_id, message.message_id)


def _last_answer(history: Sequence[Turn]) -> Turn | None:
    for turn in reversed(history):
        if turn.role == "assistant":
            return turn
    return None


def _find(history: Sequence[Turn], turn_id: str) -> tuple[int, int] | None:
    """Positions of the question and of the answer with `turn_id`, if both are in `history`."""
    for answered in range(len(history) - 1, -1, -1):
        if history[answered].role == "assistant" and history[answered].turn_id == turn_id:
            for asked in range(answered - 1, -1, -1):
                if history[asked].role == "user":
                    return asked, answered
            return None
    return None
