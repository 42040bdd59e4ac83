"""The demo upstream served from inside another program (``serve --upstream demo``, the CLI)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from gateway.demo.app import create_demo_app


@contextlib.asynccontextmanager
async def running_demo(pace: float) -> AsyncIterator[str]:
    """The demo upstream on a free loopback port of this process; yields its ``/v1`` URL."""
    runner = web.AppRunner(create_demo_app(pace=pace), handler_cancellation=True)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()
