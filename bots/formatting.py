"""Renders an LLM's Markdown for the chat platforms: Telegram HTML, WhatsApp markup, plain text,
split to the platforms' length limits, plus the fixed texts that replace or close an answer.

The Markdown is parsed leniently into blocks (code fences, headings, quotes, list items, tables,
rules, lines) and inline spans (code, links, bold, italic, strike). Every span is rendered with
both of its tags, so the HTML is always balanced; an unclosed `**` or fence of a cut-off answer
stays literal text (or, for a fence, code to the end). Rendering never makes the visible text
longer than the Markdown, so a part split from the Markdown still fits once rendered.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

TELEGRAM_LIMIT = 4096
"""Characters of a Telegram message after entity parsing, counted in UTF-16 code units."""
WHATSAPP_LIMIT = 4096
"""Characters of a WhatsApp text body."""

_LANG_CHARS = 20
_FENCE = "```"
_FENCE_OPEN = re.compile(r"\s*```\s*([\w+#.-]*)")
_HEADING = re.compile(r"\s{0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*")
_RULE = re.compile(r"\s{0,3}([-*_])(?:\s*\1){2,}\s*")
_BULLET = re.compile(r"(\s*)[-*+]\s+(.*)")
_QUOTE = re.compile(r"\s{0,3}>\s?(.*)")
_TABLE = re.compile(r"\s*\|.*\|\s*")
_INLINE = re.compile(
    r"(?P<tick>`+)(?P<code>.+?)(?P=tick)"
    r"|\[(?P<label>[^\]\n]+)\]\((?P<url>(?:https?://|tg://|mailto:)[^()\s]+)\)"
    r"|\*\*\*(?P<bold_italic>\S(?:.*?\S)?)\*\*\*"
    r"|\*\*(?P<bold>\S(?:.*?\S)?)\*\*"
    r"|(?<!\w)__(?P<bold2>\S(?:.*?\S)?)__(?!\w)"
    r"|~~(?P<strike>\S(?:.*?\S)?)~~"
    r"|(?<![\w*])\*(?P<italic>[^\s*](?:[^*]*?[^\s*])?)\*(?![\w*])"
    r"|(?<![\w_])_(?P<italic2>[^\s_](?:[^_]*?[^\s_])?)_(?![\w_])"
    r"|\\(?P<escaped>[!-/:-@\[-`{-~])"
)
_SENTENCE_END = re.compile(r"[.!?…。！？][)\"'»”]*\s")

BlockKind = Literal["code", "heading", "quote", "bullet", "table", "rule", "line"]
SpanKind = Literal["text", "code", "bold", "italic", "strike", "link"]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Block:
    kind: BlockKind
    lines: tuple[str, ...]
    lang: str = ""
    indent: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Span:
    kind: SpanKind
    text: str = ""
    children: tuple[_Span, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class _Style:
    """How one platform writes each construct."""

    escape: Callable[[str], str]
    code: Callable[[str], str]
    marks: dict[SpanKind, tuple[str, str]]
    link: Callable[[str, str], str]
    """(rendered label, url) -> rendered link."""
    pre: Callable[[str, str], str]
    """(code, language) -> rendered block."""
    heading: tuple[str, str]
    quote: Callable[[list[str]], list[str]]


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, as Telegram counts (an emoji outside the BMP counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def to_telegram_html(markdown: str) -> str:
    """Markdown as Telegram HTML (`parse_mode=HTML`): only `< > &` escaped, tags balanced."""
    return _render(markdown, _TELEGRAM)


def to_whatsapp(markdown: str) -> str:
    """Markdown as WhatsApp markup: `*bold*`, `_italic_`, `~strike~`, backtick code."""
    return _render(markdown, _WHATSAPP)


def to_plain(markdown: str) -> str:
    """Markdown without markup, for drafts and the fallback when formatting is refused."""
    return _render(markdown, _PLAIN)


def telegram_parts(markdown: str, *, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """The Markdown cut into parts that each fit one Telegram message once rendered."""
    return split_text(markdown, limit, measure=utf16_len)


def whatsapp_parts(markdown: str, *, limit: int = WHATSAPP_LIMIT) -> list[str]:
    """The Markdown rendered for WhatsApp and cut into message bodies of at most `limit`."""
    return split_text(to_whatsapp(markdown), limit)


def telegram_messages(markdown: str, *, note: str | None = None) -> list[tuple[str, str]]:
    """The Markdown as Telegram messages, each as (HTML, plain-text fallback) that fit 4096
    units once parsed; a `note` goes in italics after the last one."""
    reserve = 0 if note is None else utf16_len(note) + 2
    parts = telegram_parts(markdown, limit=TELEGRAM_LIMIT - reserve)
    messages = [(to_telegram_html(part), to_plain(part)) for part in parts]
    if note is None:
        return messages
    last_html, last_plain = messages.pop() if messages else ("", "")
    italic = f"<i>{html.escape(note, quote=False)}</i>"
    messages.append((f"{last_html}\n\n{italic}".strip(), f"{last_plain}\n\n{note}".strip()))
    return messages


def whatsapp_messages(markdown: str, *, note: str | None = None) -> list[str]:
    """The Markdown as WhatsApp message bodies; a `note` goes in italics after the last one."""
    bodies = whatsapp_parts(markdown)
    if note is None:
        return bodies
    line = f"_{note}_"
    if bodies and len(bodies[-1]) + len(line) + 2 <= WHATSAPP_LIMIT:
        return [*bodies[:-1], f"{bodies[-1]}\n\n{line}"]
    return [*bodies, line]


def split_text(text: str, limit: int, *, measure: Callable[[str], int] = len) -> list[str]:
    """Cut `text` into pieces of at most `limit` (by `measure`): at a paragraph, else a line,
    a sentence, a space, else anywhere. A code fence cut in two is closed and reopened.

    A piece depends only on the text before its end, so the pieces of a growing text keep
    their contents once the text has grown past them (a streaming message can be frozen)."""
    if limit < 64:
        raise ValueError(f"limit {limit} is too small to split text")
    pieces: list[str] = []
    rest, reopen = text.strip(), ""
    while rest:
        if measure(reopen + rest) <= limit:
            pieces.append(reopen + rest)
            break
        cut = _cut(rest, limit - measure(reopen) - len(_FENCE) - 1, measure)
        piece, rest = reopen + rest[:cut].rstrip(), rest[cut:].lstrip("\n")
        lang = _open_fence(piece)
        pieces.append(piece if lang is None else f"{piece}\n{_FENCE}")
        reopen = "" if lang is None else f"{_FENCE}{lang}\n"
    return pieces


def _cut(text: str, budget: int, measure: Callable[[str], int]) -> int:
    """Where to end a piece of `text` no longer than `budget`: the latest good boundary."""
    low, high = 1, min(len(text), budget)
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if measure(text[:middle]) <= budget else (low, middle - 1)
    window, floor = text[:low], low // 2
    for separator in ("\n\n", "\n"):
        at = window.rfind(separator)
        if at >= floor:
            return at + len(separator)
    ends = [match.end() for match in _SENTENCE_END.finditer(window, floor)]
    if ends:
        return ends[-1]
    space = window.rfind(" ")
    return space + 1 if space >= floor else low


def _open_fence(text: str) -> str | None:
    """The language of a code fence left open at the end of `text` ("" if none), else None."""
    lang: str | None = None
    for line in text.split("\n"):
        if lang is None and (opening := _FENCE_OPEN.fullmatch(line)):
            lang = opening.group(1)[:_LANG_CHARS]
        elif lang is not None and line.strip() == _FENCE:
            lang = None
    return lang


def _blocks(markdown: str) -> Iterator[_Block]:
    lines = markdown.replace("\r\n", "\n").split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        if opening := _FENCE_OPEN.fullmatch(line):
            end = index + 1
            while end < len(lines) and lines[end].strip() != _FENCE:
                end += 1
            yield _Block(kind="code", lines=tuple(lines[index + 1 : end]), lang=opening.group(1))
            index = end + 1
            continue
        kind, grouped = _line_kind(line), [line]
        while kind in ("quote", "table") and index + 1 < len(lines):
            if _line_kind(lines[index + 1]) != kind:
                break
            index += 1
            grouped.append(lines[index])
        yield _block(kind, grouped)
        index += 1


def _line_kind(line: str) -> BlockKind:
    if _HEADING.fullmatch(line):
        return "heading"
    if _RULE.fullmatch(line):
        return "rule"
    if _BULLET.fullmatch(line):
        return "bullet"
    if _QUOTE.fullmatch(line):
        return "quote"
    return "table" if _TABLE.fullmatch(line) else "line"


def _block(kind: BlockKind, lines: list[str]) -> _Block:
    match kind:
        case "heading":
            return _Block(kind=kind, lines=(_group(_HEADING, lines[0], 1),))
        case "bullet":
            indent = _group(_BULLET, lines[0], 1)
            return _Block(kind=kind, lines=(_group(_BULLET, lines[0], 2),), indent=indent)
        case "quote":
            return _Block(kind=kind, lines=tuple(_group(_QUOTE, line, 1) for line in lines))
        case _:
            return _Block(kind=kind, lines=tuple(lines))


def _group(pattern: re.Pattern[str], line: str, group: int) -> str:
    match = pattern.fullmatch(line)
    return "" if match is None else match.group(group)


def _spans(text: str) -> tuple[_Span, ...]:
    spans: list[_Span] = []
    position = 0
    for match in _INLINE.finditer(text):
        if match.start() > position:
            spans.append(_Span(kind="text", text=text[position : match.start()]))
        spans.append(_span(match))
        position = match.end()
    if position < len(text):
        spans.append(_Span(kind="text", text=text[position:]))
    return tuple(spans)


def _span(match: re.Match[str]) -> _Span:
    found = match.groupdict()
    if found["code"] is not None:
        return _Span(kind="code", text=found["code"])
    if found["label"] is not None:
        return _Span(kind="link", text=found["url"], children=_spans(found["label"]))
    if found["escaped"] is not None:
        return _Span(kind="text", text=found["escaped"])
    if found["bold_italic"] is not None:
        italic = _Span(kind="italic", children=_spans(found["bold_italic"]))
        return _Span(kind="bold", children=(italic,))
    kinds: tuple[tuple[str, SpanKind], ...] = (
        ("bold", "bold"),
        ("bold2", "bold"),
        ("strike", "strike"),
        ("italic", "italic"),
    )
    for group, kind in kinds:
        if found[group] is not None:
            return _Span(kind=kind, children=_spans(found[group]))
    return _Span(kind="italic", children=_spans(found["italic2"]))


def _inline(spans: tuple[_Span, ...], style: _Style) -> str:
    out: list[str] = []
    for span in spans:
        match span.kind:
            case "text":
                out.append(style.escape(span.text))
            case "code":
                out.append(style.code(span.text))
            case "link":
                out.append(style.link(_inline(span.children, style), span.text))
            case "bold" | "italic" | "strike":
                opening, closing = style.marks[span.kind]
                out.append(opening + _inline(span.children, style) + closing)
    return "".join(out)


def _render(markdown: str, style: _Style) -> str:
    out: list[str] = []
    for block in _blocks(markdown):
        inline = [_inline(_spans(line), style) for line in block.lines]
        match block.kind:
            case "code":
                out.append(style.pre("\n".join(block.lines), block.lang[:_LANG_CHARS]))
            case "table":
                out.append(style.pre("\n".join(block.lines), ""))
            case "heading":
                out.append(style.heading[0] + inline[0] + style.heading[1])
            case "quote":
                out.extend(style.quote(inline))
            case "bullet":
                out.append(f"{block.indent}• {inline[0]}")
            case "rule":
                out.append("———")
            case "line":
                out.append(inline[0])
    return "\n".join(out).strip()


def _tg_pre(code: str, lang: str) -> str:
    body = html.escape(code, quote=False)
    if lang:
        return f'<pre><code class="language-{html.escape(lang)}">{body}</code></pre>'
    return f"<pre>{body}</pre>"


def _label_and_url(label: str, url: str) -> str:
    return url if label == url else f"{label} ({url})"


_TELEGRAM = _Style(
    escape=lambda text: html.escape(text, quote=False),
    code=lambda text: f"<code>{html.escape(text, quote=False)}</code>",
    marks={"bold": ("<b>", "</b>"), "italic": ("<i>", "</i>"), "strike": ("<s>", "</s>")},
    link=lambda label, url: f'<a href="{html.escape(url)}">{label}</a>',
    pre=_tg_pre,
    heading=("<b>", "</b>"),
    quote=lambda lines: ["<blockquote>" + "\n".join(lines) + "</blockquote>"],
)
_WHATSAPP = _Style(
    escape=lambda text: text,
    code=lambda text: f"`{text}`",
    marks={"bold": ("*", "*"), "italic": ("_", "_"), "strike": ("~", "~")},
    link=_label_and_url,
    pre=lambda code, lang: f"{_FENCE}\n{code}\n{_FENCE}",
    heading=("*", "*"),
    quote=lambda lines: [f"> {line}" for line in lines],
)
_PLAIN = _Style(
    escape=lambda text: text,
    code=lambda text: text,
    marks={"bold": ("", ""), "italic": ("", ""), "strike": ("", "")},
    link=_label_and_url,
    pre=lambda code, lang: code,
    heading=("", ""),
    quote=lambda lines: [f"▎{line}" for line in lines],
)

_APOLOGY = {
    "en": "Sorry, I couldn't answer that just now. Please try again in a moment.",
    "es": "Lo siento, ahora mismo no he podido responder. Inténtalo de nuevo en un momento.",
    "pt": "Desculpe, não consegui responder agora. Tente novamente daqui a pouco.",
    "ru": "Извините, сейчас не получилось ответить. Попробуйте ещё раз чуть позже.",
    "de": "Entschuldigung, ich konnte gerade nicht antworten. Bitte versuche es gleich noch mal.",
}
_STOPPED = {
    "en": "⏹ Stopped",
    "es": "⏹ Detenido",
    "pt": "⏹ Interrompido",
    "ru": "⏹ Остановлено",
    "de": "⏹ Gestoppt",
}


def _language(language: str | None) -> str:
    """`pt-BR` → `pt`; languages without our translations → `en`."""
    code = (language or "").replace("_", "-").split("-", 1)[0].lower()
    return code if code in _APOLOGY else "en"


def apology(language: str | None) -> str:
    """The short reply when no model answered, in the user's language (es/pt/ru/de) or English."""
    return _APOLOGY[_language(language)]


def stopped_note(language: str | None) -> str:
    """The line that marks an answer the user stopped, in their language or English."""
    return _STOPPED[_language(language)]
