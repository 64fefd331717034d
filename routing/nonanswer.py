"""Non-answers: replies that refuse or say they don't know, worth retrying one tier up."""

from __future__ import annotations

import re

_OPENINGS = re.compile(
    r"""^\W*(?:
        i(?:'m|\s+am)\s+(?:sorry|afraid)[^.!?\n]{0,40}?\b(?:can(?:no|')t|unable|not\s+able|don't\s+know)
      | i\s+(?:can(?:no|')t|am\s+unable\s+to|won't)\s+(?:help|assist|answer|provide|do\s+that)
      | i\s+don't\s+(?:know|have\s+(?:enough\s+)?information)
      | i'm\s+not\s+sure\s*[.!]?\s*$
      | as\s+an\s+ai\b[^.!?\n]{0,60}?\b(?:can(?:no|')t|unable|don't)
      | (?:lo\s+siento|desculpe|es\s+tut\s+mir\s+leid|извините)[^.!?\n]{0,40}?
        (?:no\s+puedo|não\s+posso|kann\s+ich\s+nicht|не\s+могу)
      | no\s+(?:lo\s+)?sé\b | não\s+sei\b | ich\s+weiß\s+(?:es\s+)?nicht | не\s+знаю
    )""",
    re.IGNORECASE | re.VERBOSE,
)
_HEAD_CHARS = 200


def non_answer(text: str) -> str | None:
    """Return why `text` is a non-answer (empty, refusal, "I don't know"), or None if it answers.

    Only the opening is examined: an answer that starts by helping and later admits a limit is
    still an answer.
    """
    head = text.strip()[:_HEAD_CHARS].replace("’", "'")
    if not head:
        return "empty answer"
    if _OPENINGS.search(head):
        return "refusal or 'I don't know' answer"
    return None
