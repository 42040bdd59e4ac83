"""What a caller observed while streaming, printed as JSON lines for tests/compat to judge.

Shared by the Python client scripts, which run in the clients' own virtualenvs: stdlib
only, so it imports under any of them. Usage of every script:
``python run_<client>.py BASE_URL SHAPE HEADERS_JSON [HEADERS_JSON ...]``, one run and one
printed line per headers object (the tests pick the policy and the demo's pace with them).
A script reports what its client hands the caller, never what the wire carried: that is
the point of the suite.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

MODEL = "demo-chat"
# No keyword of the demo's scripts: the default answer (the tour) with an e-mail address,
# an API key, a card number and, near its end, a confidential project name.
PROMPT = "Show me around, please."
API_KEY = "compat-test-key"


class Observation:
    """One streamed answer as the caller saw it: chunks with arrival times, how it ended."""

    def __init__(self, base_url: str, shape: str, headers: dict[str, str]) -> None:
        self.base_url = base_url
        self.shape = shape
        self.headers = headers
        self._start = time.monotonic()
        self.chunks: list[tuple[float, str]] = []
        self.final: str | None = None
        self.finish: str | None = None
        self.error: str | None = None

    def chunk(self, text: str | None) -> None:
        """Record a piece of text the moment the client handed it over."""
        if text:
            self.chunks.append((round(time.monotonic() - self._start, 4), text))

    def as_json(self) -> str:
        return json.dumps(
            {
                "chunks": self.chunks,
                "final": self.final,
                "finish": self.finish,
                "error": self.error,
            }
        )


def responses_finish(status: object, incomplete_details: object) -> str | None:
    """A Responses API ending as one word, with the reason when it is incomplete."""
    if status is None:
        return None
    reason = incomplete_details.get("reason") if isinstance(incomplete_details, dict) else None
    reason = reason or getattr(incomplete_details, "reason", None)
    return f"{status}: {reason}" if reason else str(status)


Observe = Callable[[Observation], Awaitable[None] | None]


def main(observe: Observe) -> None:
    """Run ``observe`` once per headers argument; an exception is an observation too."""
    base_url, shape, *headers = sys.argv[1:]
    for raw in headers:
        observation = Observation(base_url, shape, json.loads(raw))
        try:
            result: Any = observe(observation)
            if inspect.isawaitable(result):
                asyncio.run(_awaited(result))
        except Exception as exc:  # the caller's view of a failure is what we report
            observation.error = f"{type(exc).__name__}: {exc}"[:500]
        print(observation.as_json(), flush=True)


async def _awaited(result: Awaitable[None]) -> None:
    await result
