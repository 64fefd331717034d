"""History length: token estimates and the cheapest tier whose context window holds them."""

from __future__ import annotations

from routing.signals.history import PER_TURN_OVERHEAD, estimate_tokens, history
from routing.types import Conversation, Turn


def test_estimate_scales_with_utf8_size_across_scripts() -> None:
    assert estimate_tokens("") == PER_TURN_OVERHEAD
    assert estimate_tokens("abcd" * 25) == 25 + PER_TURN_OVERHEAD
    # Cyrillic takes two UTF-8 bytes a letter, so the same length costs twice the tokens.
    assert estimate_tokens("абвг" * 25) == 50 + PER_TURN_OVERHEAD
    assert estimate_tokens("\ud800") == 1 + PER_TURN_OVERHEAD  # a lone surrogate never raises


def test_history_picks_the_cheapest_tier_that_fits() -> None:
    conversation = Conversation(
        turns=(Turn(role="user", text="a" * 400), Turn(role="assistant", text="b" * 400))
    )
    result = history(conversation, context_tokens=(100, 300, 1000), reserve_tokens=50)
    assert result.tokens == 2 * (100 + PER_TURN_OVERHEAD)
    assert (result.fits_tier, result.reasons) == (2, ())
    assert history(conversation, context_tokens=(100, 300, 1000), reserve_tokens=100).fits_tier == 3
    assert history(conversation, context_tokens=(300, 1000), reserve_tokens=0).fits_tier == 1


def test_history_that_fits_nowhere_says_so() -> None:
    conversation = Conversation(turns=(Turn(role="user", text="x" * 4000),))
    result = history(conversation, context_tokens=(100, 200), reserve_tokens=0)
    assert result.fits_tier is None
    assert [r.code for r in result.reasons] == ["context_exceeds"]
