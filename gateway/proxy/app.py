"""``create_app(settings)``: the whole gateway as one aiohttp application.

State lives in typed app keys, resources in cleanup contexts: one upstream session per
app with a bounded pool (never one per request), the in-process demo upstream when
asked for, the policy reload watcher, and the audit log, each closed on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web
from aiohttp.typedefs import Handler

from gateway.adapters import ADAPTERS
from gateway.metrics import Metrics
from gateway.policy import PolicyError
from gateway.policy.store import PolicyStore
from gateway.proxy.audit import AuditLog
from gateway.proxy.health import healthz, metrics, readyz
from gateway.proxy.middleware import add_request_id, request_context, route_guard
from gateway.proxy.moderated import route_handler
from gateway.proxy.passthrough import passthrough
from gateway.proxy.retrieval import STORED_ROUTES, stored_handler
from gateway.proxy.routes import PASSTHROUGH, ROUTES, RouteClass
from gateway.proxy.state import AUDIT, METRICS, POLICIES, SETTINGS, UPSTREAM, Upstream
from gateway.settings import Settings

log = logging.getLogger("sluicegate")


def create_app(settings: Settings, metrics_: Metrics | None = None) -> web.Application:
    """Build the gateway; raises ``PolicyError`` if the policies do not load."""
    app = web.Application(
        middlewares=[request_context, route_guard], client_max_size=settings.max_request_bytes
    )
    app[SETTINGS] = settings
    app[METRICS] = metrics_ if metrics_ is not None else Metrics()
    app[POLICIES] = PolicyStore(settings.policy, settings.default_policy)
    app[AUDIT] = AuditLog(settings.audit_log)
    app.on_response_prepare.append(add_request_id)
    app.cleanup_ctx.append(_upstream)
    app.cleanup_ctx.append(_policy_watcher)
    app.cleanup_ctx.append(_audit)
    # Moderated and stored routes from the route table (``gateway.proxy.routes``), each
    # under its name (the bounded ``route`` metric label); everything else under /v1 goes
    # to the route guard and then, if it is text-free, to the pass-through.
    handlers: dict[str, Handler] = {
        # chat_completions, completions, responses
        **{p.removeprefix("/v1/").replace("/", "_"): route_handler(a) for p, a in ADAPTERS.items()},
        # the input of a compaction is a Responses input, its output a Responses output
        "responses_compact": route_handler(ADAPTERS["/v1/responses"]),
        **{name: stored_handler(spec) for name, spec in STORED_ROUTES.items()},
    }
    for route in ROUTES:
        if route.kind in (RouteClass.MODERATED, RouteClass.STORED_MODERATED):
            app.router.add_route(route.method, route.path, handlers[route.name], name=route.name)
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/readyz", readyz, name="readyz")
    app.router.add_get("/metrics", metrics, name="metrics")
    app.router.add_route("*", "/v1/{tail:.*}", passthrough, name=PASSTHROUGH)
    return app


async def _upstream(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with contextlib.AsyncExitStack() as stack:
        base_url = settings.upstream_url
        if settings.is_demo:
            base_url = await stack.enter_async_context(_demo_upstream(settings.demo_pace))
        session = ClientSession(
            connector=TCPConnector(limit=settings.max_connections),
            timeout=ClientTimeout(
                total=None, connect=settings.connect_timeout, sock_read=settings.read_timeout
            ),
        )
        await stack.enter_async_context(session)
        key = settings.upstream_api_key
        app[UPSTREAM] = Upstream(
            session, base_url, key.get_secret_value() if key is not None else None
        )
        yield


@contextlib.asynccontextmanager
async def _demo_upstream(pace: float) -> AsyncIterator[str]:
    """The built-in demo upstream, on a free loopback port, in this process."""
    from gateway.demo import create_demo_app  # only demo mode pays for it

    runner = web.AppRunner(create_demo_app(pace=pace), handler_cancellation=True)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()


async def _policy_watcher(app: web.Application) -> AsyncIterator[None]:
    interval = app[SETTINGS].policy_reload_seconds
    task = asyncio.create_task(_watch(app, interval)) if interval > 0 else None
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _watch(app: web.Application, interval: float) -> None:
    store, metrics = app[POLICIES], app[METRICS]
    while True:
        await asyncio.sleep(interval)
        try:
            if store.changed():
                reload_policies(store, metrics)
        except Exception:  # the watcher must outlive any one bad edit or filesystem race
            log.exception("policy reload failed; keeping the last good policies")
            metrics.policy_reloads.labels("failure").inc()
            store.mark_seen()


def reload_policies(store: PolicyStore, metrics: Metrics) -> bool:
    """Reload now; a broken set is logged, counted and ignored (the last good set stays)."""
    try:
        store.reload()
    except PolicyError as exc:
        store.mark_seen()
        metrics.policy_reloads.labels("failure").inc()
        for problem in exc.problems:
            log.error("policy reload rejected, keeping the last good policies: %s", problem)
        return False
    metrics.policy_reloads.labels("success").inc()
    log.info("policies reloaded: %s", ", ".join(store.policies))
    return True


async def _audit(app: web.Application) -> AsyncIterator[None]:
    yield
    app[AUDIT].close()
