"""Graceful shutdown: which requests are still in flight, and whether the server is leaving.

On SIGTERM the server stops accepting connections and waits for the requests it already
has (``gateway.proxy.server``). Meanwhile readiness fails, so a load balancer that probes
over a kept-alive connection sends nothing new, and every answer closes its connection,
so clients reconnect to a server that is staying (another worker, another replica).

When the drain time is up, every upstream answer still being read fails as if upstream
had broken, so each stream ends the way the relay ends a broken stream: with an error
event the client's SDK raises, not a connection cut in the middle of an event.
"""

from __future__ import annotations

import asyncio
import weakref
from types import SimpleNamespace

from aiohttp import ClientPayloadError, ClientResponse, ClientSession, TraceConfig, web
from aiohttp.tracing import TraceRequestEndParams
from aiohttp.typedefs import Handler


class Drain:
    def __init__(self) -> None:
        self.draining = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._upstream: weakref.WeakSet[ClientResponse] = weakref.WeakSet()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def begin(self) -> None:
        self.draining = True

    async def idle(self) -> None:
        """Return once no request is in flight (at once if none is)."""
        await self._idle.wait()

    @web.middleware
    async def track(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Outermost middleware: a streamed answer counts until its last event is written."""
        self._in_flight += 1
        self._idle.clear()
        try:
            return await handler(request)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def close_when_draining(self, request: web.Request, response: web.StreamResponse) -> None:
        """``on_response_prepare``: a kept-alive connection must not outlive the drain.

        aiohttp has already chosen the ``Connection`` header when this hook runs, so it is
        set here as well as the close itself: the client learns it before the close.
        """
        if self.draining:
            response.force_close()
            response.headers["Connection"] = "close"

    def trace(self) -> TraceConfig:
        """For the upstream session: note every answer whose body may still be read."""
        config = TraceConfig()
        config.on_request_end.append(self._answered)
        return config

    async def _answered(
        self, session: ClientSession, context: SimpleNamespace, params: TraceRequestEndParams
    ) -> None:
        self._upstream.add(params.response)

    def end_upstream(self) -> None:
        """Fail the upstream bodies still being read (closing the connection would not:
        aiohttp then leaves a pending read waiting for data that never comes)."""
        for response in list(self._upstream):
            if not response.content.is_eof():
                response.content.set_exception(ClientPayloadError("the gateway is shutting down"))
