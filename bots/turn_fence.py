"""The fence a turn passes right before its final answer goes out.

A chat's turn runs under the chat's lock (`bots.chat_state.ChatTurns`). Streaming drafts may be
shown at any time, but the final answer is the side effect that must not happen twice: the
channel calls `before_final_answer()` just before sending it. Inside a turn that confirms this
worker still holds the chat (waiting out a short outage of the store), or stops the turn when
another worker has taken the chat over, so only the lock's holder answers. Outside a turn (the
terminal chat, a test of a channel alone) it does nothing.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable

Fence = Callable[[], Awaitable[None]]

_CURRENT: contextvars.ContextVar[Fence | None] = contextvars.ContextVar(
    "tierbot_turn_fence", default=None
)


def fenced(fence: Fence) -> contextvars.Context:
    """A copy of the current context in which `before_final_answer` runs `fence`."""
    context = contextvars.copy_context()
    context.run(_CURRENT.set, fence)
    return context


async def before_final_answer() -> None:
    """Pass the current turn's fence, if any (it raises CancelledError when the turn must stop)."""
    fence = _CURRENT.get()
    if fence is not None:
        await fence()
