"""One log line per request: what an operator needs to find and judge it, never what was said.

The middleware opens a ``RequestFacts`` for every request; the layers below it fill in
what only they learn (the policy, upstream timings, hits, how the exchange ended) and the
middleware writes the line once the handler is done, so a stream is logged when it ends.

The line carries ids, labels, counts and durations only. There is deliberately no
setting that adds prompt or completion text here: these lines go to the process's log
stream, shared with every other line and often shipped far; the text an operator may
need (what a rule matched) is the audit log's opt-in, in a file of its own.

Probe and scrape requests (``/healthz``, ``/readyz``, ``/metrics``) are logged at DEBUG:
at INFO they would drown the traffic.
"""

from __future__ import annotations

import enum
import logging
import time
from collections import Counter
from dataclasses import dataclass, field

from gateway.logs import FIELDS
from gateway.policy.model import Direction
from gateway.sluice import Action

log = logging.getLogger("sluicegate.request")
_QUIET_ROUTES = frozenset({"healthz", "readyz", "metrics"})


class Outcome(enum.StrEnum):
    """How a request ended, from the gateway's side."""

    COMPLETED = "completed"
    CUT_OFF = "cut_off"  # an output rule (or a fail-closed check) ended the answer
    BLOCKED = "blocked"  # an input rule refused the request
    REJECTED = "rejected"  # the gateway refused it before upstream (auth, route, limits)
    UPSTREAM_ERROR = "upstream_error"  # unreachable, an error status, or broke mid-stream
    CLIENT_DISCONNECT = "client_disconnect"
    ERROR = "error"  # the gateway itself failed


@dataclass(slots=True)
class RequestFacts:
    """What is learnt about one request while it is served, for its log line."""

    started: float = field(default_factory=time.monotonic)
    policy: str | None = None
    upstream_ttfb: float | None = None
    ttft: float | None = None
    outcome: Outcome | None = None
    #: Body bytes a moderated stream wrote (a whole body's length is read at the end).
    streamed_bytes: int | None = None
    hits: Counter[str] = field(default_factory=Counter)

    def hit(self, rule_id: str, action: Action, direction: Direction) -> None:
        self.hits[rule_id] += 1
        if action is Action.BLOCK:
            self.ended(Outcome.CUT_OFF if direction is Direction.OUTPUT else Outcome.BLOCKED)

    def ended(self, outcome: Outcome) -> None:
        """The first reason wins: a stream cut off whose client then leaves was cut off."""
        if self.outcome is None:
            self.outcome = outcome

    def upstream_answered(self, sent: float) -> None:
        """Upstream's first bytes arrived for a request sent at ``sent`` (monotonic)."""
        if self.upstream_ttfb is None:
            self.upstream_ttfb = time.monotonic() - sent

    def first_token(self) -> None:
        """The first moderated text went to the client (keep-alive comments are not text)."""
        if self.ttft is None:
            self.ttft = time.monotonic() - self.started

    def wrote(self, size: int) -> None:
        self.streamed_bytes = (self.streamed_bytes or 0) + size


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def log_request(
    facts: RequestFacts,
    *,
    request_id: str,
    method: str,
    route: str,
    status: int,
    bytes_out: int | None,
) -> None:
    """Write the request's line; ``status`` 499 means the client went away."""
    if status == 499:
        facts.ended(Outcome.CLIENT_DISCONNECT)
    elif status >= 500:
        facts.ended(Outcome.ERROR)
    elif status >= 400:
        facts.ended(Outcome.REJECTED)
    facts.ended(Outcome.COMPLETED)
    level = logging.DEBUG if route in _QUIET_ROUTES else logging.INFO
    if not log.isEnabledFor(level):
        return
    fields = {
        "request_id": request_id,
        "method": method,
        "route": route,
        "status": status,
        "policy": facts.policy,
        "outcome": str(facts.outcome),
        "duration_ms": _ms(time.monotonic() - facts.started),
        "upstream_ttfb_ms": _ms(facts.upstream_ttfb),
        "ttft_ms": _ms(facts.ttft),
        "bytes_out": facts.streamed_bytes if facts.streamed_bytes is not None else bytes_out,
        "hits": dict(facts.hits),
    }
    log.log(level, "%s %s %d %s", method, route, status, facts.outcome, extra={FIELDS: fields})
