"""A stream moderated by classifier rules: a shadow runs ahead, the gate follows.

Verdicts arrive after the text they judge, but every adapter decides what to send while
it handles an upstream event. So each upstream event goes through the same adapter
twice (docs/classifiers.md, "How it runs"): at once through a *shadow* moderator, whose
output is thrown away but whose channels cut the text into segments and ask for their
verdicts; and later through the *gate* moderator, once every segment that event's text
touches is decided, where the verdicts cut, redact or record. Held text waits as
upstream events in a queue, never as half-built client events, so every way a stream
can end (cut choices, ``response.incomplete``, ``[DONE]``) comes from the adapter's own
code, unchanged.

Pure and synchronous like the adapters: the relay performs the requests and calls
``on_verdict``; property tests call it in any order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from gateway.adapters.base import ChannelHit, Moderated, OutEvent, StreamModerator
from gateway.sluice.classify import Book, ChannelKey, Need, Taps
from gateway.sluice.verdicts import Verdict


@dataclass(frozen=True, slots=True)
class _Queued:
    """An upstream event (``data`` None: the end of the body) and what it waits for."""

    data: str | None
    event: str | None
    needs: dict[ChannelKey, Need]
    last: bool  # the shadow finished on it: every verdict must be in first


class ClassifiedStream:
    """``StreamModerator`` for a policy with classifier rules; see the module docstring."""

    def __init__(self, open_stream: Callable[[Taps], StreamModerator], book: Book) -> None:
        self._book = book
        self._ahead = open_stream(book.shadow())
        self._gate = open_stream(book.gate())
        self._queue: deque[_Queued] = deque()
        self._backlog = 0
        self._fed = 0  # events that brought text to a channel the next event waits on

    # -- StreamModerator ---------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self._gate.finished

    @property
    def held(self) -> int:
        return self._gate.held + self._backlog

    @property
    def upstream_done(self) -> bool:
        """Nothing more is needed from upstream, though verdicts may still be due."""
        return self._ahead.finished or self._gate.finished

    @property
    def backlog(self) -> int:
        """Characters of upstream events waiting for verdicts (bounded by the relay)."""
        return self._backlog

    def on_event(self, data: str, event: str | None) -> Moderated:
        if self._gate.finished:
            return Moderated([])
        self._ahead.on_event(data, event)
        self._enqueue(data, event)
        return self._drain()

    def on_eof(self) -> Moderated:
        if self._gate.finished:
            return Moderated([])
        self._ahead.on_eof()
        self._enqueue(None, None)
        return self._drain()

    def on_upstream_error(self, message: str) -> Moderated:
        """What waits was never judged whole: it is dropped, and the stream fails."""
        self._queue.clear()
        self._backlog = 0
        self._ahead.on_upstream_error(message)
        return self._collect(self._gate.on_upstream_error(message))

    def on_verdict(self, request_id: int, verdict: Verdict) -> Moderated:
        self._book.verdict(request_id, verdict)
        return self._drain()

    @property
    def fed(self) -> int:
        """Grows while the text the next event waits on is still arriving."""
        return self._fed

    @property
    def stalled(self) -> bool:
        """The next event waits on text no verdict was asked for yet: a sentence left
        open in a channel that went quiet (reasoning before content, one of n choices, an
        upstream that ended or broke). The relay gives it a moment, then ``unstall``s."""
        return bool(self._queue) and self._book.stalled(self._queue[0].needs)

    def unstall(self) -> Moderated:
        """Judge the open segments the next event waits on as they stand."""
        if self._queue:
            self._book.flush(self._queue[0].needs)
        return self._drain()

    # -- internals -------------------------------------------------------------------

    def _enqueue(self, data: str | None, event: str | None) -> None:
        last = self._ahead.finished
        needs = self._book.take_needs()
        if self._queue and needs.keys() & self._queue[0].needs.keys():
            self._fed += 1
        self._queue.append(_Queued(data, event, needs, last))
        self._backlog += len(data) if data else 0

    def _drain(self) -> Moderated:
        """Send every queued event whose text is decided, in upstream's order."""
        book, gate, queue = self._book, self._gate, self._queue
        events: list[OutEvent] = []
        hits: list[ChannelHit] = []
        while queue and not gate.finished:
            head = queue[0]
            if not book.settled(head.needs) or (head.last and book.pending):
                break
            queue.popleft()
            self._backlog -= len(head.data) if head.data else 0
            moderated = gate.on_eof() if head.data is None else gate.on_event(head.data, head.event)
            events.extend(moderated.events)
            hits.extend(moderated.hits)
        if gate.finished:
            queue.clear()
            self._backlog = 0
        return self._collect(Moderated(events, tuple(hits)))

    def _collect(self, moderated: Moderated) -> Moderated:
        book = self._book
        return Moderated(
            moderated.events,
            moderated.hits,
            requests=book.take_requests(),
            cancelled=book.take_cancelled(),
            leaked=tuple(book.take_leaks()),
        )
