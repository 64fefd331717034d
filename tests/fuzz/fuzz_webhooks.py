"""Coverage-guided fuzzing (atheris) of the webhook parsers and the WhatsApp signature check.

One entry point per target; only `bots` is instrumented. Invariants:

- `telegram`, `whatsapp`: any raw body is parsed or refused with `BadUpdate`, nothing else
  escapes, and what comes back is an `InboundMessage` (or None, or a list of them). Seeded
  with the valid updates the webhook and end-to-end tests send, and a dictionary of the
  platforms' field names.
- `telegram-json`, `whatsapp-json`: the same property tests the suite runs with hypothesis
  (`tests/bots/test_*_ingest.py`), driven by the fuzzer through their own strategies
  (mutated valid updates and arbitrary JSON) with `fuzz_one_input`.
- `signature`: the exact signature of a body is accepted; one flipped bit of the body or of
  the signature is refused; any other header is refused.

Run one target until stopped, or with libFuzzer's flags:

    python3 -m uv run python -m tests.fuzz.fuzz_webhooks telegram -max_total_time=600

Without a corpus directory argument the seeds are written to a fresh temporary directory (new
inputs land there too; it is kept); crash inputs go to the current directory unless
`-artifact_prefix=` says otherwise.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import atheris  # type: ignore[import-untyped]  # publishes no type stubs

from tests.bots.json_mutation import flip

SECRET = b"fuzz-app-secret"
PHONE_ID = "1122334455667"
Target = Callable[[bytes], None]
WORDS = (
    *("update_id", "message", "edited_message", "callback_query", "message_reaction"),
    *("stopped_message_generation", "chat", "from", "sender_chat", "id", "type", "text"),
    *("caption", "date", "edit_date", "data", "private", "group", "supergroup", "channel"),
    *("fb:t:up", "emoji", "new_reaction", "old_reaction", "draft_id", "message_id", "object"),
    *("whatsapp_business_account", "entry", "changes", "field", "messages", "value"),
    *("metadata", "phone_number_id", "contacts", "wa_id", "user_id", "from_user_id"),
    *("statuses", "status", "errors", "code", "timestamp", "interactive", "button_reply"),
    *("list_reply", "button", "payload", "reaction", "context", "body", "recipient_id"),
)
"""JSON keys and values the parsers look for: libFuzzer splices them in (`-dict`)."""
TOKENS = (
    *("9223372036854775808", "-9223372036854775809", "1e999", "NaN", "1.0", "true", "null"),
    *("[" * 16, "]" * 16),
)


def dictionary() -> str:
    """The words and tokens in libFuzzer's dictionary format (quoted, `\\` escapes)."""
    quoted = [f'"\\"{word}\\""' for word in WORDS]
    return "\n".join([*quoted, *(f'"{token}"' for token in TOKENS), '"\\\\ud800"']) + "\n"


def telegram_target() -> Target:
    """Raw bytes into the Telegram update parser."""
    with atheris.instrument_imports(include=["bots"]):
        errors = importlib.import_module("bots.errors")
        ingest = importlib.import_module("bots.telegram_ingest")
        types = importlib.import_module("bots.types")

    def run(data: bytes) -> None:
        try:
            result = ingest.parse_update(data, received_at=1.0, ignored=Counter())
        except errors.BadUpdate:
            return
        if result is not None and not isinstance(result, types.InboundMessage):
            raise AssertionError(f"parse_update returned {type(result).__name__}")

    return run


def whatsapp_target() -> Target:
    """Raw bytes into the WhatsApp notification parser."""
    with atheris.instrument_imports(include=["bots"]):
        errors = importlib.import_module("bots.errors")
        ingest = importlib.import_module("bots.whatsapp_ingest")
        types = importlib.import_module("bots.types")

    def run(data: bytes) -> None:
        try:
            result = ingest.parse_webhook(data, phone_number_id=PHONE_ID, ignored=Counter())
        except errors.BadUpdate:
            return
        if not all(isinstance(message, types.InboundMessage) for message in result):
            raise AssertionError("parse_webhook returned something else than messages")

    return run


def signature_target() -> Target:
    """A body, a bit position and a presented header into the signature check."""
    with atheris.instrument_imports(include=["bots"]):
        ingest = importlib.import_module("bots.whatsapp_ingest")

    def run(data: bytes) -> None:
        provider = atheris.FuzzedDataProvider(data)
        body = provider.ConsumeBytes(provider.ConsumeIntInRange(0, 4096))
        bit = provider.ConsumeIntInRange(0, 2**32)
        presented = provider.ConsumeUnicodeNoSurrogates(provider.remaining_bytes())
        exact = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        if not ingest.signature_valid(SECRET, body, exact):
            raise AssertionError("the exact signature was refused")
        if body and ingest.signature_valid(SECRET, flip(body, bit), exact):
            raise AssertionError("a body with one flipped bit was accepted")
        flipped = flip(exact.encode(), bit).decode("latin-1")
        if ingest.signature_valid(SECRET, body, flipped):
            raise AssertionError("a signature with one flipped bit was accepted")
        if ingest.signature_valid(SECRET, body, presented) != (presented == exact):
            raise AssertionError("a header other than the exact signature was accepted")

    return run


def property_target(module: str) -> Callable[[], Target]:
    """The suite's hypothesis property `test_any_json_is_parsed_or_refused_with_bad_update` of
    `module`, fed by the fuzzer through its own strategies."""

    def build() -> Target:
        with atheris.instrument_imports(include=["bots"]):
            tests = importlib.import_module(module)
        test: Any = tests.test_any_json_is_parsed_or_refused_with_bad_update
        fuzz_one_input: Target = test.hypothesis.fuzz_one_input
        return fuzz_one_input

    return build


TARGETS: dict[str, Callable[[], Target]] = {
    "telegram": telegram_target,
    "whatsapp": whatsapp_target,
    "signature": signature_target,
    "telegram-json": property_target("tests.bots.test_telegram_ingest"),
    "whatsapp-json": property_target("tests.bots.test_whatsapp_ingest"),
}


def seeds(target: str) -> list[bytes]:
    """Valid bodies the tests send, as the first inputs of `target`."""
    if target == "telegram":
        from tests.bots.test_telegram_ingest import TEMPLATES
        from tests.bots.webhook_support import tg_update

        return [tg_update(), *(json.dumps(update).encode() for update in TEMPLATES)]
    if target == "whatsapp":
        from tests.bots.test_whatsapp_ingest import TEMPLATE
        from tests.bots.webhook_support import wa_body, wa_msg, wa_value

        statuses: list[dict[str, object]] = [
            {"id": "wamid.OUT", "status": "read", "timestamp": "1", "recipient_id": "49"}
        ]
        return [
            wa_body(wa_value([wa_msg()])),
            wa_body(wa_value(statuses=statuses)),
            json.dumps(TEMPLATE).encode(),
        ]
    if target == "signature":
        return [b"\x10" + b"\x00" * 8 + b"sha256=" + b"0" * 64]
    return []


def libfuzzer_args(target: str, argv: Sequence[str], workdir: Path) -> list[str]:
    """`argv` plus a seeded corpus directory (unless one is given) and the dictionary."""
    flags = [arg for arg in argv if arg.startswith("-")]
    corpora = [arg for arg in argv if not arg.startswith("-")]
    if not corpora:
        corpus = workdir / "corpus"
        corpus.mkdir()
        for index, seed in enumerate(seeds(target)):
            (corpus / f"seed-{index}").write_bytes(seed)
        corpora = [str(corpus)]
    if target in ("telegram", "whatsapp") and not any(f.startswith("-dict=") for f in flags):
        words = workdir / "json.dict"
        words.write_text(dictionary())
        flags.append(f"-dict={words}")
    return [*flags, *corpora]


def main(argv: Sequence[str]) -> None:
    """`fuzz_webhooks TARGET [libFuzzer flags] [corpus dirs]`; exits as libFuzzer does."""
    if len(argv) < 2 or argv[1] not in TARGETS:
        sys.exit(f"usage: {argv[0]} {{{','.join(TARGETS)}}} [libFuzzer flags] [corpus dirs]")
    target = argv[1]
    workdir = Path(tempfile.mkdtemp(prefix=f"fuzz-{target}-"))  # libFuzzer exits, never returns
    sys.stderr.write(f"fuzz_webhooks: seeds and dictionary in {workdir}\n")
    run = TARGETS[
        target
    ]()  # first: the seeds import `bots` too, and only a first import is instrumented
    atheris.Setup([argv[0], *libfuzzer_args(target, argv[2:], workdir)], run)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
