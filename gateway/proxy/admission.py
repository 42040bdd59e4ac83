"""How many moderated requests one process takes on at once.

Each moderated request holds an upstream connection, a moderator's buffers and its share
of the event loop until its answer (its whole stream) has gone out. Past
``max_concurrent_requests`` a new one is refused at once with a 429 and ``Retry-After``,
so a burst cannot grow memory and latency for everyone already being served; the SDKs
wait and retry on their own. Text-free and health routes are not counted: they hold no
moderation state, and ``/healthz`` must answer while the gateway is full.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.proxy.errors import error_response
from gateway.proxy.labels import route_label
from gateway.proxy.routes import ROUTES, RouteClass
from gateway.proxy.state import IN_FLIGHT, METRICS

MODERATED_ROUTES = frozenset(
    r.name for r in ROUTES if r.kind in (RouteClass.MODERATED, RouteClass.STORED_MODERATED)
)
RETRY_AFTER_SECONDS = 1


@web.middleware
async def admission(request: web.Request, handler: Handler) -> web.StreamResponse:
    if route_label(request) not in MODERATED_ROUTES:
        return await handler(request)
    in_flight = request.app[IN_FLIGHT]
    if not in_flight.try_enter():
        request.app[METRICS].rejected_requests.labels("concurrency").inc()
        response = error_response(
            429,
            "The gateway is serving as many requests as it takes at once; retry shortly.",
            type_="rate_limit_error",
            code="gateway_busy",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
        # Unlike the gateway's other errors, this one is fixed by waiting: let the SDKs
        # retry it after Retry-After.
        response.headers["x-should-retry"] = "true"
        return response
    try:
        return await handler(request)
    finally:
        in_flight.leave()
