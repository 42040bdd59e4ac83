"""Latency, faults and call counts of the demo's classifier endpoints, set per app.

Classifier calls come from the gateway, not from the test's client, so ``X-Demo-*``
headers cannot reach them: these settings live on the app instead, given to
``create_demo_app`` or changed at run time with ``POST /demo/classifiers``::

    {"latency_ms": 100, "fault": "http-500", "fault_count": 2, "retry_after_ms": 5}

Every field is optional; ``"reset": true`` zeroes the counters. ``GET`` returns the
settings and the counters: ``calls`` (classifier requests received, retries included),
``answered``, ``cancelled`` (the caller hung up first: a timeout, or a stream that went
away) and ``by_model``.

Faults: ``http-500`` and ``http-429`` answer that status (with ``retry-after-ms`` when
``retry_after_ms`` is set, so a test need not sit through the SDK's backoff; 429 says
``retry-after: 0`` otherwise); ``timeout`` never answers; ``garbage`` answers 200 with
text no parser accepts (a moderation body without ``results``). ``fault_count`` limits
the fault to that many calls ("fail twice, then answer"), ``null`` to all of them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class ClassifierFault(enum.StrEnum):
    HTTP_500 = "http-500"
    HTTP_429 = "http-429"
    TIMEOUT = "timeout"
    GARBAGE = "garbage"


_FIELDS = {"latency_ms", "fault", "fault_count", "retry_after_ms", "reset"}


@dataclass(slots=True)
class ClassifierBench:
    """The settings (``latency`` in seconds) and what the endpoints have seen."""

    latency: float = 0.0
    fault: ClassifierFault | None = None
    fault_count: int | None = None
    retry_after_ms: float | None = None
    calls: int = 0
    answered: int = 0
    cancelled: int = 0
    by_model: dict[str, int] = field(default_factory=dict)

    def arrive(self, model: str) -> ClassifierFault | None:
        """Count a call and decide its fault (using up one of ``fault_count``)."""
        self.calls += 1
        self.by_model[model] = self.by_model.get(model, 0) + 1
        fault = self.fault
        if fault is not None and self.fault_count is not None:
            self.fault_count -= 1
            if self.fault_count <= 0:
                self.fault, self.fault_count = None, None
        return fault

    def update(self, body: object) -> None:
        """Apply a ``POST /demo/classifiers`` body; ``ValueError`` names a bad field."""
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        unknown = set(body) - _FIELDS
        if unknown:
            raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
        if "latency_ms" in body:
            self.latency = _number(body["latency_ms"], "latency_ms") / 1000
        if "fault" in body:
            self.fault = parse_fault(body["fault"])
            self.fault_count = None
        if "fault_count" in body:
            count = body["fault_count"]
            if count is not None and (
                isinstance(count, bool) or not isinstance(count, int) or count < 1
            ):
                raise ValueError("fault_count must be null or a positive integer")
            self.fault_count = count
        if "retry_after_ms" in body:
            raw = body["retry_after_ms"]
            self.retry_after_ms = None if raw is None else _number(raw, "retry_after_ms")
        if body.get("reset") is True:
            self.calls = self.answered = self.cancelled = 0
            self.by_model = {}

    def snapshot(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency * 1000,
            "fault": None if self.fault is None else self.fault.value,
            "fault_count": self.fault_count,
            "retry_after_ms": self.retry_after_ms,
            "calls": self.calls,
            "answered": self.answered,
            "cancelled": self.cancelled,
            "by_model": dict(self.by_model),
        }


def parse_fault(raw: object) -> ClassifierFault | None:
    """A fault name (or ``None``); ``ValueError`` listing the faults otherwise."""
    if raw is None:
        return None
    known = {f.value: f for f in ClassifierFault}
    if isinstance(raw, str) and raw in known:
        return known[raw]
    raise ValueError(f"fault must be null or one of {', '.join(known)}")


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e9:
        raise ValueError(f"{name} must be a non-negative number")
    return float(value)
