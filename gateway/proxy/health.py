"""Liveness, readiness and the Prometheus exposition."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.proxy.state import DRAIN, METRICS, POLICIES, UPSTREAM


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready once policies are loaded and an upstream is configured (the demo: started),
    and no longer once a shutdown began: the drain should get no new traffic."""
    policies = request.app.get(POLICIES)
    draining = request.app[DRAIN].draining
    ready = bool(policies and policies.policies) and UPSTREAM in request.app and not draining
    body = {
        "status": "ready" if ready else "draining" if draining else "not ready",
        "policies": sorted(policies.policies) if policies else [],
        "default_policy": policies.default if policies else None,
    }
    return web.json_response(body, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].exposition)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
