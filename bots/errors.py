"""Exceptions raised by the bots package.

The tree::

    BotError
    ├── BadUpdate               a webhook body is not an update we accept (answered 400, never 500)
    ├── DeadLetterNotFound      replay or discard of a dead-letter id that does not exist
    ├── DeliveryFailed          the platform refused or did not take an answer (keeps its code)
    └── StoreUnavailable        Redis refused, failed or did not answer within the timeout
        └── QueueUnavailable        the queue cannot take or hand out messages (webhook: 503)

Every `StoreUnavailable` keeps the Redis or socket error as its `__cause__`; `store_call` is
the one place that translates them (as httpx's `request_context` does for transport errors).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.exceptions import RedisError


class BotError(Exception):
    """Root of every error the bots package raises."""


class BadUpdate(BotError):
    """A webhook body is not a well-formed update of the platform (or is too big or too deep)."""


class DeadLetterNotFound(BotError):
    """No dead-letter entry has the given id (already replayed or discarded?)."""


class DeliveryFailed(BotError):
    """Telegram or WhatsApp refused, or did not take in time, a message that had to arrive.

    `code` is the platform's: the Graph API error code (131047, 130429, ...) or the Bot API's
    HTTP status (400, 403, 429, ...); None when the request never got an answer.
    """

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class StoreUnavailable(BotError):
    """A shared store (Redis) refused, failed or timed out; the operation did not happen."""


class QueueUnavailable(StoreUnavailable):
    """The queue cannot durably take a message or hand one out; the webhook answers 503."""


@asynccontextmanager
async def store_call(
    what: str, timeout_s: float, error: type[StoreUnavailable] = StoreUnavailable
) -> AsyncIterator[None]:
    """Bound the Redis calls in the block by `timeout_s`; raise `error` if any fails or hangs."""
    try:
        async with asyncio.timeout(timeout_s):
            yield
    except (RedisError, OSError) as exc:  # OSError covers TimeoutError and refused sockets
        raise error(f"{what} failed: {type(exc).__name__}: {exc}") from exc
