"""The `tierbot chat` command: a terminal conversation that routes, streams and explains answers."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import aclosing, contextmanager
from dataclasses import dataclass
from typing import IO, assert_never

from bots.answer import DEFAULT_SYSTEM_PROMPT, build_job, messages_of
from bots.assembly import LLMStack, build_llm_stack
from routing.errors import ConfigError
from routing.execution_settings import ExecutionSettings, ProviderCredentials
from routing.execution_types import Delta, Job, Outcome, Restart
from routing.policy import Policy
from routing.router import Router
from routing.types import Conversation, Decision, Turn

logger = logging.getLogger(__name__)

PROMPT = "you> "
ANSWER = "bot> "
WELCOME = (
    "tierbot chat: each message goes to the cheapest tier that can answer it. "
    "/reset starts a new conversation, /quit or Ctrl-D ends, Ctrl-C cancels an answer."
)
OFFLINE_BANNER = (
    "OFFLINE: answers are local, deterministic placeholders (no model calls), labelled "
    "[offline]; routing, escalation and the summaries are real."
)
STEP_CODES = frozenset(
    {
        "rule",
        "confidence_band",
        "escalate_failed_answer",
        "context_fit",
        "context_exceeds",
        "channel_floor",
        "channel_ceiling",
        "single_tier",
        "entitlement_cap",
    }
)
"""Decision reasons that moved the tier; the summary shows them with their text."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatOptions:
    """Who is chatting, on which channel, and whether answers are offline."""

    offline: bool = False
    user: str | None = None
    channel: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Console:
    """The streams a chat reads from and writes to."""

    stdin: IO[str]
    stdout: IO[str]
    stderr: IO[str]


def add_parser(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `chat` to the top-level command group."""
    p = groups.add_parser(
        "chat", help="talk to tierbot in the terminal; every answer says which tier gave it, why"
    )
    p.add_argument(
        "--offline", action="store_true", help="local labelled answers, no model calls or keys"
    )
    p.add_argument("--user", help="user id, for entitlement")
    p.add_argument("--channel", help="channel or surface name, for floors and ceilings")


def run(
    args: argparse.Namespace,
    router: Router,
    execution: tuple[ExecutionSettings, ProviderCredentials],
    stdin: IO[str],
    stdout: IO[str],
    stderr: IO[str],
) -> int:
    """Run `tierbot chat` to the end; return the exit status (130 after Ctrl-C at the prompt)."""
    options = ChatOptions(offline=args.offline, user=args.user, channel=args.channel)
    console = Console(stdin=stdin, stdout=stdout, stderr=stderr)
    try:
        return asyncio.run(chat(options, router, execution, console))
    except KeyboardInterrupt:
        stdout.write("\n")  # after the `you> ` prompt
        return 130


async def chat(
    options: ChatOptions,
    router: Router,
    execution: tuple[ExecutionSettings, ProviderCredentials],
    console: Console,
    *,
    clock: Callable[[], float] = time.time,
) -> int:
    """Converse until EOF or `/quit`; return 0, or 2 when no provider is configured."""
    settings, credentials = execution
    try:
        stack = build_llm_stack(
            policy=router.policy,
            settings=settings,
            credentials=credentials,
            offline=options.offline,
            redis=None,
        )
    except ConfigError as exc:
        console.stderr.write(f"tierbot: {exc}\n")
        return 2
    try:
        await _Session(options, router, settings, stack, console, clock).converse()
    finally:
        await stack.aclose()
    return 0


@dataclass(slots=True)
class _Session:
    """One terminal chat: its turns so far and everything needed to answer the next one."""

    options: ChatOptions
    router: Router
    settings: ExecutionSettings
    stack: LLMStack
    console: Console
    clock: Callable[[], float]
    turns: tuple[Turn, ...] = ()

    def write(self, text: str) -> None:
        self.console.stdout.write(text)
        self.console.stdout.flush()

    async def converse(self) -> None:
        """Prompt, read and answer until end of input or `/quit`."""
        self.write(WELCOME + "\n")
        if self.options.offline:
            self.write(OFFLINE_BANNER + "\n")
        echo = not self.console.stdin.isatty()  # piped input: show it, so the transcript reads
        while True:
            self.write(PROMPT)
            line = await _read_line(self.console.stdin)
            if not line:  # end of input
                self.write("\n")
                return
            text = line.strip()
            if echo:
                self.write(text + "\n")
            if text == "/quit":
                return
            if text == "/reset":
                self.turns = ()
                self.write("(new conversation)\n")
            elif text:
                await self.exchange(Turn(role="user", text=text, ts=self.clock()))

    async def exchange(self, turn: Turn) -> None:
        """Route and answer one user turn; keep it in the conversation only if it was answered."""
        o = self.options
        conversation = Conversation(turns=(*self.turns, turn), user=o.user, channel=o.channel)
        decision = self.router.decide(conversation)
        job = build_job(
            decision=decision,
            messages=messages_of(conversation, DEFAULT_SYSTEM_PROMPT),
            user=o.user,
            channel=o.channel,
            policy=self.router.policy,
            settings=self.settings,
        )
        outcome = await self.answer(job)
        if outcome is None:
            self.write("\n  ✗ answer cancelled (Ctrl-C); the message was left out of the chat\n")
            return
        logger.debug("chat answer decided=%s answered=%s", decision.tier, outcome.tier)
        if not outcome.ok:
            self.write("\n" + _failure(outcome) + "\n")
            return
        self.write("\n" + _summary(decision, outcome, self.router.policy) + "\n")
        reply = Turn(role="assistant", text=outcome.text, ts=self.clock(), tier=outcome.tier)
        self.turns = (*self.turns, turn, reply)

    async def answer(self, job: Job) -> Outcome | None:
        """Stream the answer in a task that Ctrl-C cancels; None when it was cancelled."""
        async with asyncio.TaskGroup() as group:
            task = group.create_task(self.stream(job))
            with _ctrl_c_cancels(task):
                await asyncio.wait((task,))
        return None if task.cancelled() else task.result()

    async def stream(self, job: Job) -> Outcome:
        """Show the deltas as they come (restarting on a `Restart`) and return the `Outcome`."""
        self.write(ANSWER)
        async with aclosing(self.stack.executor.run(job)) as events:
            async for event in events:
                match event:
                    case Delta():
                        self.write(event.text)
                    case Restart():
                        self.write(f"\n  ↺ {event.reason}; the text above is void\n{ANSWER}")
                    case Outcome():
                        return event
                    case _:
                        assert_never(event)
        raise RuntimeError("the executor ended without an Outcome")


@contextmanager
def _ctrl_c_cancels(task: asyncio.Task[Outcome]) -> Iterator[None]:
    """While inside, SIGINT cancels `task` instead of the program; the old handler returns after."""
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGINT)
    try:
        loop.add_signal_handler(signal.SIGINT, task.cancel)
    except (NotImplementedError, RuntimeError):  # no signals on this loop (Windows, a thread)
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)


async def _read_line(stream: IO[str]) -> str:
    """Read a line in a daemon thread: unlike `asyncio.to_thread`, a read still blocked when
    the chat ends (Ctrl-C at the prompt) does not keep `asyncio.run` from returning."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()

    def deliver(line: str, error: Exception | None) -> None:
        if future.done():  # the chat stopped waiting (Ctrl-C)
            return
        if error is None:
            future.set_result(line)
        else:
            future.set_exception(error)

    def read() -> None:
        line = ""
        error: Exception | None = None
        try:
            line = stream.readline()
        except Exception as exc:  # not handled here: the awaiting coroutine re-raises it
            error = exc
        try:
            loop.call_soon_threadsafe(deliver, line, error)
        except RuntimeError:  # the loop is closed: the chat already ended
            return

    threading.Thread(target=read, name="tierbot-chat-stdin", daemon=True).start()
    return await future


def _summary(decision: Decision, outcome: Outcome, policy: Policy) -> str:
    """One line: tier, model, tokens, cost, first-token time, reasons and failed attempts."""
    tier = outcome.tier or decision.tier
    parts = [
        f"tier {tier} {policy.name(tier)}",
        f"{outcome.provider}:{outcome.model}",
        f"{outcome.input_tokens} in / {outcome.output_tokens} out tokens",
        f"${outcome.cost_usd:.6f}",
    ]
    if outcome.ttft_s is not None:
        parts.append(f"first token {outcome.ttft_s:.2f} s")
    if outcome.finish_reason == "length":
        parts.append("cut at the output limit")
    parts.append("reasons: " + ", ".join(_reasons(decision, outcome)))
    failed = [f"{a.provider}:{a.model} {a.error}" for a in outcome.attempts if a.error]
    if failed:
        parts.append("failed: " + ", ".join(failed))
    return "  ↳ " + " · ".join(parts)


def _reasons(decision: Decision, outcome: Outcome) -> list[str]:
    """The base tier (every decision starts there), the steps that moved it, then what the
    executor had to do, each with its text."""
    steps = [r for r in decision.reasons if r.code in STEP_CODES]
    return ["base_tier", *(f"{r.code} ({r.text})" for r in (*steps, *outcome.reasons))]


def _failure(outcome: Outcome) -> str:
    """Say that no answer came, why, and how each attempt failed."""
    lines = ["  ✗ no answer: " + "; ".join(r.text for r in outcome.reasons)]
    lines.extend(
        f"    {a.provider}:{a.model}: {a.error}" + (f": {a.detail}" if a.detail else "")
        for a in outcome.attempts
    )
    lines.append("  (the message was left out of the chat; send it again to retry)")
    return "\n".join(lines)
