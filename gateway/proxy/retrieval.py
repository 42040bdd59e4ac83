"""Stored model output read back later: moderated like the answer that created it.

OpenAI stores Chat Completions (``store: true``) and Responses (by default) and serves
them again by id, even as a stream. Forwarded unchanged, these routes would hand back
exactly the text a policy redacted or cut, so they pass the same adapters.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gateway.adapters.base import ApiAdapter, HitLog
from gateway.proxy.headers import upstream_request_headers
from gateway.proxy.moderated import Moderate, relay, select_policy, upstream_key
from gateway.sluice import SluiceConfig

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def each_item(moderate: Moderate) -> Moderate:
    """A list endpoint's ``data[]`` items, each moderated like a single object."""

    def moderate_list(body: dict[str, Any], config: SluiceConfig, log: HitLog) -> dict[str, Any]:
        items = body.get("data")
        if isinstance(items, list):
            body["data"] = [moderate(i, config, log) if isinstance(i, dict) else i for i in items]
        return body

    return moderate_list


def retrieval_handler(adapter: ApiAdapter, listing: bool) -> Handler:
    moderate = each_item(adapter.moderate_response) if listing else adapter.moderate_response

    async def handle(request: web.Request) -> web.StreamResponse:
        policy = select_policy(request)
        if isinstance(policy, web.Response):
            return policy
        headers = upstream_request_headers(request.headers, upstream_key(request))
        call = {"method": "GET", "params": request.query, "headers": headers}
        stream = request.query.get("stream") == "true"
        return await relay(request, call, moderate, adapter, {}, policy, stream)

    return handle
