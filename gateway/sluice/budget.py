"""What one request may cost: scan time shared by all its channels, and state per stream.

A per-search timeout (``scan_timeout_ms``) stops one catastrophic regex call, but not a
request that makes many of them: ``n=40`` choices, or ``on_error: allow`` releasing and
scanning again event after event, each spending the whole timeout. So a request gets
ONE allowance of scan time (``RequestBudget``), spent by every regex search it causes:
its input moderation, every channel of every choice, every value moderated whole. Each
search may run for the smaller of the scan timeout and what is left, and what it took
is subtracted. The allowance is a base plus a rate per byte of text the request brings
(its body, and what upstream answers): a long benign answer costs scan time in
proportion to its length, so a fixed allowance would refuse it, while a crafted one
earns no more time per byte than a benign one.

Memory is bounded per stream moderator (``Tally``): how many channels and other
per-stream records (choices, output items, parts, tool calls) it opens, and how many
entries (logprobs, annotations) wait for text not released yet. Upstream chooses those
counts, so without a cap one answer could grow a process by gigabytes.

Past any budget a ``BudgetExceeded`` ends the work; the adapters turn it into an error
the SDKs raise (never a normal end, and never releasing held text), the proxy into an
error answer and a metric. The request's budget travels in a context variable: aiohttp
runs each request in its own task (its own context), and the regex calls it must
reach sit below dozens of call sites that have no reason to know about it. Without one
(unit tests, the CLI) nothing is limited but each search's own timeout.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


class Budget(enum.StrEnum):
    """Which budget was crossed: the metric's label values (bounded) and the setting."""

    STREAM_CHANNELS = "stream_channels"
    PENDING_ENTRIES = "pending_entries"
    SCAN_TIME = "scan_time"

    @property
    def setting(self) -> str:
        return f"SLUICEGATE_{_SETTINGS[self]}"


_SETTINGS = {
    Budget.STREAM_CHANNELS: "MAX_STREAM_CHANNELS",
    Budget.PENDING_ENTRIES: "MAX_PENDING_ENTRIES",
    Budget.SCAN_TIME: "SCAN_BUDGET_MS",
}
_WHAT = {
    Budget.STREAM_CHANNELS: "the answer opened more channels (choices, output items, parts, "
    "tool calls, fields) than one stream may",
    Budget.PENDING_ENTRIES: "more logprob or annotation entries waited for unreleased text "
    "than one stream may hold",
    Budget.SCAN_TIME: "checking the text took longer than one request may spend on it",
}


class BudgetExceeded(Exception):
    """A request crossed one of its budgets; the message names it and its setting."""

    code = "budget_exceeded"  # ``error.code`` of the error answer or event

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        super().__init__(
            f"The gateway stopped this request: {_WHAT[budget]} "
            f"(budget {budget.value}, setting {budget.setting})."
        )


@dataclass(slots=True)
class RequestBudget:
    """The limits of one request, and the scan time it has left. ``None``: no limit."""

    max_channels: int | None = None
    max_pending: int | None = None
    scan_seconds: float | None = None
    per_byte: float = 0.0  # seconds of scan time each byte of text brought earns
    spent: float = 0.0  # seconds of regex searching so far
    #: The budget that stopped the request, if one did (for the proxy's metric).
    exceeded: Budget | None = None

    def exceed(self, budget: Budget) -> BudgetExceeded:
        if self.exceeded is None:
            self.exceeded = budget
        return BudgetExceeded(budget)

    def search_timeout(self, timeout: float) -> float:
        """How long the next search may run: its own timeout, or what is left."""
        if self.scan_seconds is None:
            return timeout
        left = self.scan_seconds - self.spent
        if left <= 0:
            raise self.exceed(Budget.SCAN_TIME)
        return min(timeout, left)

    def charge(self, seconds: float) -> None:
        self.spent += seconds

    def earn(self, size: int) -> None:
        """``size`` more bytes of text arrived to be checked: more scan time for them."""
        if self.scan_seconds is not None:
            self.scan_seconds += size * self.per_byte


_CURRENT: ContextVar[RequestBudget | None] = ContextVar("sluicegate_request_budget", default=None)


def current() -> RequestBudget | None:
    """The budget of the request being served here, if any."""
    return _CURRENT.get()


def begin(budget: RequestBudget) -> None:
    """Make ``budget`` the current request's, for the rest of the task that serves it."""
    _CURRENT.set(budget)


@contextmanager
def scope(budget: RequestBudget) -> Iterator[RequestBudget]:
    """``budget`` for the code inside the block only (tests, and work done in threads)."""
    token = _CURRENT.set(budget)
    try:
        yield budget
    finally:
        _CURRENT.reset(token)


class Tally:
    """What one stream moderator holds, counted against its request's limits.

    Counted per moderator, not per request: a classifier policy runs two moderators over
    the same events (``adapters.classified``), and both must stop at the same event.
    """

    __slots__ = ("_budget", "channels", "pending")

    def __init__(self, budget: RequestBudget | None = None) -> None:
        self._budget = budget if budget is not None else current()
        self.channels = 0
        self.pending = 0

    def open(self) -> None:
        """One more channel or per-stream record."""
        self.channels += 1
        budget = self._budget
        if (
            budget is not None
            and budget.max_channels is not None
            and (self.channels > budget.max_channels)
        ):
            raise budget.exceed(Budget.STREAM_CHANNELS)

    def hold(self, change: int) -> None:
        """Entries waiting for text grew (or shrank) by ``change``."""
        self.pending += change
        budget = self._budget
        if (
            change > 0
            and budget is not None
            and budget.max_pending is not None
            and (self.pending > budget.max_pending)
        ):
            raise budget.exceed(Budget.PENDING_ENTRIES)
