"""`tierbot chat`: the real command offline, and the runner against a fake LLM server."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bots.chat_cli import OFFLINE_BANNER, ChatOptions, Console, add_parser, chat, run
from routing.execution_settings import load_execution_settings
from routing.policy import build_policy
from routing.router import Router
from routing.settings import load_routing_settings
from routing.signals.complexity import load_complexity_model
from tests.fakes.llm import Behaviour, FakeLLM

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-chat-test-3f9a1c"
KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GROQ_API_KEY")
RESET = "How do I reset my router?"
ANGRY = "That's wrong!!! You didn't answer my question"
STILL = "Still wrong!!! This is useless, I asked how to reset my router"
CHAINS = {"fast": ["groq:fast-a", "openai:fast-b"], "mid": ["openai:mid"], "3": ["openai:top"]}
SUMMARY = re.compile(r"^  ↳ tier (\d) (\w+) · (\S+) · .*$", re.MULTILINE)


def child_env() -> dict[str, str]:
    """The environment of a child `tierbot`: no provider keys, no TIERBOT_* from the shell."""
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TIERBOT_") and not k.endswith(("_API_KEY", "_BASE_URL"))
    }
    return keep | {"PYTHONIOENCODING": "utf-8"}


async def test_offline_chat_escalates_cancels_on_ctrl_c_and_ends_at_eof() -> None:
    child = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bots", "chat", "--offline"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=child_env(),
    )
    assert child.stdin is not None
    assert child.stdout is not None
    child.stdin.write(f"{RESET}\n{ANGRY}\n{STILL}\n".encode())
    async with asyncio.timeout(30):
        seen = await child.stdout.readuntil(b"offline:offline-mid")  # the second summary
        seen += await child.stdout.readuntil(b"bot> [offline]")  # the third answer streams
        child.send_signal(signal.SIGINT)
        seen += await child.stdout.readuntil(b"answer cancelled (Ctrl-C)")
        rest, err = await child.communicate(b"/reset\n")  # then end of input
    out = (seen + rest).decode()
    assert (child.returncode, err.decode()) == (0, "")
    assert OFFLINE_BANNER in out
    assert [a[:9] for a in re.findall(r"^bot> (.*)$", out, re.M)] == ["[offline]"] * 3
    assert SUMMARY.findall(out) == [
        ("1", "fast", "offline:offline-fast"),
        ("2", "mid", "offline:offline-mid"),
    ]
    first, second = (m.group(0) for m in SUMMARY.finditer(out))
    assert first.endswith("· reasons: base_tier")
    assert "· reasons: base_tier, escalate_failed_answer (frustration " in second
    assert "(previous answer on fast)" in second
    assert out.endswith("you> /reset\n(new conversation)\nyou> \n")


def test_without_keys_it_names_the_variables_and_exits_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bots", "chat"],
        input=f"{RESET}\n",
        capture_output=True,
        encoding="utf-8",
        cwd=ROOT,
        env=child_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert all(name in done.stderr for name in (*KEYS, "--offline"))
    assert "bot> " not in done.stdout


@pytest.fixture
def router() -> Router:
    return Router(policy=build_policy(load_routing_settings()), complexity=load_complexity_model())


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeLLM]:
    """A fake Groq and OpenAI on loopback, wired in through the real provider variables."""
    async with FakeLLM(api_key=KEY) as server:
        for vendor, url in {"GROQ": server.url, "OPENAI": server.openai_url}.items():
            monkeypatch.setenv(f"{vendor}_API_KEY", KEY)
            monkeypatch.setenv(f"{vendor}_BASE_URL", url)
        monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
        monkeypatch.setenv("TIERBOT_CHAINS", json.dumps(CHAINS))
        price = {"input_per_mtok": 1000, "output_per_mtok": 2000, "context_window": 100000}
        monkeypatch.setenv("TIERBOT_MODEL_SPECS", json.dumps({"fast-b": price}))
        yield server


class Screen(io.StringIO):
    """The chat's output, which a test can wait on."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def write(self, text: str, /) -> int:
        self.changed.set()
        return super().write(text)

    async def shows(self, marker: str) -> None:
        while marker not in self.getvalue():
            self.changed.clear()
            await self.changed.wait()


def console(stdin: str) -> tuple[Console, Screen]:
    screen = Screen()
    return Console(stdin=io.StringIO(stdin), stdout=screen, stderr=io.StringIO()), screen


def history(fake: FakeLLM, model: str) -> list[str]:
    """The messages after the system prompt in the newest request for `model`."""
    sent = fake.last(model).body["messages"]
    assert isinstance(sent, list)
    return [m["content"] for m in sent[1:]]


async def test_a_cut_stream_restarts_on_the_fallback_and_the_summary_says_so(
    fake: FakeLLM, router: Router
) -> None:
    fake.script("fast-a", Behaviour(text="Unplug it and wait a minute.", cut_after=3))
    fake.script("fast-b", Behaviour(text="Hold the reset button for ten seconds."))
    term, screen = console(f"{RESET}\n")
    assert await chat(ChatOptions(), router, load_execution_settings(), term) == 0
    out = screen.getvalue()
    assert (
        "bot> Unplug it and \n"
        "  ↺ answer restarted on openai:fast-b; the text above is void\n"
        "bot> Hold the reset button for ten seconds.\n"
    ) in out
    assert SUMMARY.findall(out) == [("1", "fast", "openai:fast-b")]
    assert "· reasons: base_tier · failed: groq:fast-a ProviderUnavailable\n" in out
    ((tokens_in, tokens_out, cost),) = re.findall(r"(\d+) in / (\d+) out tokens · \$(\S+) ", out)
    assert (tokens_out, cost) == ("7", f"{(int(tokens_in) * 1000 + 7 * 2000) / 1e6:.6f}")


async def test_a_failed_answer_is_reported_and_the_chat_goes_on(
    fake: FakeLLM, router: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIERBOT_MAX_ATTEMPTS", "1")
    fake.script("fast-a", Behaviour(status=503, error_message="overloaded"))
    fake.script("mid", Behaviour(text="Press and hold reset.", finish_reason="length"))
    term, screen = console(f"{RESET}\n{ANGRY}\n")
    assert await chat(ChatOptions(), router, load_execution_settings(), term) == 0
    out = screen.getvalue()
    assert "  ✗ no answer: 1 attempts made; no provider answered\n" in out
    assert "    groq:fast-a: ProviderUnavailable: groq fast-a: HTTP 503" in out
    assert SUMMARY.findall(out) == [("2", "mid", "openai:mid")]
    assert "· cut at the output limit · reasons: base_tier, escalate_failed_answer (" in out
    assert history(fake, "mid") == [ANGRY]  # the unanswered message was left out


async def test_ctrl_c_cancels_only_the_answer(fake: FakeLLM, router: Router) -> None:
    handler = signal.getsignal(signal.SIGINT)
    fake.script("fast-a", Behaviour(text="one two three four", tokens_per_second=8))
    term, screen = console(f"{RESET}\nhello again\n")

    async def interrupt() -> None:
        await screen.shows("bot> one")
        signal.raise_signal(signal.SIGINT)

    async with asyncio.timeout(10), asyncio.TaskGroup() as group:
        group.create_task(interrupt())
        done = group.create_task(chat(ChatOptions(), router, load_execution_settings(), term))
    assert done.result() == 0
    text = screen.getvalue()
    assert "answer cancelled (Ctrl-C)" in text
    assert "bot> one two three four\n  ↳ tier 1 fast · groq:fast-a" in text
    assert fake.disconnects("fast-a") == 1
    assert history(fake, "fast-a") == ["hello again"]
    assert signal.getsignal(signal.SIGINT) is handler  # the loop's own handler is back


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tierbot")
    add_parser(parser.add_subparsers(dest="group", required=True))
    return parser.parse_args(argv)


async def test_the_runner_works_outside_the_main_thread(fake: FakeLLM, router: Router) -> None:
    args = parse("chat", "--user", "u1", "--channel", "web")
    out, err = io.StringIO(), io.StringIO()
    stdin = io.StringIO(f"{RESET}\n\n/reset\n{ANGRY}\n/quit\nnever read\n")
    execution = load_execution_settings()
    assert await asyncio.to_thread(run, args, router, execution, stdin, out, err) == 0
    assert SUMMARY.findall(out.getvalue()) == [
        ("1", "fast", "groq:fast-a"),
        ("2", "mid", "openai:mid"),
    ]
    assert "(new conversation)" in out.getvalue()
    assert history(fake, "mid") == [ANGRY]  # /reset forgot the first exchange
    assert stdin.read() == "never read\n"
    assert (OFFLINE_BANNER in out.getvalue(), err.getvalue()) == (False, "")


def test_run_exits_2_without_keys(router: Router, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KEYS:
        monkeypatch.delenv(name, raising=False)
    out, err = io.StringIO(), io.StringIO()
    status = run(parse("chat"), router, load_execution_settings(), io.StringIO(), out, err)
    assert (status, out.getvalue()) == (2, "")
    assert err.getvalue().startswith("tierbot: no LLM provider is configured: set GROQ_API_KEY")


def readers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "tierbot-chat-stdin"}


def test_ctrl_c_at_the_prompt_exits_130(router: Router) -> None:
    read_fd, write_fd = os.pipe()
    stdin = open(read_fd, encoding="utf-8")  # noqa: SIM115 -- closed after the reader is done
    out, err = io.StringIO(), io.StringIO()
    earlier = readers()

    def interrupt() -> None:  # once the chat waits at the prompt
        deadline = time.monotonic() + 10
        while not readers() - earlier and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    killer = threading.Thread(target=interrupt)
    killer.start()
    status = run(parse("chat", "--offline"), router, load_execution_settings(), stdin, out, err)
    killer.join()
    os.close(write_fd)  # the blocked reader sees EOF and finds the loop closed
    for thread in readers() - earlier:
        thread.join(5)
    stdin.close()
    assert (status, err.getvalue()) == (130, "")
    assert out.getvalue().endswith("you> \n")
    assert OFFLINE_BANNER in out.getvalue()


def test_an_unreadable_input_stops_the_chat_with_its_error(router: Router) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(b"\xff\xfe broken\n"), encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(UnicodeDecodeError):
        run(parse("chat", "--offline"), router, load_execution_settings(), stdin, out, err)
