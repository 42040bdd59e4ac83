"""Request id, client authentication and request metrics, for every route."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.proxy.errors import error_response
from gateway.proxy.headers import REQUEST_ID as REQUEST_ID_HEADER
from gateway.proxy.labels import route_label
from gateway.proxy.state import METRICS, REQUEST_ID, SETTINGS

log = logging.getLogger("sluicegate.proxy")
_OPEN_ROUTES = frozenset({"healthz", "readyz", "metrics"})


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every response carries the request id, also on errors, and is counted once."""
    request_id = uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    started = time.monotonic()
    label = route_label(request)
    metrics = request.app[METRICS]
    status = 500
    try:
        response = _authenticate(request, label) or await handler(request)
        status = response.status
    except web.HTTPException as exc:
        if exc.status < 400:
            status = exc.status
            raise
        # aiohttp's own 404, 405 and 413 are plain text; SDKs expect the OpenAI body.
        response = error_response(exc.status, exc.reason, code=exc.reason.lower().replace(" ", "_"))
        status = exc.status
    except asyncio.CancelledError:
        status = 499  # the client closed the connection (nginx's convention)
        raise
    finally:
        metrics.requests.labels(label, str(status)).inc()
        metrics.duration.labels(label).observe(time.monotonic() - started)
    return response


async def add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: streamed responses get the header before it is too late."""
    request_id = request.get(REQUEST_ID)
    if request_id is not None:
        response.headers[REQUEST_ID_HEADER] = request_id


def _authenticate(request: web.Request, label: str) -> web.StreamResponse | None:
    keys = request.app[SETTINGS].api_keys
    if not keys or label in _OPEN_ROUTES:
        return None
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    token = presented.strip().encode()
    valid = scheme.lower() == "bearer" and any(
        hmac.compare_digest(token, k.get_secret_value().encode()) for k in keys
    )
    if valid:
        return None
    return error_response(
        401, "Incorrect or missing API key for this gateway.", code="invalid_api_key"
    )
