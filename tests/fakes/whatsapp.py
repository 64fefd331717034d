"""A fake WhatsApp Cloud (Graph) API on loopback: `POST /{version}/{phone_number_id}/messages`."""

from __future__ import annotations

import itertools
import time
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Self

from aiohttp import web
from aiohttp.test_utils import TestServer

Json = None | bool | int | float | str | list["Json"] | dict[str, "Json"]
Kind = Literal["text", "interactive", "reaction", "read", "other"]

TEXT_LIMIT = 4096
BUTTONS_LIMIT = 3
BUTTON_TITLE_LIMIT = 20
BUTTON_ID_LIMIT = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class Sent:
    """One accepted or refused request: what kind, to whom, the whole body, and the answer."""

    kind: Kind
    phone_number_id: str
    version: str
    body: dict[str, Json]
    status: int
    wamid: str | None = None
    at: float = field(default_factory=time.monotonic)
    """When the fake received the request (`time.monotonic()`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GraphFault:
    """A Graph API error the next request gets: HTTP status, Meta error code and message."""

    code: int
    message: str
    status: int = 400
    error_type: str = "OAuthException"
    retry_after: int | None = None
    """Sent as the `Retry-After` header when set."""


PAIR_RATE_LIMIT = GraphFault(
    code=131056,
    message="(#131056) (Business Account, Consumer Account) pair rate limit hit",
)
THROUGHPUT_LIMIT = GraphFault(code=130429, message="(#130429) Rate limit hit")
OUTSIDE_WINDOW = GraphFault(
    code=131047,
    message="(#131047) Re-engagement message: more than 24 hours have passed since the customer "
    "last replied to this number.",
)


class FakeWhatsApp:
    """One business number's Cloud API on 127.0.0.1:0; scripts faults, records every request."""

    def __init__(self, *, access_token: str, phone_number_id: str, version: str = "v26.0") -> None:
        self.access_token = access_token
        self.phone_number_id = phone_number_id
        self.version = version
        self.sent: list[Sent] = []
        self._faults: deque[GraphFault] = deque()
        self._ids = itertools.count(1)
        app = web.Application()
        app.router.add_post("/{version}/{phone_number_id}/messages", self._handle)
        self._server = TestServer(app, host="127.0.0.1", port=0)

    @property
    def url(self) -> str:
        """The base URL with the version, as `WHATSAPP_API_BASE` takes it."""
        return str(self._server.make_url(f"/{self.version}")).rstrip("/")

    def fail(self, fault: GraphFault, *, times: int = 1) -> None:
        """Answer the next `times` requests with `fault`."""
        self._faults.extend([fault] * times)

    def of_kind(self, kind: Kind) -> list[Sent]:
        """The recorded requests of one kind that were accepted."""
        return [sent for sent in self.sent if sent.kind == kind and sent.status == 200]

    async def __aenter__(self) -> Self:
        await self._server.start_server()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._server.close()

    async def _handle(self, request: web.Request) -> web.Response:
        phone_number_id = request.match_info["phone_number_id"]
        try:
            body: Json = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {}
        kind = _kind(body)
        error = self._refusal(request, phone_number_id, body, kind)
        if error is None and self._faults:
            error = self._faults.popleft()
        status = 200 if error is None else error.status
        wamid = f"wamid.FAKE{next(self._ids):08d}" if error is None and kind != "read" else None
        self.sent.append(
            Sent(
                kind=kind,
                phone_number_id=phone_number_id,
                version=request.match_info["version"],
                body=body,
                status=status,
                wamid=wamid,
            )
        )
        if error is not None:
            return _graph_error(error)
        if wamid is None:
            return web.json_response({"success": True})
        to = str(body.get("to", ""))
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                "messages": [{"id": wamid}],
            }
        )

    def _refusal(
        self, request: web.Request, phone_number_id: str, body: dict[str, Json], kind: Kind
    ) -> GraphFault | None:
        if request.headers.get("Authorization") != f"Bearer {self.access_token}":
            return GraphFault(
                code=190,
                message="Invalid OAuth access token - Cannot parse access token",
                status=401,
            )
        if request.match_info["version"] != self.version or phone_number_id != self.phone_number_id:
            return GraphFault(
                code=100,
                message=f"Unsupported post request. Object with ID '{phone_number_id}' does not "
                "exist, cannot be loaded due to missing permissions, or does not support this "
                "operation",
            )
        if body.get("messaging_product") != "whatsapp":
            return _invalid("The parameter messaging_product is required.")
        return _content_problem(body, kind)


def _kind(body: dict[str, Json]) -> Kind:
    if body.get("status") == "read":
        return "read"
    match body.get("type"):
        case "text":
            return "text"
        case "interactive":
            return "interactive"
        case "reaction":
            return "reaction"
        case _:
            return "other"


def _content_problem(body: dict[str, Json], kind: Kind) -> GraphFault | None:
    match kind:
        case "text":
            text = body.get("text")
            content = text.get("body") if isinstance(text, dict) else None
            if not isinstance(content, str) or not content:
                return _invalid("Param text['body'] is required")
            if len(content) > TEXT_LIMIT:
                return _invalid(f"Param text['body'] must be at most {TEXT_LIMIT} characters long")
        case "interactive":
            return _buttons_problem(body.get("interactive"))
        case "read":
            if not isinstance(body.get("message_id"), str):
                return _invalid("Param message_id is required")
            indicator = body.get("typing_indicator")
            if indicator is not None and indicator != {"type": "text"}:
                return _invalid("Param typing_indicator['type'] must be one of {TEXT}")
        case "reaction" | "other":
            return None
    return None


def _buttons_problem(interactive: Json) -> GraphFault | None:
    if not isinstance(interactive, dict) or interactive.get("type") != "button":
        return _invalid("Param interactive['type'] must be one of {BUTTON, LIST, ...}")
    action = interactive.get("action")
    buttons = action.get("buttons") if isinstance(action, dict) else None
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= BUTTONS_LIMIT:
        return GraphFault(code=131009, message="Parameter value is not valid: 1-3 buttons")
    replies = [b.get("reply") if isinstance(b, dict) else None for b in buttons]
    for reply in replies:
        if not isinstance(reply, dict):
            return _invalid("Param interactive['action']['buttons'][0]['reply'] is required")
        title, button_id = reply.get("title"), reply.get("id")
        if not isinstance(title, str) or not 1 <= len(title) <= BUTTON_TITLE_LIMIT:
            return GraphFault(code=131009, message="Button title length invalid")
        if not isinstance(button_id, str) or not 1 <= len(button_id) <= BUTTON_ID_LIMIT:
            return GraphFault(code=131009, message="Button id length invalid")
    return None


def _invalid(message: str) -> GraphFault:
    return GraphFault(code=100, message=f"(#100) {message}")


def _graph_error(fault: GraphFault) -> web.Response:
    body = {
        "error": {
            "message": fault.message,
            "type": fault.error_type,
            "code": fault.code,
            "fbtrace_id": "AFakeTraceId",
        }
    }
    headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
    return web.json_response(body, status=fault.status, headers=headers)
