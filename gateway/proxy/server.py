"""``sluicegate serve``: logging, the event loop, and the listening socket."""

from __future__ import annotations

import asyncio
import logging
import sys

from aiohttp import web

from gateway.policy import PolicyError
from gateway.proxy.app import create_app
from gateway.settings import Settings


def serve(settings: Settings) -> int:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        app = create_app(settings)
    except PolicyError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    try:
        import uvloop  # optional: the [fast] extra

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    upstream = "the built-in demo upstream" if settings.is_demo else settings.upstream_url
    print(
        f"Sluicegate on http://{settings.host}:{settings.port}/v1 -> {upstream}\n"
        f"Point the OpenAI SDK at base_url='http://{settings.host}:{settings.port}/v1'",
        flush=True,
    )
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        handler_cancellation=True,
        access_log=None,
        print=None,
    )
    return 0
