"""``sluicegate serve``: logging, the event loop, the listening socket and the signals.

One process serves the port by itself; with ``--workers`` above 1 the supervisor
(``gateway.proxy.supervisor``) runs that many of these, each listening on its own socket
bound with ``SO_REUSEPORT``, so the kernel spreads new connections over them.

Signals, the same for one process and for each worker:

- SIGTERM or SIGINT drains: ``/readyz`` turns 503 and the listening socket closes at once,
  requests in flight get ``drain_seconds`` to finish, and whatever still runs then is cut
  at the upstream side so its stream ends with an error event rather than mid-write.
- SIGHUP reloads the policies at once (the last good set stays if the new one is broken),
  besides the file watch.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from aiohttp import web

from gateway.logs import FIELDS, configure_logging
from gateway.policy import PolicyError
from gateway.proxy.app import create_app, reload_now
from gateway.proxy.protocol import GatewayRunner
from gateway.proxy.state import DRAIN
from gateway.settings import Settings

log = logging.getLogger("sluicegate")

EXIT_OK, EXIT_USAGE = 0, 2
END_GRACE_SECONDS = 2.0
"""After the drain, how long a cut stream may take to write its error event before
aiohttp cancels it (aiohttp may wait this twice: for the handler, then for its cancel)."""


def serve(settings: Settings) -> int:
    """One process serving the port (``--workers 1``)."""
    configure_process(settings)
    try:
        app = create_app(settings)
    except PolicyError as exc:
        log_problems(exc)
        return EXIT_USAGE
    announce(settings, workers=1)
    try:
        asyncio.run(run_server(app, settings, reuse_port=False))
    except OSError as exc:  # the port is taken or the address is not ours
        cannot_listen(settings, exc)
        return EXIT_USAGE
    return EXIT_OK


def configure_process(settings: Settings) -> None:
    """Logging and the event loop policy, once per process (workers are fresh processes)."""
    # Until the loop's own SIGHUP handler is in place, a reload request must not kill
    # the process (SIGHUP's default action); a process still starting loads the files anyway.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    configure_logging(settings.log_level, settings.log_format)
    # The classifier clients' HTTP library logs every call (with its URL) at INFO: one line
    # per sentence of every stream. Their failures reach the gateway's metrics instead.
    for noisy in ("httpx", "httpx2", "openai"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.root.level))
    try:
        import uvloop  # a dependency on Linux; elsewhere the [fast] extra

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass


def log_problems(exc: PolicyError) -> None:
    for problem in exc.problems:
        log.error("%s", problem)


def cannot_listen(settings: Settings, exc: OSError) -> None:
    log.error("cannot listen on %s:%d: %s", settings.host, settings.port, exc)


def announce(settings: Settings, workers: int) -> None:
    """The startup line, through the log formatter like every other line (a container's
    output stays pure JSON), its address also as fields."""
    upstream = "the built-in demo upstream" if settings.is_demo else settings.upstream_url
    processes = f" ({workers} workers)" if workers > 1 else ""
    base_url = f"http://{settings.host}:{settings.port}/v1"
    log.info(
        "Sluicegate on %s -> %s%s; point the OpenAI SDK at base_url='%s'",
        base_url,
        upstream,
        processes,
        base_url,
        extra={FIELDS: {"base_url": base_url, "workers": workers}},
    )


async def run_server(
    app: web.Application,
    settings: Settings,
    *,
    reuse_port: bool,
    listening: Callable[[], None] | None = None,
    parent_sentinel: int | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT (or, for a worker, its supervisor's death), then drain.

    ``listening`` is called once the socket accepts connections; a worker reports it to
    the supervisor. ``parent_sentinel`` becomes readable when the supervisor is gone, so
    a worker left behind drains and exits instead of holding the port forever.
    """
    drain = app[DRAIN]
    # Malformed HTTP answered in the OpenAI error format, logged without its bytes.
    runner = GatewayRunner(app, shutdown_timeout=END_GRACE_SECONDS)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port, reuse_port=reuse_port)
        await site.start()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGHUP, reload_now, app)
        if parent_sentinel is not None:
            sentinel = parent_sentinel

            def orphaned() -> None:
                loop.remove_reader(sentinel)  # it stays readable: watch it only once
                log.warning("the supervisor is gone; draining")
                stop.set()

            loop.add_reader(sentinel, orphaned)
        if listening is not None:
            listening()
        await stop.wait()
        drain.begin()
        await site.stop()
        log.info("draining: %d requests in flight", drain.in_flight)
        try:
            async with asyncio.timeout(settings.drain_seconds):
                await drain.idle()
        except TimeoutError:
            log.warning(
                "drain timeout (%gs): ending %d requests", settings.drain_seconds, drain.in_flight
            )
    finally:
        await runner.cleanup()
