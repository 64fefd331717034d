"""Exceptions raised by the feedback package.

The tree::

    FeedbackError
    ├── FeedbackConfigError    a setting is missing or malformed (names the variable)
    ├── StoreError             the database refused or could not be reached (wraps the cause)
    │   └── SchemaError        the database's schema is newer than this code knows
    └── QueryError             a review/report/export argument is unusable
        └── TurnNotFound       no turn has the given id
"""


class FeedbackError(Exception):
    """Root of every error the feedback package raises."""


class FeedbackConfigError(FeedbackError):
    """A feedback setting is invalid; the message names the environment variable."""


class StoreError(FeedbackError):
    """A database operation failed; the original error is chained as `__cause__`.

    `transient` is True when the same operation may succeed later (connection lost or refused,
    database locked, time-out) and False when the data itself was refused (constraint, bad value).
    """

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class SchemaError(StoreError):
    """The database was migrated by a newer tierbot than this one."""


class QueryError(FeedbackError):
    """A filter, period or price argument cannot be used; the message says which and why."""


class TurnNotFound(QueryError):
    """The requested turn id is not in the log (never recorded, or forgotten)."""
