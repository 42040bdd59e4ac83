"""Errors in the OpenAI error format, so the official SDKs raise their usual exceptions.

The SDKs unwrap ``{"error": {...}}`` and map the status to an exception class (docs/wire.md,
"Error bodies"); anything else would surface as a generic error and make the demo a poor
stand-in for a real upstream.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from aiohttp import web


class DemoError(Exception):
    """A failure to report to the client as an OpenAI error body with ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code
        self.headers = headers

    def to_response(self) -> web.Response:
        body = {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }
        return web.Response(
            status=self.status,
            body=orjson.dumps(body),
            content_type="application/json",
            headers=self.headers,
        )


def from_http_exception(exc: web.HTTPException, method: str, path: str) -> DemoError:
    """Re-express aiohttp's own 404/405/413 … in the OpenAI format, worded like OpenAI's."""
    if exc.status in (404, 405):
        return DemoError(exc.status, f"Invalid URL ({method} {path})")
    return DemoError(exc.status, exc.reason)
