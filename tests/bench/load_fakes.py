"""The load benchmark's outside world in a process of its own: the fake LLM (scripted per model),
the fake Telegram Bot API and the fake WhatsApp Cloud API, all on 127.0.0.1.

Run by `bench_load` (through `endpoint_procs.start_child`, so it dies with the benchmark):
`python -m tests.bench.load_fakes --script JSON`. It writes one JSON line with its URLs, then one
line per call that puts text in front of a user, as the fakes record it (`at` is the fake's
`time.monotonic()`, one clock for every process on the machine), and on stdin's end a summary
line of every request the fakes got; then it exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections import Counter
from urllib.parse import urlsplit

from bots.delivery import parse_feedback
from tests.bench.fake_upstream import widen_backlog
from tests.fakes.llm import Behaviour, FakeLLM
from tests.fakes.telegram import Call, FakeTelegram
from tests.fakes.whatsapp import FakeWhatsApp, Sent

LLM_KEY = "sk-load-fake-llm-2b7d"
BOT_TOKEN = "987654321:AAFakeLoadBenchToken_0123456789abcde"
WA_TOKEN = "EAALoadBenchAccessToken"
WA_PHONE = "5550001112223"
TEXT_METHODS = frozenset({"sendMessageDraft", "sendMessage", "editMessageText"})
"""Telegram methods that show text to the user (typing actions and button answers do not)."""
POLL_S = 0.02


def _turn_of_markup(markup: object) -> str | None:
    """The turn id in a Telegram inline keyboard's feedback buttons, if any."""
    if not isinstance(markup, dict):
        return None
    for row in markup.get("inline_keyboard") or []:
        for button in row if isinstance(row, list) else []:
            parsed = (
                parse_feedback(button.get("callback_data")) if isinstance(button, dict) else None
            )
            if parsed is not None:
                return parsed[0]
    return None


def telegram_event(call: Call) -> dict[str, object] | None:
    """The JSON line for a Telegram call that shows text, else None."""
    if call.method not in TEXT_METHODS:
        return None
    return {
        "ch": "telegram",
        "chat": str(call.params.get("chat_id")),
        "m": call.method,
        "at": call.at,
        "text": str(call.params.get("text", ""))[:300],
        "turn": _turn_of_markup(call.params.get("reply_markup")),
    }


def whatsapp_event(sent: Sent) -> dict[str, object] | None:
    """The JSON line for a WhatsApp message sent (a text or buttons), else None."""
    if sent.kind not in ("text", "interactive"):
        return None
    body = sent.body
    text, turn = "", None
    if sent.kind == "text" and isinstance(body.get("text"), dict):
        text = str(body["text"].get("body", ""))  # type: ignore[union-attr]
    interactive = body.get("interactive")
    if sent.kind == "interactive" and isinstance(interactive, dict):
        shown = interactive.get("body")
        text = str(shown.get("text", "")) if isinstance(shown, dict) else ""
        action = interactive.get("action")
        buttons = action.get("buttons") if isinstance(action, dict) else None
        first = buttons[0] if isinstance(buttons, list) and buttons else None
        reply = first.get("reply") if isinstance(first, dict) else None
        parsed = parse_feedback(str(reply.get("id"))) if isinstance(reply, dict) else None
        turn = None if parsed is None else parsed[0]
    kind = sent.kind if sent.status == 200 else f"error:{sent.status}"
    return {
        "ch": "whatsapp",
        "chat": str(body.get("to", "")),
        "m": kind,
        "at": sent.at,
        "text": text[:300],
        "turn": turn,
    }


class Relay:
    """Copies the fakes' new records to stdout as JSON lines."""

    def __init__(self, telegram: FakeTelegram, whatsapp: FakeWhatsApp) -> None:
        self._telegram = telegram
        self._whatsapp = whatsapp
        self._seen_tg = 0
        self._seen_wa = 0

    def flush(self) -> None:
        lines: list[str] = []
        calls = self._telegram.calls
        for call in calls[self._seen_tg :]:
            event = telegram_event(call)
            if event is not None:
                lines.append(json.dumps(event))
        self._seen_tg = len(calls)
        sent = self._whatsapp.sent
        for item in sent[self._seen_wa :]:
            event = whatsapp_event(item)
            if event is not None:
                lines.append(json.dumps(event))
        self._seen_wa = len(sent)
        if lines:
            sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.flush()


async def _stdin_closed() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()


def _summary(llm: FakeLLM, telegram: FakeTelegram, whatsapp: FakeWhatsApp) -> dict[str, object]:
    models = Counter(r.model for r in llm.received)
    return {
        "summary": True,
        "llm_requests": dict(models),
        "llm_abandoned": {m: llm.disconnects(m) for m in models if llm.disconnects(m)},
        "telegram_calls": dict(Counter(c.method for c in telegram.calls)),
        "whatsapp_requests": dict(Counter(f"{s.kind}:{s.status}" for s in whatsapp.sent)),
    }


async def serve(script: dict[str, dict[str, float | str]], max_seconds: float) -> None:
    """Serve until stdin closes, SIGTERM/SIGINT, or `max_seconds`; relay records meanwhile."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with (
        FakeLLM(api_key=LLM_KEY) as llm,
        FakeTelegram(token=BOT_TOKEN) as telegram,
        FakeWhatsApp(access_token=WA_TOKEN, phone_number_id=WA_PHONE) as whatsapp,
    ):
        for model, b in script.items():
            llm.script(
                model,
                Behaviour(
                    text=str(b["text"]),
                    ttft=float(b["ttft"]),
                    tokens_per_second=float(b["tokens_per_second"]),
                ),
            )
        for url in (llm.url, telegram.url, whatsapp.url):
            port = urlsplit(url).port
            if port is None or not widen_backlog(port):
                raise RuntimeError(f"no listening socket found for {url}")
        urls = {"llm": llm.url, "openai": llm.openai_url}
        urls |= {"telegram": telegram.url, "whatsapp": whatsapp.url}
        sys.stdout.write(json.dumps(urls) + "\n")
        sys.stdout.flush()
        relay = Relay(telegram, whatsapp)
        closed = asyncio.create_task(_stdin_closed())
        stopped = asyncio.create_task(stop.wait())
        async with asyncio.timeout(max_seconds):
            while not (closed.done() or stopped.done()):
                relay.flush()
                await asyncio.wait((closed, stopped), timeout=POLL_S)
        relay.flush()
        closed.cancel()
        stopped.cancel()
        sys.stdout.write(json.dumps(_summary(llm, telegram, whatsapp)) + "\n")
        sys.stdout.flush()


def main() -> None:
    """Parse the arguments and serve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--script", required=True, help="JSON: model -> text, ttft, tps")
    parser.add_argument("--max-seconds", type=float, default=900.0)
    args = parser.parse_args()
    asyncio.run(serve(json.loads(args.script), args.max_seconds))


if __name__ == "__main__":
    main()
