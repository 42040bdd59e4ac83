"""End-to-end fixtures: the real gateway and the real demo upstream over loopback.

Both run on their own event loop in a background thread, so tests can use the sync
and the async OpenAI SDK alike, exactly as an application would.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from aiohttp import web

from gateway.demo import DEMO_STATE, DemoState, create_demo_app
from gateway.metrics import Metrics
from gateway.proxy.app import create_app
from gateway.proxy.protocol import GatewayRunner
from gateway.settings import Settings

POLICIES = Path(__file__).parent / "policies"


@dataclass
class Stack:
    """A running demo upstream and a gateway in front of it."""

    demo_url: str
    gateway_url: str
    demo_state: DemoState
    loop: asyncio.AbstractEventLoop
    metrics: Metrics
    settings: Settings
    runners: list[web.AppRunner] = field(default_factory=list)

    def client(self, **kwargs: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.gateway_url, api_key="test-key", max_retries=0, **kwargs)

    def async_client(self, **kwargs: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=self.gateway_url, api_key="test-key", max_retries=0, **kwargs
        )

    def direct_client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.demo_url, api_key="test-key", max_retries=0)

    def metrics_text(self) -> str:
        return httpx.get(self.gateway_url.removesuffix("/v1") + "/metrics").text

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Poll a condition on state owned by the server thread (no fixed sleeps)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return predicate()


def reply(
    text: str | list[Any] | dict[str, Any], chunking: str = "word", wire: str = "event", **more: str
) -> dict[str, str]:
    """Headers that script the demo upstream's answer for one request."""
    headers = {
        "X-Demo-Reply": json.dumps(text),
        "X-Demo-Chunking": chunking,
        "X-Demo-Wire": wire,
    }
    headers.update({f"X-Demo-{k.replace('_', '-').title()}": v for k, v in more.items()})
    return headers


async def _start(
    settings_for: Callable[[str], Settings], metrics: Metrics
) -> tuple[list[web.AppRunner], str, str, DemoState, Settings]:
    demo_app = create_demo_app(pace=0.0)
    demo = web.AppRunner(demo_app, handler_cancellation=True)
    await demo.setup()
    await web.TCPSite(demo, "127.0.0.1", 0).start()
    demo_url = f"http://127.0.0.1:{demo.addresses[0][1]}/v1"
    settings = settings_for(demo_url)
    gateway = GatewayRunner(create_app(settings, metrics))  # as ``sluicegate serve`` runs it
    await gateway.setup()
    await web.TCPSite(gateway, "127.0.0.1", 0).start()
    gateway_url = f"http://127.0.0.1:{gateway.addresses[0][1]}/v1"
    return [gateway, demo], demo_url, gateway_url, demo_app[DEMO_STATE], settings


def run_stack(settings_for: Callable[[str], Settings]) -> Iterator[Stack]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    metrics = Metrics()
    started: Future[Any] = asyncio.run_coroutine_threadsafe(_start(settings_for, metrics), loop)
    runners, demo_url, gateway_url, state, settings = started.result(timeout=30)
    stack = Stack(demo_url, gateway_url, state, loop, metrics, settings, runners)
    try:
        yield stack
    finally:
        for runner in runners:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def e2e_settings(upstream: str, **more: Any) -> Settings:
    """The e2e policies in front of ``upstream``, nothing reloaded, no keep-alives."""
    defaults: dict[str, Any] = {
        "policy": POLICIES,
        "default_policy": "test",
        "policy_reload_seconds": 0,
        "keepalive_seconds": 0,
    }
    return Settings(_env_file=None, upstream_url=upstream, **(defaults | more))  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    yield from run_stack(e2e_settings)
