"""Exceptions raised by the routing package.

The tree::

    RoutingError
    ├── ConfigError            a setting is missing or malformed (names the variable)
    ├── EvaluationError        an evaluation input file is unusable
    └── ProviderError          an LLM call failed (carries provider, model, http_status)
        ├── ProviderTimeout        no connection, or no data, within the allowed time
        ├── ProviderRateLimited    HTTP 429; carries retry_after seconds if the server sent it
        ├── ProviderUnavailable    5xx, refused or dropped connection, stream cut short
        ├── ProviderConfigError    400/401/403/404...: our request or key is wrong; never retry
        ├── ProviderBadResponse    malformed chunk or other protocol violation
        └── EmptyAnswer            the stream finished without any text
"""


class RoutingError(Exception):
    """Root of every error the routing package raises."""


class ConfigError(RoutingError):
    """A routing setting is invalid; the message names the environment variable."""


class ProviderError(RoutingError):
    """An LLM call failed; says which provider and model, and the HTTP status if there was one."""

    def __init__(
        self, message: str, *, provider: str, model: str, http_status: int | None = None
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.model = model
        self.http_status = http_status


class ProviderTimeout(ProviderError):
    """The provider did not connect, answer or continue its stream in time."""


class ProviderRateLimited(ProviderError):
    """The provider refused the call for rate or quota reasons (HTTP 429)."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        model: str,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, provider=provider, model=model, http_status=http_status)
        self.retry_after = retry_after


class ProviderUnavailable(ProviderError):
    """The provider failed on its side or the connection broke; another attempt may succeed."""


class ProviderConfigError(ProviderError):
    """The provider rejected the request itself (key, model name, parameters); never retried."""


class ProviderBadResponse(ProviderError):
    """The provider's reply broke its own wire protocol (malformed chunk, missing usage)."""


class EmptyAnswer(ProviderError):
    """The stream finished normally but carried no text."""


class EvaluationError(RoutingError):
    """An evaluation input (outcomes file, price list, scorer output or option) is unusable."""
