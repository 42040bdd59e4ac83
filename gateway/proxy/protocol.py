"""The HTTP connection layer: what aiohttp itself answers and logs, in the gateway's terms.

Requests aiohttp's parser rejects (a bad request line, a malformed or oversized header, a
bad ``Content-Length`` or chunk size) never reach a middleware: aiohttp answers them from
``RequestHandler.handle_error`` with ``text/plain`` that quotes the offending bytes, and
logs the exception, whose message quotes them again, at ERROR. Those bytes are often a
header line with a client's API key. aiohttp has no hook for this (aio-libs/aiohttp#3287),
so the connection handler is subclassed here: every such answer is an OpenAI-format
error with a fixed message, and the log gets the exception's type and where it was raised,
never its message. The same goes for an exception that escapes a handler (500).

``GatewayRunner`` is ``web.AppRunner`` with this handler and no access log (request lines
carry query strings); serve the app with it, not with ``web.run_app``.
"""

from __future__ import annotations

import logging
import traceback
from pathlib import PurePath
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadStatusLine, LineTooLong

from gateway.proxy.errors import error_response

log = logging.getLogger("sluicegate.http")
_FRAMES = 8


def describe(exc: BaseException | None) -> str:
    """An exception's types (its chain too) and innermost frames, never its message.

    Messages of parser and codec errors quote the request's bytes; file names, line
    numbers and function names are the gateway's own.
    """
    if exc is None:
        return "no exception"
    names: list[str] = []
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        names.append(type(link).__qualname__)
        link = link.__cause__ or link.__context__
    frames = traceback.extract_tb(exc.__traceback__)[-_FRAMES:]
    where = "; ".join(
        f"{PurePath(f.filename).name}:{f.lineno} in {f.name}" for f in reversed(frames)
    )
    return " from ".join(names) + (f" at {where}" if where else "")


class ProtocolHandler(web.RequestHandler):
    """aiohttp's connection handler, answering and logging its own errors safely."""

    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """``message`` (aiohttp's text, quoting the request) is never used."""
        if status >= 500:
            log.error("error while handling a request: %s", describe(exc))
        else:
            log.info("refused a request that is not valid HTTP: %s", type(exc).__name__)
        if request.writer.output_size > 0:
            # Same as aiohttp: a response has started, so the connection can only be cut.
            raise ConnectionError("a response was already sent; cannot send an error")
        response = self._answer(status, exc)
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp's other error logs (a failure between requests): its arguments can
        hold a request's bytes, so only the exception's description is kept."""
        exc = kw.get("exc_info")
        log.error(
            "error in an HTTP connection: %s",
            describe(exc if isinstance(exc, BaseException) else None),
        )

    def _answer(self, status: int, exc: BaseException | None) -> web.Response:
        if status == 504:  # a handler raised TimeoutError
            return error_response(
                504, "The gateway timed out handling the request.", "server_error", "timeout"
            )
        if status >= 500:
            return error_response(
                status, "The gateway failed to handle the request.", "server_error", "server_error"
            )
        if isinstance(exc, LineTooLong):
            return error_response(
                status,
                "The request line or a header is longer than the gateway accepts "
                f"({self.max_field_size} bytes).",
                code="request_head_too_large",
            )
        if isinstance(exc, BadStatusLine):
            return error_response(
                status, "The request line is not valid HTTP/1.1.", code="invalid_request_line"
            )
        return error_response(
            status,
            "The request is not valid HTTP/1.1: its headers or its body's framing "
            "(Content-Length, chunked encoding) could not be parsed.",
            code="malformed_http",
        )


class _Server(web.Server):
    def __call__(self) -> web.RequestHandler:
        # ``_loop`` and ``_kwargs`` are what ``web.Server.__call__`` builds its handler from.
        return ProtocolHandler(self, loop=self._loop, **self._kwargs)


class GatewayRunner(web.AppRunner):
    """``web.AppRunner`` for the gateway: ``ProtocolHandler`` connections, no access log,
    handlers cancelled when their client goes away."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        kwargs.setdefault("access_log", None)
        kwargs.setdefault("handler_cancellation", True)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()  # runs the app's startup, as AppRunner does
        return _Server(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **server._kwargs,
        )
