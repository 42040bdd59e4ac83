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
from gateway.policy import BUNDLED_DIR, DEFAULT_POLICY, PolicyError
from gateway.policy.store import PolicyStore
from gateway.proxy.admission import admission
from gateway.proxy.audit import open_audit_log
from gateway.proxy.drain import Drain
from gateway.proxy.health import healthz, metrics, readyz
from gateway.proxy.middleware import add_request_id, request_context, route_guard
from gateway.proxy.moderated import route_handler
from gateway.proxy.offload import Offload
from gateway.proxy.passthrough import passthrough
from gateway.proxy.playground import setup_playground
from gateway.proxy.retrieval import STORED_ROUTES, stored_handler
from gateway.proxy.routes import PASSTHROUGH, ROUTES, RouteClass
from gateway.proxy.state import (
    AUDIT,
    DRAIN,
    IN_FLIGHT,
    JUDGES,
    METRICS,
    OFFLOAD,
    POLICIES,
    SETTINGS,
    UPSTREAM,
    InFlight,
    Upstream,
)
from gateway.proxy.verdicts import Judges
from gateway.settings import Settings

log = logging.getLogger("sluicegate")
LINGER_SECONDS = 2.0


def create_app(settings: Settings, metrics_: Metrics | None = None) -> web.Application:
    """Build the gateway; raises ``PolicyError`` if the policies do not load."""
    drain = Drain()
    app = web.Application(
        middlewares=[drain.track, request_context, route_guard, admission],
        client_max_size=settings.max_request_bytes,
        # aiohttp enforces its keep-alive timer whenever a connection waits for a request
        # head, from the connection's start too: that caps slow headers and idle
        # keep-alive alike (``gateway.proxy.body`` caps the body). After an answer sent
        # before the body was read (a 408, a 401), the rest of the body is read and
        # dropped for up to LINGER_SECONDS, so the client can still read that answer.
        handler_args={
            "keepalive_timeout": settings.client_header_timeout,
            "lingering_time": LINGER_SECONDS,
        },
    )
    app[SETTINGS] = settings
    app[METRICS] = metrics_ if metrics_ is not None else Metrics()
    app[POLICIES] = _policies(settings)
    app[AUDIT] = open_audit_log(settings, app[METRICS])
    app[IN_FLIGHT] = InFlight(settings.max_concurrent_requests)
    app[DRAIN] = drain
    app[OFFLOAD] = Offload(settings.offload_threads, settings.offload_bytes)
    app.on_response_prepare.append(add_request_id)
    app.on_response_prepare.append(drain.close_when_draining)
    app.on_shutdown.append(_end_upstream_calls)
    app.cleanup_ctx.append(_upstream)
    app.cleanup_ctx.append(_policy_watcher)
    app.cleanup_ctx.append(_audit)
    app.on_cleanup.append(_close_offload)
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
    if settings.ui:
        setup_playground(app)
    return app


def _policies(settings: Settings) -> PolicyStore:
    """The demo serves every bundled policy (``default`` first), so a new user can pick
    ``harm`` (classifier rules) with one header; otherwise exactly what was configured."""
    if settings.is_demo and settings.policy == DEFAULT_POLICY:
        return PolicyStore(BUNDLED_DIR, settings.default_policy or "default")
    return PolicyStore(settings.policy, settings.default_policy)


async def _upstream(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with contextlib.AsyncExitStack() as stack:
        base_url = settings.upstream_url
        if settings.is_demo:
            from gateway.demo.running import running_demo  # only demo mode pays for it

            base_url = await stack.enter_async_context(running_demo(settings.demo_pace))
        session = ClientSession(
            connector=TCPConnector(limit=settings.max_connections),
            timeout=ClientTimeout(
                total=None, connect=settings.connect_timeout, sock_read=settings.read_timeout
            ),
            trace_configs=[app[DRAIN].trace()],
        )
        await stack.enter_async_context(session)
        key = settings.upstream_api_key
        secret = key.get_secret_value() if key is not None else None
        app[UPSTREAM] = Upstream(session, base_url, secret)
        judges = app[JUDGES] = Judges(
            app[METRICS],
            settings.classifier_url or base_url,
            secret,
            concurrency=settings.classifier_concurrency,
            cache_size=settings.classifier_cache_size,
        )
        stack.push_async_callback(judges.close)
        for problem in judges.check(app[POLICIES].policies.values()):
            log.error("classifier cannot be built: %s", problem)
        yield


async def _policy_watcher(app: web.Application) -> AsyncIterator[None]:
    interval = app[SETTINGS].policy_reload_seconds
    task = asyncio.create_task(_watch(app, interval)) if interval > 0 else None
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _watch(app: web.Application, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        reload_now(app, only_if_changed=True)


def reload_now(app: web.Application, *, only_if_changed: bool = False) -> None:
    """The file watch asks when the files changed; SIGHUP asks at once, whatever they say."""
    store, metrics = app[POLICIES], app[METRICS]
    try:
        if not only_if_changed or store.changed():
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


async def _end_upstream_calls(app: web.Application) -> None:
    """``on_shutdown``, once the drain is over: the streams still running end with the
    error event their SDK raises (``Drain.end_upstream``) before aiohttp cancels what is
    left mid-write."""
    app[DRAIN].end_upstream()


async def _close_offload(app: web.Application) -> None:
    app[OFFLOAD].close()


async def _audit(app: web.Application) -> AsyncIterator[None]:
    yield
    app[AUDIT].close()
