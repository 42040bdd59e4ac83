"""The text-free ``/v1/...`` routes, forwarded unchanged and streamed both ways.

Only what the route guard let through gets here (``gateway.proxy.middleware``): a
canonical path that the route table classes as text-free (``gateway.proxy.routes``).

Uploads (files, audio) and downloads are never buffered whole: the request body is handed
to the client session as a stream and the response is relayed chunk by chunk. An upload
that pauses for longer than ``client_body_timeout`` between two reads is a 408
(``gateway.proxy.body``), so a client cannot hold an upstream connection open forever.
"""

from __future__ import annotations

import logging

from aiohttp import ClientError, web

from gateway.proxy.body import StreamedBody, too_slow
from gateway.proxy.errors import error_response
from gateway.proxy.headers import client_response_headers
from gateway.proxy.paths import path_problem
from gateway.proxy.state import METRICS, SETTINGS, UPSTREAM

log = logging.getLogger("sluicegate.proxy")
_CHUNK = 64 * 1024


async def passthrough(request: web.Request) -> web.StreamResponse:
    if path_problem(request.rel_url.raw_path) is not None:  # the guard refused it already
        return error_response(
            400, "The request path is not in canonical form.", code="invalid_path"
        )
    upstream = request.app[UPSTREAM]
    headers = upstream.headers(request.headers)
    body = StreamedBody(request.content, request.app[SETTINGS].client_body_timeout)
    data = body.chunks() if request.body_exists else None
    if (
        data is not None
        and request.content_length is not None
        and "content-encoding" not in request.headers
    ):
        # Streamed unchanged: keep the length, some upstreams refuse chunked uploads (411).
        headers["Content-Length"] = str(request.content_length)
    out: web.StreamResponse | None = None
    try:
        async with upstream.session.request(
            request.method, upstream.raw_url(request.rel_url), data=data, headers=headers
        ) as resp:
            out = web.StreamResponse(
                status=resp.status,
                reason=resp.reason,
                headers=client_response_headers(resp.headers, rewritten=False),
            )
            await out.prepare(request)
            async for chunk in resp.content.iter_chunked(_CHUNK):
                await out.write(chunk)
            await out.write_eof()
            return out
    except (ClientError, TimeoutError) as exc:
        if body.stalled and out is None:
            return too_slow(
                request, f"The request body stalled: nothing arrived for {body.timeout:g} seconds."
            )
        request.app[METRICS].upstream_errors.labels("connection").inc()
        log.warning("upstream request failed: %s", type(exc).__name__)
        if out is not None:
            # Headers are gone already: cut the connection so the client sees a failure
            # rather than a body that merely looks short.
            out.force_close()
            raise
        return error_response(
            502, "The upstream API could not be reached.", "upstream_error", "upstream_unavailable"
        )
