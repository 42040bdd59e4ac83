"""What happens around every route: recording, test controls, errors, upstream headers.

Middleware rather than per-route code, so that a 404 or a rejected control is recorded,
worded and decorated exactly like a successful answer.
"""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.demo.app_keys import CONTROLS, DEMO_STATE, RECORD, SEQUENCE, STARTED
from gateway.demo.controls import Fault, read_controls
from gateway.demo.errors import DemoError, from_http_exception
from gateway.demo.state import RecordedRequest

RATE_LIMIT_REQUESTS = 10_000


@web.middleware
async def openai_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every failure, aiohttp's own 404/405 included, with an OpenAI error body."""
    try:
        return await handler(request)
    except DemoError as exc:
        return exc.to_response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return from_http_exception(exc, request.method, request.path).to_response()


@web.middleware
async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record the request before anything can reject it: tests check what reached us."""
    state = request.app[DEMO_STATE]
    request[STARTED] = asyncio.get_running_loop().time()
    raw = await request.read()
    recorded = RecordedRequest(
        method=request.method,
        path=request.path,
        query_string=request.query_string,
        headers=CIMultiDictProxy(CIMultiDict(request.headers)),
        raw_body=raw,
        body=_parse_json(raw),
    )
    request[RECORD] = recorded
    request[SEQUENCE] = len(state.requests)
    state.requests.append(recorded)
    return await handler(request)


@web.middleware
async def apply_controls(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Read the ``X-Demo-*`` headers once, and answer the HTTP-status faults right here."""
    controls = read_controls(request.headers)
    request[CONTROLS] = controls
    if controls.fault is Fault.HTTP_500:
        raise DemoError(
            500, "The server had an error while processing your request.", type_="server_error"
        )
    if controls.fault is Fault.HTTP_429:
        raise DemoError(
            429,
            "Rate limit reached for requests (demo fault).",
            type_="requests",
            code="rate_limit_exceeded",
            headers={"retry-after": "0"},
        )
    return await handler(request)


async def upstream_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Headers real upstreams send on every answer, for the gateway to pass through."""
    sequence = request.get(SEQUENCE)
    started = request.get(STARTED)
    if sequence is None or started is None:
        return
    elapsed_ms = int((asyncio.get_running_loop().time() - started) * 1000)
    response.headers["x-request-id"] = f"req_demo{sequence:08d}"
    response.headers["openai-processing-ms"] = str(elapsed_ms)
    response.headers["x-ratelimit-limit-requests"] = str(RATE_LIMIT_REQUESTS)
    response.headers["x-ratelimit-remaining-requests"] = str(
        max(0, RATE_LIMIT_REQUESTS - 1 - sequence)
    )


def _parse_json(raw: bytes) -> object:
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None
