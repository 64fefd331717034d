"""The inbound queue seam: its Protocol, settings and value types (memory and Redis beside it).

Delivery is at least once. A webhook `enqueue`s each platform delivery once (a duplicate
`dedupe_key` within its TTL is refused) and every entry gets the next sequence number of its
chat. Workers `read` entries as members of one consumer group; an entry stays pending until it
is `ack`ed. The owner keeps a long job's entries with `heartbeat`; entries idle longer than
`min_idle_s` (their worker died) are taken over by `claim`, which counts each delivery. An entry
that keeps failing is moved by the worker to the dead-letter list, where an operator can
`list_dead`, `replay` or `discard` it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, assert_never

from bots.types import Channel, InboundMessage

TELEGRAM_DEDUPE_TTL_S = 48 * 3600
"""Telegram keeps an unacknowledged update for up to 24 h; we remember its id twice as long."""
WHATSAPP_DEDUPE_TTL_S = 8 * 86400
"""Meta retries a webhook for up to 7 days; we remember message ids one day longer."""


def dedupe_ttl_s(channel: Channel) -> int:
    """How long a delivery of `channel` is remembered (dedupe key and outbox record)."""
    match channel:
        case "telegram":
            return TELEGRAM_DEDUPE_TTL_S
        case "whatsapp":
            return WHATSAPP_DEDUPE_TTL_S
        case _:
            assert_never(channel)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueSettings:
    """Knobs of the queue; the composition root fills them from the environment."""

    min_idle_s: float = 90.0
    """An entry pending this long without a heartbeat is taken over by `claim` (> job time)."""
    claim_interval_s: float = 5.0
    """How often each worker calls `claim`."""
    claim_count: int = 100
    """At most this many entries per `claim` call."""
    block_ms: int = 1000
    """How long `read` waits for new entries before it returns none."""
    enqueue_timeout_s: float = 0.75
    """Bound on an `enqueue`, all retries included, so the webhook can answer 503 within 1 s."""
    timeout_s: float = 2.0
    """Bound on every other call (a `read` may take `block_ms` longer)."""
    chat_ttl_s: int = 30 * 86400
    """A chat's sequence counter is forgotten after this long without traffic."""

    def __post_init__(self) -> None:
        numbers = {
            "min_idle_s": self.min_idle_s,
            "claim_interval_s": self.claim_interval_s,
            "claim_count": self.claim_count,
            "block_ms": self.block_ms,
            "enqueue_timeout_s": self.enqueue_timeout_s,
            "timeout_s": self.timeout_s,
            "chat_ttl_s": self.chat_ttl_s,
        }
        bad = [f"{name}={value}" for name, value in numbers.items() if value <= 0]
        if bad:
            raise ValueError(f"queue settings must be positive: {', '.join(bad)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One queued message as a worker sees it."""

    id: str
    """The stream entry id (opaque; increases with enqueue order)."""
    seq: int
    """Position of the message in its chat, from 1; gaps never occur within a chat."""
    deliveries: int
    """How many times the entry was handed out, this time included."""
    message: InboundMessage


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadEntry:
    """An entry taken out of circulation, with why and after how many deliveries."""

    id: str
    """Id in the dead-letter list (what `replay` and `discard` take)."""
    entry_id: str
    seq: int
    reason: str
    deliveries: int
    message: InboundMessage


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueStats:
    """Queue gauges for metrics and alerts."""

    depth: int
    """Entries not yet acknowledged: waiting to be read, or pending."""
    pending: int
    """Entries handed out and not yet acknowledged."""
    oldest_pending_age_s: float | None
    """Time since the oldest pending entry was enqueued; None when nothing is pending."""
    dead: int
    dropped_pending: int
    """Pending entries found deleted before their ack, fleet-wide (an incident: must stay 0)."""


class Queue(Protocol):
    """A durable, at-least-once queue of inbound messages with one consumer group."""

    async def enqueue(self, message: InboundMessage, dedupe_ttl_s: float) -> bool:
        """Queue `message` unless its `dedupe_key` was seen within `dedupe_ttl_s` (then False).

        Raises `QueueUnavailable` if the message could not be stored durably.
        """
        ...

    async def read(self, consumer: str, *, count: int = 10) -> tuple[Entry, ...]:
        """Hand out up to `count` new entries to `consumer`, waiting up to `block_ms`."""
        ...

    async def claim(self, consumer: str) -> tuple[Entry, ...]:
        """Take over entries idle for `min_idle_s` or longer (their worker died)."""
        ...

    async def heartbeat(self, consumer: str, entry_ids: Sequence[str]) -> None:
        """Reset the idle time of still-pending `entry_ids`, so `claim` leaves them alone."""
        ...

    async def ack(self, entry_ids: Sequence[str]) -> None:
        """Mark entries done and drop them; unknown ids are ignored."""
        ...

    async def dead_letter(self, entry: Entry, reason: str) -> None:
        """Move `entry` to the dead-letter list (acknowledging it) with `reason`."""
        ...

    async def list_dead(self, *, count: int = 100) -> tuple[DeadEntry, ...]:
        """The oldest `count` dead-letter entries."""
        ...

    async def replay(self, dead_id: str) -> str:
        """Queue a dead entry's message again, bypassing dedupe; return the new entry id.

        Raises `DeadLetterNotFound` for an unknown id.
        """
        ...

    async def discard(self, dead_id: str) -> bool:
        """Delete a dead-letter entry; False if there was none with that id."""
        ...

    async def stats(self) -> QueueStats:
        """Current depth, pending count and age, dead letters and dropped entries."""
        ...

    @property
    def dropped_pending(self) -> int:
        """Pending entries this instance found deleted before their ack (logged at ERROR)."""
        ...
