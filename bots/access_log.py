"""The access log line of our listeners: aiohttp's, without the query string.

A query string can carry a credential: Meta's webhook verification sends the verify token as
`hub.verify_token=…` in the URL, and aiohttp's default line (`%r`, the request line) would write
it to the log whenever INFO is on. The apps pass this class in their `handler_args`, so every
runner that serves them (`tierbot serve`, tests' `TestServer`) logs the path alone.
"""

from __future__ import annotations

import logging

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse


class AccessLog(AbstractAccessLogger):
    """`remote "METHOD /path HTTP/x.y" status bytes seconds`, on the `aiohttp.access` logger."""

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s HTTP/%d.%d" %d %d %.3fs',
            request.remote,
            request.method,
            request.path,
            request.version.major,
            request.version.minor,
            response.status,
            response.body_length,
            time,
        )


HANDLER_ARGS = {"access_log_class": AccessLog}
"""`web.Application(handler_args=HANDLER_ARGS)`: the runner's handler logs with `AccessLog`."""
