"""What the demo upstream saw and how each of its streams ended, for tests to inspect.

Tests of a proxy need to know what reached the upstream (did the gateway forward the header,
rewrite the body, block the request?) and what happened to a stream on the far side of the
proxy (did the gateway hang up when its client did?). Both are recorded here, and tests can
await a stream's end instead of sleeping and hoping.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDictProxy


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the demo received it, before any validation.

    ``body`` is the parsed JSON, or ``None`` when the body was empty or not JSON; ``raw_body``
    keeps the exact bytes so forwarding tests can compare them.
    """

    method: str
    path: str
    query_string: str
    headers: CIMultiDictProxy[str]
    raw_body: bytes
    body: Any


class StreamOutcome(enum.Enum):
    """How a stream ended, seen from the upstream."""

    COMPLETED = "completed"
    """Every planned event was handed to the socket (a fault may have planned fewer)."""
    CLIENT_GONE = "client_gone"
    """A write failed or the handler was cancelled: the peer hung up first."""
    ABORTED = "aborted"
    """The demo itself cut the connection (the ``reset`` fault, or a ``hang`` at shutdown)."""


@dataclass(slots=True)
class StreamRecord:
    """One SSE response; ``outcome`` stays ``None`` while it is still running."""

    path: str
    events_written: int = 0
    outcome: StreamOutcome | None = None

    @property
    def finished(self) -> bool:
        return self.outcome is StreamOutcome.COMPLETED

    @property
    def client_gone(self) -> bool:
        return self.outcome is StreamOutcome.CLIENT_GONE


@dataclass(slots=True)
class DemoState:
    """Everything the demo app has seen, in arrival order.

    ``closing`` is set when the app shuts down, so hanging or paced streams stop at once
    instead of holding the server's shutdown for its full timeout.
    """

    requests: list[RecordedRequest] = field(default_factory=list)
    streams: list[StreamRecord] = field(default_factory=list)
    closing: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    # Replaced on every change: waiters wake, re-check, and wait on the new one.
    _changed: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)

    def start_stream(self, path: str) -> StreamRecord:
        record = StreamRecord(path=path)
        self.streams.append(record)
        self._notify()
        return record

    def end_stream(self, record: StreamRecord, outcome: StreamOutcome) -> None:
        record.outcome = outcome
        self._notify()

    # The timeout is part of the agreed test API: a bound by default, so a broken test fails
    # instead of hanging the suite.
    async def wait_stream_end(self, timeout: float = 5.0, index: int = -1) -> StreamRecord:  # noqa: ASYNC109
        """Wait until stream ``index`` (by start order; -1 is the latest) has ended.

        A stream that has not started yet is waited for too, so a test may call this right
        after its client call returns or raises, without any sleep.
        """
        async with asyncio.timeout(timeout):
            while True:
                record = self._stream_at(index)
                if record is not None and record.outcome is not None:
                    return record
                await self._changed.wait()

    def _stream_at(self, index: int) -> StreamRecord | None:
        if -len(self.streams) <= index < len(self.streams):
            return self.streams[index]
        return None

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
