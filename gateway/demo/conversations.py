"""``/v1/conversations``: a conversation and its items, scripted like every stored object.

The demo stores nothing: a conversation's items are the scripted reply's output items (the
``X-Demo-Reply`` header of the request reading them), so a test can plant a text in stored
output and watch what the gateway does with it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.demo.app_keys import CLOCK, SEQUENCE
from gateway.demo.body import json_body
from gateway.demo.responses import item_list, stored_items
from gateway.demo.sending import send_json


async def create(request: web.Request) -> web.StreamResponse:
    """``POST /v1/conversations``: a new conversation (its items are not echoed)."""
    body = json_body(request)
    return await send_json(
        request,
        {
            "id": f"conv_demo{request[SEQUENCE]:08d}",
            "object": "conversation",
            "created_at": int(request.app[CLOCK]()),
            "metadata": body.get("metadata") or {},
        },
    )


async def list_items(request: web.Request) -> web.StreamResponse:
    """``GET /v1/conversations/{id}/items``."""
    return await send_json(request, item_list(stored_items(request)))


async def add_items(request: web.Request) -> web.StreamResponse:
    """``POST /v1/conversations/{id}/items``: the items added, as stored (scripted)."""
    json_body(request)
    return await send_json(request, item_list(stored_items(request)))


async def get_item(request: web.Request) -> web.StreamResponse:
    """``GET /v1/conversations/{id}/items/{item_id}``: the first stored item."""
    items: list[dict[str, Any]] = stored_items(request)
    return await send_json(request, {**items[0], "id": request.match_info["item_id"]})
