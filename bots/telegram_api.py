"""Calls to the Telegram Bot API for the delivery: each within a timeout, a 429 pauses the chat,
and aiogram's errors become ours (best-effort calls log them instead)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TypeVar

from aiogram import Bot
from aiogram.exceptions import (
    AiogramError,
    DetailedAiogramError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import TelegramMethod

from bots.errors import DeliveryFailed
from bots.send_limits import SendLimits

logger = logging.getLogger(__name__)

T = TypeVar("T")

NOT_MODIFIED = "message is not modified"
CANT_PARSE = "can't parse entities"
_STATUS: tuple[tuple[type[AiogramError], int], ...] = (
    (TelegramBadRequest, 400),
    (TelegramUnauthorizedError, 401),
    (TelegramForbiddenError, 403),
    (TelegramNotFound, 404),
    (TelegramRetryAfter, 429),
    (TelegramServerError, 500),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class TelegramPacing:
    """How often Telegram is updated, and how long calls and 429 waits may take."""

    draft_interval_s: float = 0.7
    edit_interval_s: float = 3.0
    """Groups allow about 20 messages a minute; edits count against it."""
    typing_interval_s: float = 4.0
    """The typing status lasts 5 s or less."""
    typing_for_s: float = 120.0
    call_timeout_s: float = 10.0
    max_retry_wait_s: float = 60.0
    """A final message is retried after a 429 only if `retry_after` is at most this."""
    final_attempts: int = 3


class TelegramApi:
    """aiogram calls on one shared `Bot`, paced per chat by `limits`."""

    def __init__(self, bot: Bot, pacing: TelegramPacing, limits: SendLimits) -> None:
        self.bot = bot
        self.pacing = pacing
        self.limits = limits

    async def call(self, chat_id: str, method: TelegramMethod[T], *, paced: bool = True) -> T:
        """One call within `call_timeout_s`; a 429 pauses the chat (and is raised)."""
        try:
            async with asyncio.timeout(self.pacing.call_timeout_s):
                return await self.bot(method)
        except TelegramRetryAfter as exc:
            self.limits.pause(chat_id, exc.retry_after)
            raise
        finally:
            if paced:
                self.limits.sent(chat_id)

    async def attempt(
        self,
        chat_id: str,
        method: TelegramMethod[T],
        *,
        paced: bool = True,
        unchanged: T | None = None,
    ) -> T | None:
        """Best effort: the result, `unchanged` for "message is not modified", else None."""
        try:
            return await self.call(chat_id, method, paced=paced)
        except TelegramBadRequest as exc:
            if NOT_MODIFIED in exc.message:
                return unchanged
            _log_failure(method, exc)
        except (AiogramError, TimeoutError) as exc:
            _log_failure(method, exc)
        return None

    async def deliver(
        self, chat_id: str, method: TelegramMethod[T], fallback: TelegramMethod[T] | None = None
    ) -> T | None:
        """Must arrive: retried after a 429, sent as `fallback` if the formatting is refused;
        None for "message is not modified"; raises DeliveryFailed otherwise."""
        retries = 0
        while True:
            await self.limits.wait(chat_id)
            try:
                return await self.call(chat_id, method)
            except TelegramRetryAfter as exc:
                retries += 1
                if (
                    retries >= self.pacing.final_attempts
                    or exc.retry_after > self.pacing.max_retry_wait_s
                ):
                    raise _failed(method, exc) from exc
            except TelegramBadRequest as exc:
                if NOT_MODIFIED in exc.message:
                    return None
                if fallback is None or CANT_PARSE not in exc.message:
                    raise _failed(method, exc) from exc
                logger.info("telegram refused the formatting; sending plain text")
                method, fallback = fallback, None
            except (AiogramError, TimeoutError) as exc:
                raise _failed(method, exc) from exc


def _log_failure(method: TelegramMethod[T], exc: Exception) -> None:
    logger.warning("telegram %s failed (best effort): %s", method.__api_method__, _detail(exc))


def _detail(exc: Exception) -> str:
    """The error without the chat id aiogram puts into flood-control messages."""
    if isinstance(exc, TelegramRetryAfter):
        return f"TelegramRetryAfter: retry after {exc.retry_after} s"
    message = exc.message if isinstance(exc, DetailedAiogramError) else ""
    return f"{type(exc).__name__}: {message}".rstrip(": ")


def _failed(method: TelegramMethod[T], exc: Exception) -> DeliveryFailed:
    code = next((status for kind, status in _STATUS if isinstance(exc, kind)), None)
    return DeliveryFailed(f"telegram {method.__api_method__} failed: {_detail(exc)}", code=code)
