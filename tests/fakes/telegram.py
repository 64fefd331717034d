"""A fake Telegram Bot API on loopback (`{base}/bot{token}/{method}`): scripted, recording calls."""

from __future__ import annotations

import json
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from aiohttp import web
from aiohttp.test_utils import TestServer

Json = None | bool | int | float | str | list["Json"] | dict[str, "Json"]
Params = dict[str, Json]

_STRING_PARAMS = frozenset(
    {"text", "caption", "parse_mode", "url", "secret_token", "callback_query_id", "action"}
)
"""Form fields kept as sent; every other field is decoded as JSON when it parses."""
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
CANT_PARSE = (
    "Bad Request: can't parse entities: Can't find end of the entity starting at byte offset 0"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    """One Bot API request: the method, its parameters (decoded) and any uploaded files."""

    method: str
    params: Params
    files: dict[str, bytes] = field(default_factory=dict)
    content_type: str = ""
    at: float = field(default_factory=time.monotonic)
    """When the fake received the call (`time.monotonic()`), to check pacing."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """An error the next call of a method gets instead of its result."""

    status: int
    description: str
    retry_after: int | None = None

    @classmethod
    def too_many_requests(cls, retry_after: int) -> Fault:
        """429 with `parameters.retry_after`, as flood control answers."""
        return cls(
            status=429,
            description=f"Too Many Requests: retry after {retry_after}",
            retry_after=retry_after,
        )


class TelegramError(Exception):
    """Raised inside the fake to answer with a Bot API error."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


class FakeTelegram:
    """One bot's Bot API on 127.0.0.1:0. Scripts faults per method; records every call."""

    def __init__(self, *, token: str) -> None:
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.calls: list[Call] = []
        self.pending_update_count = 0
        self.last_error: tuple[int, str] | None = None
        """(unix date, message) reported by getWebhookInfo."""
        self.reject_parse_modes: set[str] = set()
        """Calls with one of these parse modes get 400 "can't parse entities"."""
        self.webhook: Params = {}
        self.messages: dict[tuple[int, int], Params] = {}
        self._faults: defaultdict[str, deque[Fault]] = defaultdict(deque)
        self._next_message_id = 1
        self._methods: dict[str, Callable[[Params], Json]] = {
            "getMe": self._get_me,
            "setWebhook": self._set_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "deleteWebhook": self._delete_webhook,
            "sendMessage": self._send_message,
            "sendMessageDraft": lambda params: True,
            "editMessageText": self._edit_message_text,
            "sendChatAction": lambda params: True,
            "answerCallbackQuery": lambda params: True,
            "editMessageReplyMarkup": self._edit_reply_markup,
            "deleteMessage": self._delete_message,
        }
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._server = TestServer(app, host="127.0.0.1", port=0)

    @property
    def url(self) -> str:
        """The base for `TelegramAPIServer.from_base()`."""
        return str(self._server.make_url("")).rstrip("/")

    def fail(self, method: str, fault: Fault, *, times: int = 1) -> None:
        """Answer the next `times` calls of `method` with `fault`."""
        self._faults[method].extend([fault] * times)

    def calls_to(self, method: str) -> list[Call]:
        """The recorded calls of one method, oldest first."""
        return [call for call in self.calls if call.method == method]

    def draft_ids(self, chat_id: int) -> list[int]:
        """The drafts streamed into a chat, in the order they first appeared."""
        drafts = self.calls_to("sendMessageDraft")
        found = [
            _int(call.params, "draft_id") for call in drafts if call.params["chat_id"] == chat_id
        ]
        return list(dict.fromkeys(found))

    def stop_pressed(self, update_id: int, chat_id: int, draft_id: int) -> Params:
        """The update Telegram sends when the user presses a draft's stop button (Bot API
        10.3: `stopped_message_generation`, a `MessageGenerationStopped`)."""
        chat: Params = {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"}
        stopped: Params = {"chat": chat, "draft_id": draft_id}
        return {"update_id": update_id, "stopped_message_generation": stopped}

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
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        params, files = await _read_params(request)
        self.calls.append(
            Call(method=method, params=params, files=files, content_type=request.content_type)
        )
        handler = self._methods.get(method)
        if handler is None:
            return _error(404, "Not Found: method not found")
        if self._faults[method]:
            fault = self._faults[method].popleft()
            return _error(fault.status, fault.description, fault.retry_after)
        if params.get("parse_mode") in self.reject_parse_modes:
            return _error(400, CANT_PARSE)
        try:
            result = handler(params)
        except TelegramError as exc:
            return _error(exc.status, exc.description)
        return web.json_response({"ok": True, "result": result})

    def _bot_user(self) -> Params:
        return {"id": self.bot_id, "is_bot": True, "first_name": "Fake", "username": "fake_bot"}

    def _get_me(self, params: Params) -> Json:
        return {**self._bot_user(), "can_join_groups": True, "can_read_all_group_messages": False}

    def _set_webhook(self, params: Params) -> Json:
        self.webhook = dict(params)
        return True

    def _get_webhook_info(self, params: Params) -> Json:
        info: Params = {
            "url": str(self.webhook.get("url", "")),
            "has_custom_certificate": "certificate" in self.webhook,
            "pending_update_count": self.pending_update_count,
        }
        for name in ("max_connections", "allowed_updates", "ip_address"):
            if name in self.webhook:
                info[name] = self.webhook[name]
        if self.last_error is not None:
            info["last_error_date"], info["last_error_message"] = self.last_error
        return info

    def _delete_webhook(self, params: Params) -> Json:
        self.webhook = {}
        if params.get("drop_pending_updates") is True:
            self.pending_update_count = 0
        return True

    def _send_message(self, params: Params) -> Json:
        chat_id = _int(params, "chat_id")
        message_id, self._next_message_id = self._next_message_id, self._next_message_id + 1
        message: Params = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"},
            "from": self._bot_user(),
            "text": params.get("text", ""),
        }
        if "reply_markup" in params:
            message["reply_markup"] = params["reply_markup"]
        self.messages[(chat_id, message_id)] = message
        return message

    def _stored(self, params: Params) -> Params:
        key = (_int(params, "chat_id"), _int(params, "message_id"))
        if key not in self.messages:
            raise TelegramError(400, "Bad Request: message to edit not found")
        return self.messages[key]

    def _edit_message_text(self, params: Params) -> Json:
        message = self._stored(params)
        same_markup = params.get("reply_markup") == message.get("reply_markup")
        if params.get("text") == message["text"] and same_markup:
            raise TelegramError(400, NOT_MODIFIED)
        return self._update(message, params, "text")

    def _edit_reply_markup(self, params: Params) -> Json:
        message = self._stored(params)
        if params.get("reply_markup") == message.get("reply_markup"):
            raise TelegramError(400, NOT_MODIFIED)
        return self._update(message, params, "reply_markup")

    def _delete_message(self, params: Params) -> Json:
        key = (_int(params, "chat_id"), _int(params, "message_id"))
        if self.messages.pop(key, None) is None:
            raise TelegramError(400, "Bad Request: message to delete not found")
        return True

    def _update(self, message: Params, params: Params, changed: str) -> Params:
        message.update({"edit_date": int(time.time()), changed: params.get(changed)})
        if changed == "text" and "reply_markup" not in params:
            message.pop("reply_markup", None)
        elif changed == "text":
            message["reply_markup"] = params["reply_markup"]  # an edit may set the buttons too
        return message


async def _read_params(request: web.Request) -> tuple[Params, dict[str, bytes]]:
    """Query, JSON, urlencoded or multipart parameters; nested objects arrive as JSON strings."""
    params: Params = {name: _decode(name, value) for name, value in request.query.items()}
    files: dict[str, bytes] = {}
    if request.content_type == "application/json":
        body = await request.json()
        params.update(body if isinstance(body, dict) else {})
        return params, files
    if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return params, files
    for name, value in (await request.post()).items():
        if isinstance(value, str):
            params[name] = _decode(name, value)
        elif isinstance(value, web.FileField):
            files[name] = value.file.read()
        else:
            files[name] = bytes(value)
    return params, files


def _decode(name: str, value: str) -> Json:
    if name in _STRING_PARAMS:
        return value
    try:
        decoded: Json = json.loads(value)
    except ValueError:
        return value
    return decoded


def _int(params: Params, name: str) -> int:
    value = params.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise TelegramError(400, f"Bad Request: {name} is required")
    return value


def _error(status: int, description: str, retry_after: int | None = None) -> web.Response:
    body: Params = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return web.json_response(body, status=status)
