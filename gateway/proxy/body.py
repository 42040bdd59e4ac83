"""Reading a request body within a deadline, whole or streamed through.

aiohttp waits for a body as long as the client keeps the connection open, so a client
sending a byte now and then could hold a request (and its place among
``max_concurrent_requests``, or an upstream connection) indefinitely. Past
``client_body_timeout`` the answer is a 408 in the OpenAI format and the connection
closes, since the rest of that body would otherwise be read as the next request:

- a body the gateway reads whole (``read_body``) must arrive within the timeout in all;
- a body streamed to upstream unread (``StreamedBody``: pass-through uploads, which may
  be hundreds of megabytes on a slow link) must never pause for longer than it between
  two reads, as nginx's ``client_body_timeout`` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import StreamReader, web
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
        return too_slow(request, f"The request body did not arrive within {timeout:g} seconds.")
    except RequestPayloadError:  # a content-encoding that does not decode, a short body
        response = error_response(
            400, "The request body could not be read: its encoding is broken.", code="invalid_body"
        )
    response.force_close()
    return response


def too_slow(request: web.Request, message: str) -> web.Response:
    """The 408 for a body past its deadline: counted, and the connection closes."""
    request.app[METRICS].rejected_requests.labels("body_timeout").inc()
    response = error_response(408, message, code="request_timeout")
    response.force_close()
    return response


class StreamedBody:
    """A request body handed to upstream as it arrives, each read within ``timeout``.

    ``stalled`` tells the handler why the upstream call failed: a body that stopped
    arriving is the client's 408, not the upstream's 502.
    """

    def __init__(self, content: StreamReader, timeout: float) -> None:
        self._content = content
        self.timeout = timeout
        self.stalled = False

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            try:
                async with asyncio.timeout(self.timeout):
                    chunk = await self._content.readany()
            except TimeoutError:
                self.stalled = True
                raise
            if not chunk:
                return
            yield chunk
