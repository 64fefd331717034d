"""Keyed pseudonyms for user and chat ids: HMAC-SHA256 with a secret key, versioned by key."""

from __future__ import annotations

import hashlib
import hmac

from pydantic import SecretStr

HASH_HEX_CHARS = 32
"""128 bits of the HMAC: collision-free at any realistic user count, half the column width."""


class IdHasher:
    """Turns a raw id into `h<version>_<hex>`; the same key and version always give the same hash.

    Phone numbers and platform ids are enumerable, so a plain hash could be reversed by trying
    every candidate; the secret key makes that impossible without it. The version prefix says
    which key made a hash, so a rotated key does not silently mix two pseudonym spaces.
    """

    __slots__ = ("_key", "_prefix")

    def __init__(self, key: SecretStr, *, version: int = 1) -> None:
        self._key = key.get_secret_value().encode()
        self._prefix = f"h{version}_"

    def __call__(self, raw_id: str) -> str:
        """Return the pseudonym of `raw_id`."""
        digest = hmac.new(self._key, raw_id.encode(), hashlib.sha256).hexdigest()
        return self._prefix + digest[:HASH_HEX_CHARS]

    def __repr__(self) -> str:
        return f"IdHasher(prefix={self._prefix!r}, key=********)"
