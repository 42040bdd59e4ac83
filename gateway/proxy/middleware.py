"""Request id, client authentication, request metrics and the route guard, for every route."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.proxy.bearer import presents_key
from gateway.proxy.errors import error_response
from gateway.proxy.headers import REQUEST_ID as REQUEST_ID_HEADER
from gateway.proxy.labels import route_label
from gateway.proxy.paths import path_problem
from gateway.proxy.playground import OPEN_ROUTES as PLAYGROUND_PAGE
from gateway.proxy.request_log import RequestFacts, log_request
from gateway.proxy.routes import RouteClass, resolve
from gateway.proxy.state import METRICS, REQUEST_FACTS, REQUEST_ID, SETTINGS

log = logging.getLogger("sluicegate.proxy")
_OPEN_ROUTES = frozenset({"healthz", "readyz", "metrics"}) | PLAYGROUND_PAGE
METHOD_OVERRIDES = ("X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override")
"""Headers some servers take for the method: a POST read as a GET (or the reverse) would be
moderated as one route and served as another, so a request carrying one is refused."""


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every response carries the request id, also on errors, and is counted and logged
    once (``request_log``)."""
    request_id = uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    facts = request[REQUEST_FACTS] = RequestFacts()
    started = facts.started
    label = route_label(request)
    metrics = request.app[METRICS]
    status = 500
    response: web.StreamResponse | None = None
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
        metrics.client_disconnects.labels(label).inc()
        raise
    finally:
        metrics.requests.labels(label, str(status)).inc()
        metrics.duration.labels(label).observe(time.monotonic() - started)
        log_request(
            facts,
            request_id=request_id,
            method=request.method,
            route=label,
            status=status,
            bytes_out=_body_bytes(response),
        )
    return response


def _body_bytes(response: web.StreamResponse | None) -> int | None:
    """A whole body's length; a forwarded stream's bytes as written (framing included)."""
    if isinstance(response, web.Response) and isinstance(response.body, bytes):
        return len(response.body)
    if response is not None and response.prepared:
        return response.body_length
    return None


async def add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: streamed responses get the header before it is too late."""
    request_id = request.get(REQUEST_ID)
    if request_id is not None:
        response.headers[REQUEST_ID_HEADER] = request_id


def _authenticate(request: web.Request, label: str) -> web.StreamResponse | None:
    """Client keys guard the API; ``/metrics`` has a key of its own, so a scraper's
    credential is never one that can spend model tokens."""
    settings = request.app[SETTINGS]
    if label == "metrics":
        key = settings.metrics_key
        if key is None or presents_key(request.headers, (key,)):
            return None
        return error_response(401, "Incorrect or missing metrics key.", code="invalid_api_key")
    keys = settings.api_keys
    if not keys or label in _OPEN_ROUTES or presents_key(request.headers, keys):
        return None
    return error_response(
        401, "Incorrect or missing API key for this gateway.", code="invalid_api_key"
    )


@web.middleware
async def route_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Default deny: a ``/v1`` request is served only as the route table classifies it.

    The path must be canonical (``gateway.proxy.paths``: anything else is a 400
    ``invalid_path``, whatever route it is meant for), carry no method override, and be a
    route of the table (``gateway.proxy.routes``) with its method; a refused route is a
    403 ``route_not_moderated``. Nothing refused here is ever forwarded.
    """
    raw = request.rel_url.raw_path
    problem = path_problem(raw)
    if problem is None and request.rel_url.raw_fragment:
        problem = "it has a fragment"
    if problem is not None:
        return error_response(
            400, f"The request path is not in canonical form: {problem}.", code="invalid_path"
        )
    if not raw.lower().startswith("/v1/") and raw.lower() != "/v1":
        return await handler(request)
    for name in METHOD_OVERRIDES:
        if name in request.headers:
            return error_response(
                400,
                f"{name} is not accepted: send the request with its own method.",
                code="method_override_not_allowed",
                param=name,
            )
    resolution = resolve(request.method, raw)
    route = resolution.route
    if resolution.problem is not None:
        return error_response(
            400,
            f"The request path is not in canonical form: {resolution.problem}.",
            code="invalid_path",
        )
    if resolution.allowed:
        allowed = ", ".join(resolution.allowed)
        return error_response(
            405,
            f"{request.method} is not allowed on this route (allowed: {allowed}).",
            code="method_not_allowed",
            headers={"Allow": allowed},
        )
    if route is None:
        return error_response(
            404,
            "The gateway does not know this route, so it cannot tell whether it returns "
            "model text; it is not forwarded.",
            code="route_not_moderated",
        )
    if route.kind is RouteClass.REFUSED:
        return error_response(
            403,
            f"{route.method} {route.path} is refused by the gateway: {route.reason}.",
            code="route_not_moderated",
        )
    if route.method == "OPTIONS" and request.body_exists:
        return error_response(400, "An OPTIONS request must not have a body.")
    if route_label(request) != route.name:
        # The router and the table disagree: serving it could skip moderation.
        log.error("route table says %s, router chose %s", route.name, route_label(request))
        return error_response(500, "The gateway's routes are inconsistent.", "server_error")
    return await handler(request)
