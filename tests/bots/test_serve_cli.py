"""`tierbot serve`: start-up errors, SIGTERM in process, and the real command end to end."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import openai
import pytest
from aiohttp.test_utils import TestServer

from bots.admin import AdminListener
from bots.api_settings import load_api_settings
from bots.serve_cli import add_serve_parser, build_serving, run_serve, serve
from routing.errors import ConfigError
from routing.policy import build_policy
from routing.router import Router
from routing.settings import load_routing_settings
from routing.signals.complexity import load_complexity_model
from tests.bots.conftest import HELLO, build_app
from tests.bots.redis_fixtures import REDIS_URL, connect, delete_prefix, unique_prefix

ROOT = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "admin-token-0123456789abcdef"


def test_api_settings_split_keys_and_name_a_bad_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERBOT_API_KEYS", " sk-a , ,sk-b,")
    assert [k.get_secret_value() for k in load_api_settings().keys] == ["sk-a", "sk-b"]
    monkeypatch.setenv("TIERBOT_API_PORT", "http")
    with pytest.raises(ConfigError, match=r"^invalid configuration: TIERBOT_API_PORT: "):
        load_api_settings()


def serve_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_serve_parser(parser.add_subparsers(dest="group"))
    return parser.parse_args(["serve", *argv])


def test_serve_refuses_bad_settings_and_a_taken_port(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GROQ_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    policy = build_policy(load_routing_settings())
    router = Router(policy=policy, complexity=load_complexity_model())
    assert run_serve(serve_args("--port", "0"), policy=policy, router=router) == 2
    assert capsys.readouterr().err.startswith("tierbot: no LLM provider is configured")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        args = serve_args("--offline", "--host", "127.0.0.1", "--port", port)
        assert run_serve(args, policy=policy, router=router) == 1
    assert capsys.readouterr().err.startswith("tierbot: cannot serve: ")
    monkeypatch.setenv("TIERBOT_API_SHUTDOWN_GRACE_SECONDS", "0")
    assert run_serve(serve_args("--offline"), policy=policy, router=router) == 2
    assert "TIERBOT_API_SHUTDOWN_GRACE_SECONDS" in capsys.readouterr().err


async def served_url(stream: asyncio.StreamReader, lines: list[str]) -> str:
    """Read a server's stderr into `lines` up to `tierbot: serving on URL`; return the URL."""
    async with asyncio.timeout(20):
        while line := (await stream.readline()).decode():
            lines.append(line)
            if line.startswith("tierbot: serving on "):
                return line.removeprefix("tierbot: serving on ").strip()
    raise AssertionError("the server never said where it listens:\n" + "".join(lines))


async def stream_offline(url: str) -> str:
    """One streamed answer from a keyless server on loopback."""
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="-", max_retries=0) as client:
        stream = await client.chat.completions.create(model="auto", messages=HELLO, stream=True)
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])


class Stderr(io.StringIO):
    """Stands in for sys.stderr and says when the server has written where it listens."""

    def __init__(self) -> None:
        super().__init__()
        self.serving = asyncio.Event()

    def write(self, text: str, /) -> int:
        if text.startswith("tierbot: serving on "):
            self.serving.set()
        return super().write(text)


async def test_serve_runs_until_sigterm_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    stderr = Stderr()
    monkeypatch.setattr(sys, "stderr", stderr)
    app = build_app(offline=True)
    task = asyncio.create_task(serve(app, host="127.0.0.1", port=0, shutdown_grace_s=2.0))
    await asyncio.wait_for(stderr.serving.wait(), 10)
    url = stderr.getvalue().split("serving on ")[1].strip()
    assert (await stream_offline(url)).startswith("[offline]")
    os.kill(os.getpid(), signal.SIGTERM)  # serve() handles it: the test process lives on
    await asyncio.wait_for(task, 5)


async def test_serve_offline_end_to_end() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIERBOT_", "OPENAI_"))}
    server = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bots", "serve", "--offline", "--port", "0"),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert server.stderr is not None
    lines: list[str] = []
    try:
        url = await served_url(server.stderr, lines)
        async with aiohttp.ClientSession() as session, session.get(f"{url}/readyz") as ready:
            assert (ready.status, (await ready.json())["offline"]) == (200, True)
        assert (await stream_offline(url)).startswith("[offline]")
        server.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(server.wait(), 5) == 0
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()
    lines.append((await server.stderr.read()).decode())
    assert "TIERBOT_API_KEYS is empty" in "".join(lines)


def _admin_url(server: TestServer) -> str:
    """Where the admin pages and /metrics are: a listener of their own beside the public app
    (roles web and all), or the worker's health listener (role worker)."""
    listeners = [c for c in server.app.cleanup_ctx if isinstance(c, AdminListener)]
    if not listeners:
        return str(server.make_url("")).rstrip("/")
    host, port = listeners[0].addresses[0][:2]  # type: ignore[index]  # (host, port) of TCP
    return f"http://{host}:{port}"


@pytest.mark.parametrize("role", ["all", "web", "worker"])
async def test_metrics_show_the_queue_and_every_chain_models_breaker_after_start_up(
    role: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TIERBOT_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("TIERBOT_ADMIN_PORT", "0")
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'feedback.sqlite3'}")
    prefix = unique_prefix("serve")
    if role != "all":
        monkeypatch.setenv("REDIS_URL", REDIS_URL)
        monkeypatch.setenv("TIERBOT_REDIS_KEY_PREFIX", prefix)
    policy = build_policy(load_routing_settings())
    router = Router(policy=policy, complexity=load_complexity_model())
    serving = build_serving(serve_args("--role", role, "--offline"), policy=policy, router=router)
    server = TestServer(serving.app, host="127.0.0.1", port=0)
    await server.start_server()
    wanted = [
        "tierbot_queue_depth 0.0",
        *(
            f'tierbot_breaker_state{{model="offline-{speed}",provider="offline"}} 0.0'
            for speed in ("fast", "mid", "frontier")
        ),
    ]
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    try:
        async with aiohttp.ClientSession(headers=headers) as session, asyncio.timeout(10):
            while True:
                async with session.get(f"{_admin_url(server)}/metrics") as response:
                    assert response.status == 200
                    lines = (await response.text()).splitlines()
                if all(line in lines for line in wanted):
                    break
                await asyncio.sleep(0.05)
    finally:
        await server.close()
        if role != "all":
            client = await connect()
            await delete_prefix(client, prefix)
            await client.aclose()
