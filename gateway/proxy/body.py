"""Reading a request body the gateway must see whole, within a deadline.

aiohttp waits for a body as long as the client keeps the connection open, so a client
sending a byte now and then could hold a request (and its place among
``max_concurrent_requests``) indefinitely. Every body the gateway reads whole is read
here: past ``client_body_timeout`` the answer is a 408 in the OpenAI format and the
connection closes, since the rest of that body would otherwise be read as the next
request.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from gateway.proxy.errors import error_response
from gateway.proxy.state import METRICS, SETTINGS


async def read_body(request: web.Request) -> bytes | web.Response:
    """The whole body, or the error to answer instead.

    A body larger than ``max_request_bytes`` raises aiohttp's 413, which the
    request-context middleware answers in the OpenAI format like any other.
    """
    timeout = request.app[SETTINGS].client_body_timeout
    try:
        async with asyncio.timeout(timeout):
            return await request.read()
    except TimeoutError:
        request.app[METRICS].rejected_requests.labels("body_timeout").inc()
        response = error_response(
            408,
            f"The request body did not arrive within {timeout:g} seconds.",
            code="request_timeout",
        )
    except RequestPayloadError:  # a content-encoding that does not decode, a short body
        response = error_response(
            400, "The request body could not be read: its encoding is broken.", code="invalid_body"
        )
    response.force_close()
    return response
