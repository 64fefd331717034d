"""Keyed hashes of platform ids, so logs can tell users and chats apart without naming them."""

from __future__ import annotations

import hashlib
import hmac

HASH_HEX_CHARS = 16
"""Hex characters kept: 64 bits, ample to tell apart the ids one deployment sees."""


def hash_id(key: bytes, raw: str) -> str:
    """HMAC-SHA256 of `raw` under the secret `key`, truncated; stable for a given key.

    Telegram ids and phone numbers are enumerable, so a plain hash would be reversible by brute
    force; without the key the output reveals nothing about the id.
    """
    return hmac.new(key, raw.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[
        :HASH_HEX_CHARS
    ]
