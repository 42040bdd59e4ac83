"""A hostile upstream: answers each request with exactly the bytes a test scripted.

The demo upstream (``gateway.demo``) only speaks well-formed OpenAI. This one speaks
whatever a test hands it: raw SSE ``data:`` payloads sent verbatim (so a test can send
duplicate JSON keys, fields no API documents, member names that are text), a raw body
with any content type, or a status. It exists to find what the gateway's adapters let
through, so it never parses, fixes or completes anything it sends.

A test registers a ``Script`` on the app's ``HostileState`` and sends the header that
``HostileState.script`` returns with its request; the gateway forwards unknown headers
upstream, so the script travels with the request it belongs to and tests cannot see
each other's answers. Every request that arrives is recorded.
"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

SCRIPT_HEADER = "X-Hostile-Script"


@dataclass(frozen=True, slots=True)
class Script:
    """What to answer: ``parts`` are written one by one, each flushed on its own."""

    parts: tuple[bytes, ...]
    content_type: str = "text/event-stream"
    status: int = 200


@dataclass(frozen=True, slots=True)
class Received:
    """One request as the upstream saw it."""

    method: str
    path: str
    query: str
    headers: CIMultiDict[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class HostileState:
    """Scripts by id and the requests received, shared with the test thread."""

    scripts: dict[str, Script] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, script: Script) -> dict[str, str]:
        """Register ``script``; the headers that make one request get it."""
        with self._lock:
            key = f"s{next(self._ids)}"
            self.scripts[key] = script
        return {SCRIPT_HEADER: key}

    def receive(self, received: Received) -> Script | None:
        """Record a request; the script its header names, if any."""
        with self._lock:
            self.requests.append(received)
            return self.scripts.get(received.headers.get(SCRIPT_HEADER, ""))

    def last(self) -> Received:
        with self._lock:
            return self.requests[-1]


HOSTILE_STATE = web.AppKey("hostile_state", HostileState)


def sse(*events: str | tuple[str, str], done: bool = False, crlf: bool = False) -> Script:
    """An event stream of these ``data:`` payloads, verbatim (``(name, data)`` adds an
    ``event:`` line), optionally ending with ``[DONE]``. One write per event."""
    end = "\r\n" if crlf else "\n"
    parts = []
    for event in (*events, "[DONE]") if done else events:
        name, data = event if isinstance(event, tuple) else (None, event)
        head = f"event: {name}{end}" if name is not None else ""
        parts.append(f"{head}data: {data}{end}{end}".encode())
    return Script(tuple(parts))


def body(
    raw: str | bytes | dict[str, Any], content_type: str = "application/json", status: int = 200
) -> Script:
    """A whole body: a ``dict`` is dumped as JSON, text and bytes are sent as they are."""
    if isinstance(raw, dict):
        raw = json.dumps(raw)
    data = raw.encode() if isinstance(raw, str) else raw
    return Script((data,), content_type, status)


def lines(*payloads: str, content_type: str = "application/x-ndjson") -> Script:
    """Newline-delimited payloads (e.g. NDJSON), one write per line."""
    return Script(tuple(f"{p}\n".encode() for p in payloads), content_type)


async def _answer(request: web.Request) -> web.StreamResponse:
    state = request.app[HOSTILE_STATE]
    received = Received(
        request.method,
        request.path,
        request.query_string,
        CIMultiDict(request.headers),
        await request.read(),
    )
    script = state.receive(received)
    if script is None:
        return web.json_response(
            {"error": {"message": "no script for this request", "type": "hostile", "code": None}},
            status=404,
        )
    out = web.StreamResponse(status=script.status)
    out.content_type = script.content_type
    await out.prepare(request)
    for part in script.parts:
        await out.write(part)
    await out.write_eof()
    return out


def create_hostile_app() -> web.Application:
    """Every method on every path answers with the request's script."""
    app = web.Application()
    app[HOSTILE_STATE] = HostileState()
    app.router.add_route("*", "/{tail:.*}", _answer)
    return app
