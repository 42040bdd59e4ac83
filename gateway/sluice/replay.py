"""A text moderated as a stream, event by event, with the reason every held character waits.

The playground (docs/playground.md) shows a policy author what the gateway would do to
a stream: what each event released, what it held and why. The answer must be the
gateway's own, so it comes from the real engine fed the same chunks: a ``Sluice`` for the
pattern rules and, for classifier rules, the shadow and gate pair the relay runs
(``adapters.classified``), here over one plain-text channel. What this module adds is
only the *why*: which rule's possible match begins where the hold begins (``holders``).

Pure like the rest of the sluice: the caller performs the verdict requests a frame asks
for and hands the verdicts back, whenever it likes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gateway.sluice.classify import Book, Need, Tap
from gateway.sluice.engine import CONTEXT_CHARS, Sluice, SluiceConfig
from gateway.sluice.matcher import Matcher, Pending, ScanTimeout
from gateway.sluice.types import Hit, Piece, Step
from gateway.sluice.verdicts import Verdict, VerdictRequest

_CHANNEL = "text"


@dataclass(frozen=True, slots=True)
class Holder:
    """A rule whose match may still be in progress from input offset ``start`` on."""

    rule_id: str
    start: int


@dataclass(frozen=True, slots=True)
class Frame:
    """One event of the replay; offsets count characters of the input text.

    ``input[released:waiting_from]`` never exists (released is the gate's end), so the
    text splits as: up to ``released`` sent, ``[released, held_from)`` passed the pattern
    rules and waits for classifier verdicts, ``[held_from, received)`` held by the
    pattern rules (``holders`` say which).
    """

    chunk: str
    received: int
    pieces: tuple[Piece, ...]
    hits: tuple[Hit, ...]
    released: int
    held_from: int
    holders: tuple[Holder, ...]
    asked: tuple[VerdictRequest, ...]
    waiting: tuple[str, ...]  # rule ids of the verdicts still outstanding
    cut: bool
    notice: str


def holders(matcher: Matcher, text: str, pos: int) -> tuple[Holder, ...]:
    """Each rule that could still match from ``pos`` on, with where its match begins.

    ``text`` is what the engine's buffer holds (with look-behind context before ``pos``);
    offsets are indexes into it. A rule whose scan times out is left out: the engine
    reports that failure itself, as a hit.
    """
    size = len(text)
    found = []
    for index, rule in enumerate(matcher.rules):
        try:
            hold, _, nxt = matcher.survey(text, pos, size, False, (index,))
        except ScanTimeout:
            continue
        if isinstance(nxt, Pending) or nxt is not None:
            hold = min(hold, nxt.start)
        if hold < size:
            found.append(Holder(rule.id, hold))
    return tuple(sorted(found, key=lambda h: (h.start, h.rule_id)))


@dataclass(frozen=True, slots=True)
class _Queued:
    chunk: str | None  # None: the end of the text
    needs: dict[tuple[str, int], Need]
    last: bool


class Replay:
    """Feeds a text chunk by chunk through the engine and reports each event as a ``Frame``."""

    def __init__(self, config: SluiceConfig) -> None:
        self._config = config
        self._text = ""
        self._shadow = config.open()
        self._released = 0
        self._done = False
        self._pieces: list[Piece] = []
        self._hits: list[Hit] = []
        self._cut = False
        self._notice = ""
        self._waiting: dict[int, str] = {}
        self._classified: _Classified | None = _Classified(config) if config.classifiers else None

    @property
    def done(self) -> bool:
        """Nothing more can change: the text ended (or was cut) and no verdict is due."""
        return self._done and not self._waiting

    def feed(self, chunk: str, verdicts: Iterable[tuple[int, Verdict]] = ()) -> Frame:
        """Deliver ``verdicts`` that have arrived, then the next ``chunk``."""
        self._give(verdicts)
        if not self._done:
            self._text += chunk
            self._pattern_step(self._shadow.feed(chunk), chunk)
        return self._frame(chunk)

    def finish(self, verdicts: Iterable[tuple[int, Verdict]] = ()) -> Frame:
        """The text is complete."""
        self._give(verdicts)
        if not self._done:
            self._pattern_step(self._shadow.finish(), None)
        return self._frame("")

    def settle(self, verdicts: Iterable[tuple[int, Verdict]]) -> Frame:
        """An event with no new text: verdicts arrived after the text ended."""
        self._give(verdicts)
        return self._frame("")

    # -- internals -------------------------------------------------------------------

    def _pattern_step(self, step: Step, chunk: str | None) -> None:
        classified = self._classified
        if classified is None:
            self._take(step)
            self._done = self._shadow.done
            return
        asked = classified.shadow(step, chunk, self._shadow.done)
        self._waiting.update((r.id, r.rule_id) for r in asked)
        self._drain()

    def _give(self, verdicts: Iterable[tuple[int, Verdict]]) -> None:
        classified = self._classified
        if classified is None:
            return
        for request_id, verdict in verdicts:
            self._waiting.pop(request_id, None)
            classified.book.verdict(request_id, verdict)
        self._drain()

    def _drain(self) -> None:
        classified = self._classified
        if classified is None:
            return
        for step in classified.drain():
            self._take(step)
        for request_id in classified.book.take_cancelled():
            self._waiting.pop(request_id, None)
        self._done = classified.finished

    def _take(self, step: Step) -> None:
        self._pieces.extend(step.pieces)
        self._hits.extend(step.hits)
        if step.pieces:
            self._released = max(self._released, step.pieces[-1].end)
        self._cut |= step.cut
        self._notice += step.notice

    def _frame(self, chunk: str) -> Frame:
        received = len(self._text)
        if self._cut:
            held_from = self._released
            found: tuple[Holder, ...] = ()
        else:
            held_from = received - self._shadow.held
            start = max(held_from - CONTEXT_CHARS, 0)
            view = self._text[start:]
            found = (
                tuple(
                    Holder(h.rule_id, h.start + start)
                    for h in holders(self._config.enforce, view, held_from - start)
                )
                if held_from < received
                else ()
            )
        asked = self._classified.take_asked() if self._classified else ()
        frame = Frame(
            chunk=chunk,
            received=received,
            pieces=tuple(self._pieces),
            hits=tuple(self._hits),
            released=self._released,
            held_from=max(held_from, self._released),
            holders=found,
            asked=asked,
            waiting=tuple(self._waiting.values()),
            cut=self._cut,
            notice=self._notice,
        )
        self._pieces.clear()
        self._hits.clear()
        self._notice = ""
        return frame


class _Classified:
    """The shadow runs ahead and asks for verdicts; the gate re-runs each chunk once
    every segment it touches is decided (as ``adapters.classified`` does per event)."""

    def __init__(self, config: SluiceConfig) -> None:
        self.book = Book(config.classifiers, config.fail_closed)
        self._shadow_tap: Tap = self.book.shadow().open(_CHANNEL)
        self._gate_tap: Tap = self.book.gate().open(_CHANNEL)
        self._gate: Sluice = config.open()
        self._queue: deque[_Queued] = deque()
        self._asked: list[VerdictRequest] = []
        self.finished = False

    def shadow(self, step: Step, chunk: str | None, last: bool) -> tuple[VerdictRequest, ...]:
        self._shadow_tap.step(step, final=chunk is None)
        asked = self.book.take_requests()
        self._asked.extend(asked)
        self._queue.append(_Queued(chunk, self.book.take_needs(), last))
        return asked

    def take_asked(self) -> tuple[VerdictRequest, ...]:
        asked, self._asked = tuple(self._asked), []
        return asked

    def drain(self) -> Sequence[Step]:
        steps: list[Step] = []
        queue, book = self._queue, self.book
        while queue and not self.finished:
            head = queue[0]
            if not book.settled(head.needs) or (head.last and book.pending):
                break
            queue.popleft()
            final = head.chunk is None
            step = self._gate.finish() if final else self._gate.feed(head.chunk or "")
            step = self._gate_tap.step(step, final=final)
            steps.append(step)
            self.finished = step.cut or final or self._gate.done
        if self.finished:
            queue.clear()
        return steps
