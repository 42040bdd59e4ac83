"""Stored model output read back later: moderated like the answer that created it.

OpenAI stores Chat Completions (``store: true``) and Responses (by default) and serves
them again by id, even as a stream. Forwarded unchanged, these routes would hand back
exactly the text a policy redacted or cut, so they pass the same adapters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.adapters.base import ApiAdapter, ChannelHit, ModeratedBody
from gateway.proxy.relay import Answer, Exchange
from gateway.proxy.state import UPSTREAM, UpstreamCall
from gateway.sluice import SluiceConfig

ModerateBody = Callable[[dict[str, Any], SluiceConfig], ModeratedBody]


def each_item(moderate: ModerateBody) -> ModerateBody:
    """A list endpoint's ``data[]`` items, each moderated like a single object."""

    def moderate_list(body: dict[str, Any], config: SluiceConfig) -> ModeratedBody:
        items = body.get("data")
        if not isinstance(items, list):
            return ModeratedBody(body)
        hits: list[ChannelHit] = []
        for position, item in enumerate(items):
            if isinstance(item, dict):
                moderated = moderate(item, config)
                items[position] = moderated.body
                hits.extend(moderated.hits)
        return ModeratedBody(body, tuple(hits))

    return moderate_list


def retrieval_handler(adapter: ApiAdapter, listing: bool) -> Handler:
    moderate = each_item(adapter.moderate_response) if listing else adapter.moderate_response

    async def handle(request: web.Request) -> web.StreamResponse:
        exchange = Exchange.begin(request)
        if isinstance(exchange, web.Response):
            return exchange
        upstream = request.app[UPSTREAM]
        url = upstream.url(request.path, request.query)
        call = UpstreamCall("GET", url, upstream.headers(request.headers))
        answer = Answer(
            moderate,
            lambda config: adapter.stream({}, config),
            stream=request.query.get("stream") == "true",
        )
        return await exchange.relay(call, answer)

    return handle
