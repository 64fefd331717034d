"""The sensitive values a test run handed out, and the scan of log lines and store cells for them.

Three kinds of evidence make a finding:

* **literals**: a registered secret or raw id that is long enough to be unambiguous (a token,
  a phone number, `RAW-USER-4c7e1d`) anywhere in a line or cell; for every raw id also the
  first hex digits of its *unkeyed* MD5/SHA-1/SHA-256, which a brute force reverses (ids are
  enumerable), so only a keyed hash passes;
* **short ids** (`4242`, `c1`, `vip-7`): too common as bare text (ports, counters, dates), so
  only where a line names them as an id (`chat=4242`, `"user_id": "777"`) or as a whole
  store cell;
* **shapes**, whatever the registry holds: a Telegram bot token, `sk-…` and `EAA…` keys,
  `Bearer …`, `hub.verify_token=…`, a raw Telegram or WhatsApp payload, and `chat=`/`user=`
  with a value that is not a hash (our log lines name ids that way, and must hash them).
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.log_capture import MARK

MIN_LITERAL = 6
"""Shorter values, and all-digit values shorter than MIN_DIGITS, are short ids."""
MIN_DIGITS = 9
HASH_PREFIX = 10
"""Hex digits of an unkeyed hash that count as that hash (any truncation keeps its start)."""
STORE = "STORE "
"""Starts a store dump line: `STORE table.column<TAB>value`."""
_ID_KEYS = r"(?:user|chat|sender|from|recipient|wa_id|user_id|chat_id|phone|conversation_id)"
_NAMED_ID = r"(?:user|chat|sender|recipient|wa_id|user_id|chat_id|phone)"
_HASHED = r"(?:[0-9a-f]{12,64}|h1_[0-9a-f]{8,}|-|None)"
SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (label, re.compile(pattern))
    for label, pattern in (
        ("Telegram bot token", r"(?<!\d)\d{6,12}:[A-Za-z0-9_-]{30,}"),
        ("sk- API key", r"\bsk-[A-Za-z0-9_-]{8,}"),
        ("Meta access token", r"\bEAA[A-Za-z0-9]{10,}"),
        ("Bearer credential", r"\bBearer\s+[A-Za-z0-9._~+/=-]{12,}"),
        ("WhatsApp verify token", r"hub\.verify_token=[^&\s\"']+"),
        ("raw WhatsApp sender", r"\"(?:wa_id|from)\"\s*:\s*\"\+?\d{6,}\""),
        ("raw Telegram sender or chat", r"\"(?:from|chat|user)\"\s*:\s*\{\s*\"id\"\s*:\s*-?\d+"),
        (
            "id in a log line is not a hash",
            rf"(?<![\w.-]){_NAMED_ID}=(?!{_HASHED}(?![\w.-]))([^\s,;)|]+)",
        ),
    )
)
"""Shapes checked in every line and cell."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One sensitive value seen where it must not be."""

    source: str
    test: str
    label: str
    excerpt: str
    """The line around the value, the value masked."""


@dataclass(slots=True)
class Registry:
    """Sensitive values by kind, each with a label saying where it came from."""

    literals: dict[str, str] = field(default_factory=dict)
    short_ids: dict[str, str] = field(default_factory=dict)

    def add_secret(self, value: str | bytes, label: str) -> None:
        """A token, key or secret: never in a log line or a store cell."""
        text = value.decode() if isinstance(value, bytes) else value
        if text.strip():
            self._add(text.strip(), label)

    def add_id(self, value: str | int, label: str) -> None:
        """A raw user id, chat id or phone number: only keyed hashes of it may appear."""
        text = str(value).strip()
        if not text:
            return
        self._add(text, label)
        for name in ("md5", "sha1", "sha256"):
            digest = hashlib.new(name, text.encode()).hexdigest()[:HASH_PREFIX]
            self.literals.setdefault(digest, f"unkeyed {name} of {label}")

    def _add(self, text: str, label: str) -> None:
        long_enough = len(text) >= (MIN_DIGITS if text.isdigit() else MIN_LITERAL)
        (self.literals if long_enough else self.short_ids).setdefault(text, label)

    def __len__(self) -> int:
        return len(self.literals) + len(self.short_ids)

    def short_id_pattern(self) -> re.Pattern[str] | None:
        """Short ids where a line names them as ids: `chat=4242`, `"user_id": 777`."""
        if not self.short_ids:
            return None
        values = "|".join(re.escape(v) for v in sorted(self.short_ids, key=len, reverse=True))
        return re.compile(rf"(?<![\w.-])[\"']?{_ID_KEYS}[\"']?\s*[=:]\s*[\"']?({values})(?![\w.-])")


def mask(value: str) -> str:
    """Enough of a value to recognise it in the test data, never all of it."""
    if len(value) <= MIN_LITERAL:
        return "*" * len(value)
    return f"{value[:3]}{'*' * (len(value) - 5)}{value[-2:]}"


def _excerpt(line: str, start: int, end: int) -> str:
    masked = line[:start] + mask(line[start:end]) + line[end:]
    left = max(0, start - 80)
    right = min(len(masked), end + 80)
    return (
        ("…" if left else "")
        + masked[left:right].rstrip("\n")
        + ("…" if right < len(masked) else "")
    )


Exemption = tuple[str, re.Pattern[str]]
"""(why, pattern): a line the pattern finds is not ours to judge (a fake server's own log)."""


class Scanner:
    """Scans lines against one registry; literals are found with one pass per value over a
    whole file's text, which is far faster than a per-line loop in Python."""

    def __init__(self, registry: Registry, exempt: Sequence[Exemption] = ()) -> None:
        self._literals = dict(registry.literals)
        self._short = registry.short_id_pattern()
        self._short_labels = dict(registry.short_ids)
        self._exempt = exempt
        self.lines = 0
        self.exempted: Counter[str] = Counter()
        """Findings skipped, by the reason of their exemption."""

    def scan_file(self, path: Path, source: str) -> list[Finding]:
        """Every finding in one capture file (log lines, marks and store dump lines)."""
        text = path.read_text(encoding="utf-8", errors="replace")
        return list(self.scan_text(text, source))

    def scan_text(self, text: str, source: str) -> Iterator[Finding]:
        starts, tests = _index(text)
        self.lines += text.count("\n") - len(tests)
        hits: list[tuple[int, int, int, str]] = []  # begin, rank, end, label
        for value, label in self._literals.items():
            at = text.find(value)
            while at != -1:
                hits.append((at, 0, at + len(value), label))
                at = text.find(value, at + 1)
        patterns = ([("", self._short)] if self._short else []) + [*SHAPES]
        for label, pattern in patterns:
            for match in pattern.finditer(text):
                begin, end = match.span(1) if match.re.groups else match.span()
                hits.append((begin, 2 if label else 1, end, label or self._short_labels[match[1]]))
        hits += _store_cells(text, self._short_labels)
        hits.sort()  # where evidence overlaps, a registered value's label wins over a shape's
        offsets = [at for at, _ in tests]
        covered = -1
        for begin, _, end, label in hits:
            line_start = starts[bisect_right(starts, begin) - 1]
            if begin < covered or text.startswith(MARK, line_start):  # a mark is a test's name
                continue
            covered = end
            why = self._exemption(text, line_start)
            if why is not None:
                self.exempted[why] += 1
                continue
            owner = bisect_right(offsets, begin) - 1
            test = tests[owner][1] if owner >= 0 else "(before the first test)"
            yield _finding(text, line_start, begin, end, label, source, test)

    def _exemption(self, text: str, line_start: int) -> str | None:
        line_end = text.find("\n", line_start)
        line = text[line_start : len(text) if line_end == -1 else line_end]
        return next((why for why, pattern in self._exempt if pattern.search(line)), None)


def _index(text: str) -> tuple[list[int], list[tuple[int, str]]]:
    """Line starts, and (offset, test) for every mark line."""
    starts = [0, *(m.end() for m in re.finditer("\n", text))]
    tests = [(m.start(), m.group(1)) for m in re.finditer(f"^{MARK}(.*)$", text, re.M)]
    return starts, tests


def _store_cells(text: str, short: dict[str, str]) -> Iterable[tuple[int, int, int, str]]:
    """A cell of an id column (`user_hash`, `chat_hash`, `conversation_id`) that *is* a short
    id; other columns (`turn_id`, `seq`) hold short values of their own."""
    column = r"\w*(?:user|chat|conversation|sender|phone|wa_id)\w*"
    for match in re.finditer(rf"^{STORE}\w+\.{column}\t([^\t\n]*)", text, re.M):
        if match[1] in short:
            yield match.start(1), 1, match.end(1), short[match[1]]


def _finding(
    text: str, line_start: int, begin: int, end: int, label: str, source: str, test: str
) -> Finding:
    line_end = text.find("\n", begin)
    line = text[line_start : len(text) if line_end == -1 else line_end]
    excerpt = _excerpt(line, begin - line_start, end - line_start)
    return Finding(source=source, test=test, label=label, excerpt=excerpt)


def store_lines(table: str, column: str, values: Iterable[object]) -> Iterator[str]:
    """Dump lines for one column's values (None skipped), newlines escaped."""
    for value in values:
        if value is not None:
            cell = str(value).replace("\r", "\\r").replace("\n", "\\n")
            yield f"{STORE}{table}.{column}\t{cell}\n"
