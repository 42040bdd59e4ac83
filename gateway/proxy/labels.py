"""The bounded ``route`` label: a route's registered name, never the raw path."""

from __future__ import annotations

from aiohttp import web


def route_label(request: web.Request) -> str:
    name = request.match_info.route.name
    return name if name is not None else "unmatched"
