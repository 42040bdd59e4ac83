"""Typed keys for what the app, its middleware and its handlers share.

Typed ``AppKey``/``RequestKey`` instead of strings, so mypy checks every lookup and there
is no module-level mutable state.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from gateway.demo.classifier_controls import ClassifierBench
from gateway.demo.controls import Controls
from gateway.demo.state import DemoState, RecordedRequest

DEMO_STATE = web.AppKey("demo_state", DemoState)
"""What the app has seen; tests read ``app[DEMO_STATE]``."""

DEFAULT_PACE = web.AppKey("demo_default_pace", float)
"""Seconds between events when a request sets no ``X-Demo-Pace-Ms``."""

CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("demo_clock")
"""Wall clock for ``created`` timestamps; tests pin it to compare whole payloads."""

CLASSIFIER_BENCH = web.AppKey("demo_classifier_bench", ClassifierBench)
"""Latency, faults and call counts of the classifier endpoints (``/demo/classifiers``)."""

CONTROLS = web.RequestKey("demo_controls", Controls)
"""The request's parsed ``X-Demo-*`` headers."""

RECORD = web.RequestKey("demo_record", RecordedRequest)
"""The request as recorded, its body parsed once."""

SEQUENCE = web.RequestKey("demo_sequence", int)
"""The request's position in ``DemoState.requests``; ids and ``x-request-id`` derive from it."""

STARTED = web.RequestKey("demo_started", float)
"""Loop time at arrival, for ``openai-processing-ms``."""
