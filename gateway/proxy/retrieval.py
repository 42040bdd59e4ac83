"""Stored model output read back later: moderated like the answer that created it.

OpenAI stores Chat Completions (``store: true``), Responses (by default) and Conversation
items, and serves them again by id, as lists, after an update or a cancel, and a stored
Response even as a stream. Forwarded unchanged, these routes would hand back exactly the
text a policy redacted or cut, so they pass the same adapters: a whole object through the
adapter's ``moderate_response``, a list item by item (``each_item``), a Responses item as
the only output item of a response (``response_item``), a stored Chat message as the
message of a choice (``chat_message``).

Conversation items written by the client become model input later (``conversation``
on ``POST /v1/responses``), so the input rules check them on the way in, like the input
of ``POST /v1/responses``.

``GET /v1/responses/{id}?stream=true&starting_after=N`` resumes a stored stream. Upstream
would start it after event N of *its* numbering, in the middle of text the sluice must see
whole (a key split across events); so ``starting_after`` never goes upstream: the whole
stream is fetched and moderated, and the events the client already has (renumbered
``sequence_number`` <= N) are dropped on the way out (``ResumedStream``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import MultiDict

from gateway.adapters import ADAPTERS
from gateway.adapters.base import (
    ApiAdapter,
    BodyModerator,
    ChannelHit,
    Moderated,
    ModeratedBody,
    OutEvent,
    StreamModerator,
    TextField,
)
from gateway.proxy.body import read_body
from gateway.proxy.errors import error_response
from gateway.proxy.moderated import checked_body
from gateway.proxy.relay import Answer, Exchange
from gateway.proxy.state import UPSTREAM, UpstreamCall
from gateway.sluice import SluiceConfig
from gateway.sluice.classify import Taps

ModerateBody = BodyModerator
OpenStream = Callable[[SluiceConfig, Taps | None], StreamModerator]

_CHAT = ADAPTERS["/v1/chat/completions"]
_RESPONSES = ADAPTERS["/v1/responses"]


def each_item(moderate: ModerateBody) -> ModerateBody:
    """A list endpoint's ``data[]`` items, each moderated like a single object."""

    def moderate_list(
        body: dict[str, Any], config: SluiceConfig, taps: Taps | None = None
    ) -> ModeratedBody:
        items = body.get("data")
        if not isinstance(items, list):
            return ModeratedBody(body)
        hits: list[ChannelHit] = []
        for position, item in enumerate(items):
            if isinstance(item, dict):
                moderated = moderate(item, config, taps)
                items[position] = moderated.body
                hits.extend(moderated.hits)
        return ModeratedBody(body, tuple(hits))

    return moderate_list


def response_item(
    item: dict[str, Any], config: SluiceConfig, taps: Taps | None = None
) -> ModeratedBody:
    """A Responses item (conversation item, input item) as the one output item of a response.

    The adapter rewrites the texts an output item carries (``output_text``, ``refusal``,
    reasoning, tool-call arguments); a cut leaves the item ``status: "incomplete"``.
    """
    moderated = _RESPONSES.moderate_response({"output": [item]}, config, taps)
    output = moderated.body.get("output")
    kept = output[0] if isinstance(output, list) and output and isinstance(output[0], dict) else {}
    return ModeratedBody(kept, moderated.hits)


def chat_message(
    message: dict[str, Any], config: SluiceConfig, taps: Taps | None = None
) -> ModeratedBody:
    """A stored Chat message (``/chat/completions/{id}/messages``) as the message of a choice.

    Its ``id`` is set aside (the adapter takes every string of a message for text), and
    ``content_parts`` are moderated as a content list of their own.
    """
    kept = {key: message.pop(key) for key in ("id",) if key in message}
    had_parts = "content_parts" in message
    parts = message.pop("content_parts", None)
    moderated = _CHAT.moderate_response(
        {"choices": [{"index": 0, "message": message}]}, config, taps
    )
    hits = list(moderated.hits)
    out = {**kept, **_message_of(moderated.body)}
    if isinstance(parts, list):
        more = _CHAT.moderate_response(
            {"choices": [{"index": 0, "message": {"role": "user", "content": parts}}]},
            config,
            taps,
        )
        parts = _message_of(more.body).get("content")
        hits.extend(more.hits)
    if had_parts:
        out["content_parts"] = parts
    return ModeratedBody(out, tuple(hits))


def _message_of(body: dict[str, Any]) -> dict[str, Any]:
    choices = body.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        message = choices[0].get("message")
        if isinstance(message, dict):
            return message
    return {}


def _nothing(body: dict[str, Any], config: SluiceConfig, taps: Taps | None = None) -> ModeratedBody:
    """A ``conversation`` object: id, timestamps and the client's metadata, no model text."""
    return ModeratedBody(body)


def _conversation_items(body: dict[str, Any]) -> Iterator[TextField]:
    """The texts of ``items``, found as the Responses adapter finds those of ``input``."""
    items = body.get("items")
    if isinstance(items, list):
        for field in _RESPONSES.request_fields({"input": items}):
            # ``replace`` keeps the kind: a member name must refuse, not be "rewritten".
            yield dataclasses.replace(field, path=("items", *field.path[1:]))


CONVERSATION_INPUT = dataclasses.replace(_RESPONSES, request_fields=_conversation_items)


class ResumedStream:
    """A stored Responses stream resumed after event ``after``, moderated from its start.

    Every event goes through the moderator (so the sluice sees the text whole, and the
    renumbering is the one the client saw the first time); those numbered ``after`` or
    below are not sent. An error event always is: the client must learn that the stream
    failed, wherever it failed.
    """

    def __init__(self, inner: StreamModerator, after: int) -> None:
        self._inner = inner
        self._after = after

    @property
    def finished(self) -> bool:
        return self._inner.finished

    @property
    def held(self) -> int:
        return self._inner.held

    def on_event(self, data: str, event: str | None) -> Moderated:
        return self._drop_seen(self._inner.on_event(data, event))

    def on_eof(self) -> Moderated:
        return self._drop_seen(self._inner.on_eof())

    def on_upstream_error(self, message: str) -> Moderated:
        return self._drop_seen(self._inner.on_upstream_error(message))

    def _drop_seen(self, moderated: Moderated) -> Moderated:
        return Moderated([e for e in moderated.events if not self._seen(e)], moderated.hits)

    def _seen(self, event: OutEvent) -> bool:
        try:
            parsed = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            return False  # [DONE]
        if not isinstance(parsed, dict) or parsed.get("type") == "error":
            return False
        number = parsed.get("sequence_number")
        return isinstance(number, int) and number <= self._after


@dataclass(frozen=True, slots=True)
class StoredRoute:
    """How one stored-output route is moderated.

    ``moderate`` takes the whole body; ``stream`` opens a moderator when the client asks
    for ``stream=true`` (and may resume with ``starting_after``); ``inputs`` names the
    request texts the input rules check (the body is then re-sent as checked JSON).
    """

    moderate: ModerateBody
    stream: OpenStream | None = None
    inputs: ApiAdapter | None = None


STORED_ROUTES: dict[str, StoredRoute] = {
    "stored_chat_list": StoredRoute(each_item(_CHAT.moderate_response)),
    "stored_chat": StoredRoute(_CHAT.moderate_response),
    "stored_chat_update": StoredRoute(_CHAT.moderate_response),
    "stored_chat_messages": StoredRoute(each_item(chat_message)),
    "stored_response": StoredRoute(
        _RESPONSES.moderate_response, lambda config, taps: _RESPONSES.stream({}, config, taps)
    ),
    "stored_response_cancel": StoredRoute(_RESPONSES.moderate_response),
    "stored_response_input_items": StoredRoute(each_item(response_item)),
    "conversation_create": StoredRoute(_nothing, inputs=CONVERSATION_INPUT),
    "conversation_items": StoredRoute(each_item(response_item)),
    "conversation_items_create": StoredRoute(each_item(response_item), inputs=CONVERSATION_INPUT),
    "conversation_item": StoredRoute(response_item),
}
"""By route name (``gateway.proxy.routes``, ``STORED_MODERATED``)."""


def _no_stream(config: SluiceConfig, taps: Taps | None) -> StreamModerator:
    raise AssertionError("this route is never streamed")  # Answer(stream=False) never opens one


def stored_handler(spec: StoredRoute) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        exchange = Exchange.begin(request)
        if isinstance(exchange, web.Response):
            return exchange
        upstream = request.app[UPSTREAM]
        query = MultiDict(request.query)
        headers = upstream.headers(request.headers)
        open_stream = spec.stream
        if open_stream is not None and "starting_after" in query:
            after = _int(query.popall("starting_after"))
            if after is None:
                return error_response(
                    400, "starting_after must be an integer", param="starting_after"
                )
            inner = open_stream
            open_stream = lambda config, taps: ResumedStream(inner(config, taps), after)  # noqa: E731
        body: bytes | None = None
        if spec.inputs is not None:
            checked = await checked_body(exchange, spec.inputs)
            if isinstance(checked, web.Response):
                return checked
            body = orjson.dumps(checked)
            headers["Content-Type"] = "application/json"
        elif request.method != "GET" and request.body_exists:
            read = await read_body(request)  # an update's metadata: no text the rules read
            if isinstance(read, web.Response):
                return read
            body = read
        call = UpstreamCall(request.method, upstream.url(request.path, query), headers, body)
        answer = Answer(
            spec.moderate,
            open_stream or _no_stream,
            stream=open_stream is not None and query.get("stream") == "true",
        )
        return await exchange.relay(call, answer)

    return handle


def _int(values: list[str]) -> int | None:
    if len(values) != 1 or not re.fullmatch(r"-?[0-9]{1,18}", values[0]):
        return None
    return int(values[0])
