"""``POST`` on the moderated routes: input rules first, then the relay.

A request that an input rule blocks never reaches upstream; one that a rule redacts is
sent rewritten. What comes back is the relay's job (``relay``).
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.adapters.base import ApiAdapter
from gateway.adapters.inputs import UNREADABLE_INPUT, moderate_request
from gateway.policy.model import Direction
from gateway.proxy.body import read_body
from gateway.proxy.errors import error_response
from gateway.proxy.input_verdicts import judge_input
from gateway.proxy.relay import Answer, Exchange
from gateway.proxy.state import OFFLOAD, UPSTREAM, UpstreamCall
from gateway.sluice.budget import BudgetExceeded


async def checked_body(exchange: Exchange, adapter: ApiAdapter) -> dict[str, Any] | web.Response:
    """The request's JSON body after the input rules (rewritten where they redact), or the
    400 to answer instead: not a JSON object, or blocked (``param`` names the field)."""
    raw = await read_body(exchange.request)
    if isinstance(raw, web.Response):
        return raw
    offload = exchange.request.app[OFFLOAD]  # a big body is parsed and moderated off the loop
    try:
        body = await offload.run(len(raw), orjson.loads, raw)
    except orjson.JSONDecodeError as exc:  # its message gives a position, never the text
        return error_response(400, f"the request body is not valid JSON: {exc}")
    if not isinstance(body, dict):
        return error_response(400, "the request body must be a JSON object")
    exchange.budget.earn(len(raw))
    try:
        verdict = await offload.run(
            len(raw), moderate_request, adapter, body, exchange.policy.input
        )
    except BudgetExceeded as exc:  # the request's scan time, spent on its own text
        return exchange.over_budget(exc, 400)
    exchange.report(verdict.hits, Direction.INPUT)
    if verdict.blocked is not None:
        exchange.refused(() if verdict.code == UNREADABLE_INPUT else verdict.hits)
        return error_response(
            400,
            verdict.message,
            code=verdict.code,
            param=verdict.blocked.param,
        )
    return verdict.body


def route_handler(adapter: ApiAdapter) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        exchange = Exchange.begin(request)
        if isinstance(exchange, web.Response):
            return exchange
        body = await checked_body(exchange, adapter)
        if isinstance(body, web.Response):
            return body
        upstream = request.app[UPSTREAM]
        headers = upstream.headers(request.headers)
        headers["Content-Type"] = "application/json"
        try:
            payload = orjson.dumps(body)
        except orjson.JSONEncodeError:  # orjson reads 1024 levels but writes only 255
            return error_response(400, "the request body is nested too deeply")
        call = UpstreamCall("POST", upstream.url(request.path), headers, payload)
        answer = Answer(
            adapter.moderate_response,
            lambda config, taps: adapter.stream(body, config, taps),
            stream=body.get("stream") is True,
        )
        return await exchange.relay(call, answer, judge_input(exchange, adapter, body))

    return handle
