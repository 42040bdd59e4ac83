"""Errors the gateway itself produces, in the OpenAI error format.

The official SDKs unwrap ``{"error": {...}}`` and map the status to their usual
exceptions, so a policy block surfaces as ``BadRequestError`` with
``code == "content_policy_violation"`` instead of an opaque failure.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from aiohttp import web


def error_body(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> bytes:
    return orjson.dumps(
        {"error": {"message": message, "type": type_, "param": param, "code": code}}
    )


def error_response(
    status: int,
    message: str,
    type_: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    response = web.Response(
        status=status,
        body=error_body(message, type_, code, param),
        content_type="application/json",
        headers=headers,
    )
    if status >= 500 or status in {408, 409, 429}:
        # The SDKs retry these; a gateway failure is not fixed by hammering it.
        response.headers["x-should-retry"] = "false"
    return response
