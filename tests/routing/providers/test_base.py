"""The shared pieces of the provider seam: status mapping, Retry-After, redaction."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from routing.errors import (
    ProviderBadResponse,
    ProviderConfigError,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
    RoutingError,
)
from routing.providers.base import parse_retry_after, redact, status_error


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, ProviderConfigError),
        (401, ProviderConfigError),
        (403, ProviderConfigError),
        (404, ProviderConfigError),
        (422, ProviderConfigError),
        (408, ProviderTimeout),
        (409, ProviderUnavailable),
        (429, ProviderRateLimited),
        (500, ProviderUnavailable),
        (503, ProviderUnavailable),
        (529, ProviderUnavailable),
        (302, ProviderBadResponse),
    ],
)
def test_status_error_classes(status: int, expected: type[ProviderError]) -> None:
    error = status_error(status, "detail", provider="p", model="m", headers={})

    assert type(error) is expected
    assert isinstance(error, RoutingError)
    assert (error.provider, error.model, error.http_status) == ("p", "m", status)
    assert str(error) == f"p m: HTTP {status}: detail"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "1"}, 0.25),
        ({"retry-after-ms": "soon", "retry-after": "3"}, 3.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
        ({"retry-after": "-1"}, None),
        ({}, None),
    ],
)
def test_retry_after_is_read_in_seconds(headers: dict[str, str], expected: float | None) -> None:
    error = status_error(429, "slow down", provider="p", model="m", headers=headers)

    assert isinstance(error, ProviderRateLimited)
    assert error.retry_after == parse_retry_after(headers) == expected


def test_redact_masks_the_secret_and_shortens_long_text() -> None:
    secret = SecretStr("sk-secret-123")

    assert redact("key sk-secret-123 rejected", secret) == "key [redacted] rejected"
    assert redact("x" * 400, secret) == "x" * 300 + "..."
    assert redact("nothing to hide", SecretStr("")) == "nothing to hide"
