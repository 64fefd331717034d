"""Markdown rendered for Telegram, WhatsApp and plain text; splitting to the platforms' limits."""

from __future__ import annotations

import pytest

from bots.formatting import (
    TELEGRAM_LIMIT,
    apology,
    split_text,
    stopped_note,
    telegram_messages,
    telegram_parts,
    to_plain,
    to_telegram_html,
    to_whatsapp,
    utf16_len,
    whatsapp_messages,
    whatsapp_parts,
)

ANSWER = """# Plan ##
Use **bold**, *italic*, _also italic_, ~~gone~~ and `a < b && c`.
See [the docs](https://example.org/?a=1&b="2") or <script>alert(1)</script>.
> quoted **line**
> second
- first
* second
  + nested
---
| a | b |
|---|---|
```python
if a < b:
    print("**not bold**")
```
done"""


def test_utf16_length_counts_surrogate_pairs_twice() -> None:
    assert [utf16_len(s) for s in ("abc", "привет", "🌍", "👍🏽", "")] == [3, 6, 2, 4, 0]


def test_markdown_becomes_telegram_html() -> None:
    assert to_telegram_html(ANSWER) == "\n".join(
        [
            "<b>Plan</b>",
            "Use <b>bold</b>, <i>italic</i>, <i>also italic</i>, <s>gone</s> and "
            "<code>a &lt; b &amp;&amp; c</code>.",
            'See <a href="https://example.org/?a=1&amp;b=&quot;2&quot;">the docs</a> or '
            "&lt;script&gt;alert(1)&lt;/script&gt;.",
            "<blockquote>quoted <b>line</b>\nsecond</blockquote>",
            "• first",
            "• second",
            "  • nested",
            "———",
            "<pre>| a | b |\n|---|---|</pre>",
            '<pre><code class="language-python">if a &lt; b:\n'
            '    print("**not bold**")</code></pre>',
            "done",
        ]
    )


def test_markdown_becomes_whatsapp_markup() -> None:
    assert to_whatsapp(ANSWER) == "\n".join(
        [
            "*Plan*",
            "Use *bold*, _italic_, _also italic_, ~gone~ and `a < b && c`.",
            'See the docs (https://example.org/?a=1&b="2") or <script>alert(1)</script>.',
            "> quoted *line*",
            "> second",
            "• first",
            "• second",
            "  • nested",
            "———",
            "```\n| a | b |\n|---|---|\n```",
            '```\nif a < b:\n    print("**not bold**")\n```',
            "done",
        ]
    )


def test_markdown_becomes_plain_text() -> None:
    assert to_plain(ANSWER).split("\n")[:5] == [
        "Plan",
        "Use bold, italic, also italic, gone and a < b && c.",
        'See the docs (https://example.org/?a=1&b="2") or <script>alert(1)</script>.',
        "▎quoted line",
        "▎second",
    ]


@pytest.mark.parametrize(
    ("markdown", "html"),
    [
        ("**unclosed bold", "**unclosed bold"),
        ("a * b * c and 2*3*4", "a * b * c and 2*3*4"),
        ("snake_case_name and __init__", "snake_case_name and <b>init</b>"),
        ("***both***", "<b><i>both</i></b>"),
        ("**bold with *italic* inside**", "<b>bold with <i>italic</i> inside</b>"),
        ("[**bold link**](https://x.org)", '<a href="https://x.org"><b>bold link</b></a>'),
        ("[bad](javascript:alert(1))", "[bad](javascript:alert(1))"),
        ("[https://x.org](https://x.org)", '<a href="https://x.org">https://x.org</a>'),
        (r"\*not italic\* \_x\_", "*not italic* _x_"),
        ("``code with ` tick``", "<code>code with ` tick</code>"),
        ("# C#", "<b>C#</b>"),
        ("```\nopen fence <b>", "<pre>open fence &lt;b&gt;</pre>"),
        ("1 < 2 > 0 & done", "1 &lt; 2 &gt; 0 &amp; done"),
        ("```bash\n```", '<pre><code class="language-bash"></code></pre>'),
    ],
)
def test_telegram_html_edge_cases(markdown: str, html: str) -> None:
    assert to_telegram_html(markdown) == html


def test_whatsapp_links_without_a_label_show_the_url_once() -> None:
    assert to_whatsapp("[https://x.org](https://x.org)") == "https://x.org"


def test_rendering_never_lengthens_the_visible_text() -> None:
    for line in ANSWER.split("\n"):
        assert utf16_len(to_plain(line)) <= utf16_len(line)


def test_text_is_split_at_paragraphs_first() -> None:
    paragraphs = ["alpha " * 30, "beta " * 30, "gamma " * 30]
    text = "\n\n".join(p.strip() for p in paragraphs)

    assert split_text(text, 400) == [
        f"{paragraphs[0].strip()}\n\n{paragraphs[1].strip()}",
        paragraphs[2].strip(),
    ]


def test_text_is_split_at_lines_then_sentences_then_words() -> None:
    lines = "\n".join(["line of text"] * 20)
    sentences = "One two three. " * 20
    words = "word " * 40

    assert split_text(lines, 100)[0] == "\n".join(["line of text"] * 7)
    assert split_text(sentences, 100)[0] == ("One two three. " * 6).strip()
    assert split_text(words, 100)[0] == ("word " * 19).strip()


def test_text_without_spaces_is_cut_hard_without_breaking_surrogate_pairs() -> None:
    text = "🌍" * 5000 + "ж" * 3000

    parts = telegram_parts(text)

    assert [utf16_len(part) for part in parts] == [4092, 4092, 4092, 724]
    assert "".join(parts) == text
    assert all(part.encode("utf-16-le").decode("utf-16-le") == part for part in parts)


def test_telegram_parts_of_cyrillic_and_emoji_fit_4096_units() -> None:
    paragraph = "Привет, мир! 👋🏽 Как дела? " * 12
    text = "\n\n".join([paragraph.strip()] * 30)

    parts = telegram_parts(text)

    assert len(parts) == 3
    assert all(utf16_len(part) <= TELEGRAM_LIMIT for part in parts)
    assert all(utf16_len(to_telegram_html(part)) >= 1 for part in parts)
    assert "\n\n".join(parts) == text


def test_a_code_block_cut_in_two_is_closed_and_reopened() -> None:
    code = "\n".join(f"print({n})" for n in range(25))
    text = f"Intro.\n\n```python\n{code}\n```\nOutro."

    first, second = split_text(text, 200)

    assert first.endswith("\n```")
    assert second.startswith("```python\nprint(")
    assert to_telegram_html(second).startswith('<pre><code class="language-python">print(')
    assert second.endswith("```\nOutro.")
    assert all(len(part) <= 200 for part in (first, second))


def test_a_closed_code_block_does_not_reopen_in_the_next_part() -> None:
    text = "```\nx = 1\n```\n" + "After the code. " * 20

    first, second = split_text(text, 200)

    assert first.startswith("```\nx = 1\n```\nAfter")
    assert not first.endswith("```")
    assert second.startswith("After")


def test_a_growing_text_keeps_its_earlier_parts() -> None:
    text = "\n\n".join(f"Paragraph {n} " + "words " * 30 for n in range(40))

    full = split_text(text, 1000)
    grown = split_text(text + " more words" * 50, 1000)

    assert grown[: len(full) - 1] == full[:-1]


def test_whatsapp_parts_are_rendered_then_split_at_paragraphs() -> None:
    paragraph = "**Bold** start, then text. " * 40
    text = "\n\n".join([paragraph.strip()] * 6)

    parts = whatsapp_parts(text)

    assert len(parts) == 2
    assert all(len(part) <= 4096 for part in parts)
    assert parts[0].startswith("*Bold* start")
    assert parts[1].startswith("*Bold* start")


def test_a_note_follows_the_last_message_in_italics() -> None:
    full = "x" * 4096

    assert telegram_messages("**Hi** <3", note="⏹ Stopped") == [
        ("<b>Hi</b> &lt;3\n\n<i>⏹ Stopped</i>", "Hi <3\n\n⏹ Stopped")
    ]
    assert telegram_messages("", note="⏹ Stopped") == [("<i>⏹ Stopped</i>", "⏹ Stopped")]
    assert [utf16_len(plain) for _, plain in telegram_messages(full, note="⏹")] == [4089, 10]
    assert whatsapp_messages("**Hi**", note="⏹ Stopped") == ["*Hi*\n\n_⏹ Stopped_"]
    assert whatsapp_messages(full, note="⏹ Stopped") == [full, "_⏹ Stopped_"]


def test_blank_text_has_no_parts_and_tiny_limits_are_refused() -> None:
    assert split_text("  \n\n ", 100) == []
    with pytest.raises(ValueError, match="too small"):
        split_text("text", 10)


@pytest.mark.parametrize(
    ("language", "start", "note"),
    [
        ("es", "Lo siento", "⏹ Detenido"),
        ("pt-BR", "Desculpe", "⏹ Interrompido"),
        ("ru", "Извините", "⏹ Остановлено"),
        ("de_AT", "Entschuldigung", "⏹ Gestoppt"),
        ("fr", "Sorry", "⏹ Stopped"),
        (None, "Sorry", "⏹ Stopped"),
    ],
)
def test_fixed_texts_in_the_users_language(language: str | None, start: str, note: str) -> None:
    assert apology(language).startswith(start)
    assert stopped_note(language) == note
