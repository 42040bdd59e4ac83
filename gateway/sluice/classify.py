"""The classifier lane: segments out as verdict requests, verdicts in, text gated by them.

Classifier rules judge meaning, which takes a model call, so the lane cannot decide as
text arrives the way the pattern lanes do. It works in two places over the same text
(docs/classifiers.md, "How it runs"):

* a **shadow** tap sees each channel's text as soon as the pattern lanes release it
  (redactions applied: a secret is never sent to a classifier), cuts it into segments
  and asks for a verdict on each, so segment k+1 is judged while k waits;
* a **gate** tap sees the same text later, once every segment it touches has its
  verdict (``Book.settled``), and applies them: a blocked segment cuts the channel at
  its start, a redacted one is replaced, a flagged one is recorded.

Both taps share one ``Book`` per stream, keyed by channel and occurrence, so the gate
finds the verdicts of exactly the text the shadow saw. Nothing here does I/O: the caller
performs the requests and calls ``Book.verdict``, in any order and at any time, which is
what lets property tests prove that a blocked segment never reaches the client.

Offsets here count characters of the pattern lanes' *output* (the text a client would see
without classifier rules); hits are mapped back to input offsets like every other hit.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from gateway.sluice.segments import Segment, Segmenter
from gateway.sluice.types import ERROR_RULE, Action, Hit, Piece, Reason, Step
from gateway.sluice.verdicts import ALLOW, ClassifierRule, Verdict, VerdictRequest

ChannelKey = tuple[str, int]  # (channel name, how many channels of that name came before)
Need = tuple[int, bool]  # (output offset the text reaches, whether the channel ends there)


class Tap(Protocol):
    """What a channel passes each step through before acting on it."""

    def step(self, step: Step, final: bool) -> Step: ...


class Taps(Protocol):
    """Per stream: a tap for each plain-text channel as it opens (``None``: no lane)."""

    def open(self, name: str) -> Tap | None: ...


@dataclass(slots=True)
class _Segment:
    start: int
    end: int
    verdict: Verdict | None = None


@dataclass(slots=True)
class _Lane:
    """One classifier rule over one channel."""

    rule: ClassifierRule
    segmenter: Segmenter
    segments: list[_Segment] = field(default_factory=list)
    decided: int = 0  # how many leading segments have a verdict
    blocked: bool = False  # one of those cuts the channel
    context: deque[str] = field(default_factory=deque)

    def decided_end(self) -> int:
        return self.segments[self.decided - 1].end if self.decided else 0


@dataclass(slots=True)
class _Channel:
    lanes: list[_Lane]
    stopped_at: int | None = None  # a block is decided here: later text is never released


class Book:
    """One stream's segments and verdicts, shared by its shadow and its gate."""

    def __init__(self, rules: tuple[ClassifierRule, ...], fail_closed: bool) -> None:
        self._rules = rules
        self._fail_closed = fail_closed
        self._channels: dict[ChannelKey, _Channel] = {}
        self._pending: dict[int, tuple[_Channel, _Lane, _Segment]] = {}
        self._requests: list[VerdictRequest] = []
        self._needs: dict[ChannelKey, Need] = {}
        self._leaks: list[tuple[str, int]] = []
        self._cancelled: list[int] = []
        self._next_id = 0

    # -- the caller's side -------------------------------------------------------------

    def shadow(self) -> _Taps:
        return _Taps(lambda key: _ShadowTap(self, key, self._channel(key)))

    def gate(self) -> _Taps:
        return _Taps(lambda key: _GateTap(self, self._channel(key)))

    def take_requests(self) -> tuple[VerdictRequest, ...]:
        requests = tuple(self._requests)
        self._requests.clear()
        return requests

    def take_needs(self) -> dict[ChannelKey, Need]:
        """How far into each channel the shadow released text since the last call, and
        whether the channel ended there."""
        needs, self._needs = self._needs, {}
        return needs

    def take_leaks(self) -> list[tuple[str, int]]:
        """(rule id, characters of a flagged segment the client had already received)."""
        leaks, self._leaks = self._leaks, []
        return leaks

    def verdict(self, request_id: int, verdict: Verdict) -> None:
        """A verdict arrived; unknown ids (a request of a channel already cut) are ignored."""
        found = self._pending.pop(request_id, None)
        if found is None:
            return
        channel, lane, segment = found
        segment.verdict = verdict
        self._advance(lane)
        if self.blocks(lane.rule, verdict):
            self._stop(channel, segment.start)

    def settled(self, needs: dict[ChannelKey, Need]) -> bool:
        """Whether text released up to ``needs`` may pass the gate: held lanes decided,
        and every lane where a channel ends (an async flag must cut before the end)."""
        for key, (end, final) in needs.items():
            channel = self._channels.get(key)
            if channel is not None and not self._covers(channel, end, final):
                return False
        return True

    def take_cancelled(self) -> tuple[int, ...]:
        """Requests no longer needed (their text follows a cut): the caller drops them."""
        cancelled = tuple(self._cancelled)
        self._cancelled.clear()
        return cancelled

    def stalled(self, needs: dict[ChannelKey, Need]) -> bool:
        """Whether ``needs`` waits only on open segments (no verdict asked for is due)."""
        for key, (end, final) in needs.items():
            channel = self._channels.get(key)
            if channel is None or self._covers(channel, end, final):
                continue
            for lane in channel.lanes:
                if lane.decided < len(lane.segments):
                    return False
        return True

    def flush(self, needs: dict[ChannelKey, Need]) -> None:
        """Cut the open segments ``needs`` waits on and ask for their verdicts (``stalled``)."""
        for key, (end, final) in needs.items():
            channel = self._channels.get(key)
            if channel is None or self._covers(channel, end, final):
                continue
            for lane in channel.lanes:
                for segment in lane.segmenter.flush():
                    self.ask(channel, lane, segment)

    @property
    def pending(self) -> int:
        """Verdicts asked for and not yet given."""
        return len(self._pending)

    @property
    def fail_closed(self) -> bool:
        return self._fail_closed

    # -- shared by the taps --------------------------------------------------------------

    def blocks(self, rule: ClassifierRule, verdict: Verdict) -> bool:
        return blocks(rule, verdict, self._fail_closed)

    def hit(self, rule: ClassifierRule, verdict: Verdict, start: int, end: int) -> Hit | None:
        return verdict_hit(rule, verdict, start, end, self._fail_closed)

    def leaked(self, rule_id: str, chars: int) -> None:
        self._leaks.append((rule_id, chars))

    def released(self, key: ChannelKey, end: int, final: bool) -> None:
        before = self._needs.get(key)
        self._needs[key] = (end, final or (before is not None and before[1]))

    def ask(self, channel: _Channel, lane: _Lane, segment: Segment) -> None:
        """Record a complete segment; ask for its verdict unless nothing needs one."""
        record = _Segment(segment.start, segment.end)
        lane.segments.append(record)
        context = "".join(lane.context)
        lane.context.append(segment.text)
        while len(lane.context) > lane.rule.segmenting.context:
            lane.context.popleft()
        after_cut = channel.stopped_at is not None and segment.start >= channel.stopped_at
        if after_cut or not segment.text.strip():
            record.verdict = ALLOW  # never released, or nothing to judge
            self._advance(lane)
            return
        request_id = self._next_id
        self._next_id += 1
        self._pending[request_id] = (channel, lane, record)
        self._requests.append(VerdictRequest(request_id, lane.rule.id, segment.text, context))

    # -- internals -------------------------------------------------------------------

    def _channel(self, key: ChannelKey) -> _Channel:
        found = self._channels.get(key)
        if found is None:
            lanes = [_Lane(rule, Segmenter(rule.segmenting)) for rule in self._rules]
            found = self._channels[key] = _Channel(lanes)
        return found

    def _advance(self, lane: _Lane) -> None:
        segments = lane.segments
        while lane.decided < len(segments):
            verdict = segments[lane.decided].verdict
            if verdict is None:
                return
            lane.blocked |= self.blocks(lane.rule, verdict)
            lane.decided += 1

    def _stop(self, channel: _Channel, at: int) -> None:
        """A block at ``at``: text after it is never released, so its verdicts are moot.

        Only segments from ``at`` on: another rule's segment that starts earlier is still
        judged, since its text may be released before the cut."""
        if channel.stopped_at is not None and channel.stopped_at <= at:
            return
        channel.stopped_at = at
        for request_id, (owner, lane, segment) in list(self._pending.items()):
            if owner is channel and segment.start >= at:
                del self._pending[request_id]
                segment.verdict = ALLOW
                self._cancelled.append(request_id)
                self._advance(lane)

    def _covers(self, channel: _Channel, end: int, final: bool) -> bool:
        return all(
            lane.blocked
            or (lane.decided_end() >= end and (not final or lane.decided == len(lane.segments)))
            or not (lane.rule.hold or final)
            for lane in channel.lanes
        )


def blocks(rule: ClassifierRule, verdict: Verdict, fail_closed: bool) -> bool:
    """Whether ``verdict`` cuts: a flag of a blocking rule, or a failure under ``block``."""
    if verdict.failed:
        return fail_closed and rule.action is not Action.FLAG
    return verdict.flagged and rule.action is Action.BLOCK


def verdict_hit(
    rule: ClassifierRule, verdict: Verdict, start: int, end: int, fail_closed: bool
) -> Hit | None:
    """The hit a decided verdict makes (``None``: the segment is allowed)."""
    if verdict.failed:
        cut = fail_closed and rule.action is not Action.FLAG
        intended = Action.BLOCK if fail_closed else None
        action = Action.BLOCK if cut else Action.FLAG
        return Hit(rule.id, action, start, end, Reason.ERROR, None if cut else intended)
    if not verdict.flagged:
        return None
    intended = rule.intended if rule.intended is not rule.action else None
    return Hit(rule.id, rule.action, start, end, intended=intended)


class _Taps:
    """Keys channels by name and occurrence, so the shadow's and the gate's agree."""

    def __init__(self, make: _TapFactory) -> None:
        self._make = make
        self._seen: dict[str, int] = {}

    def open(self, name: str) -> Tap:
        count = self._seen.get(name, 0)
        self._seen[name] = count + 1
        return self._make((name, count))


class _TapFactory(Protocol):
    def __call__(self, key: ChannelKey) -> Tap: ...


def _text(pieces: Iterable[Piece]) -> str:
    return "".join(piece.text for piece in pieces)


class _ShadowTap:
    """Segments what the pattern lanes release and asks for verdicts; changes nothing."""

    __slots__ = ("_book", "_channel", "_done", "_key", "_pos")

    def __init__(self, book: Book, key: ChannelKey, channel: _Channel) -> None:
        self._book = book
        self._key = key
        self._channel = channel
        self._pos = 0
        self._done = False

    def step(self, step: Step, final: bool) -> Step:
        if self._done:
            return step
        text = _text(step.pieces)
        book, channel = self._book, self._channel
        last = final or step.cut
        self._pos += len(text)
        if text or last:
            book.released(self._key, self._pos, last)
        for lane in channel.lanes:
            segments = lane.segmenter.feed(text)
            if last:
                segments += lane.segmenter.finish()
            for segment in segments:
                book.ask(channel, lane, segment)
        self._done = last
        return step


@dataclass(slots=True)
class _Redaction:
    start: int
    end: int
    replacement: str
    emitted: bool = False


class _GateTap:
    """Applies verdicts to text the shadow saw: cut, replace, record."""

    __slots__ = ("_applied", "_book", "_channel", "_done", "_map", "_pos", "_redactions")

    def __init__(self, book: Book, channel: _Channel) -> None:
        self._book = book
        self._channel = channel
        self._pos = 0  # output offset of the pattern lanes reached so far
        self._applied = [0] * len(channel.lanes)  # per lane: segments already applied
        self._redactions: list[_Redaction] = []
        # Pattern redactions seen, as (output end, input end, output start, input start),
        # to map output offsets back to input offsets for hits.
        self._map: list[tuple[int, int, int, int]] = []
        self._done = False

    def step(self, step: Step, final: bool) -> Step:
        if self._done:
            return step
        start = self._pos
        spans: list[tuple[int, Piece]] = []
        pos = start
        for piece in step.pieces:
            spans.append((pos, piece))
            if piece.redacted:
                self._map.append((pos + len(piece.text), piece.end, pos, piece.start))
            pos += len(piece.text)
        end = self._pos = pos
        cut, hits = self._decide(start, end, step, final)
        pieces = self._rebuild(spans, end if cut is None else cut)
        if cut is None:
            return Step(pieces, step.hits + hits, step.cut, step.notice, step.held)
        self._done = True
        limit = self._input(cut)
        kept = tuple(h for h in step.hits if h.start < limit)
        return Step(pieces, kept + hits, True, step.notice, step.held)

    # -- deciding --------------------------------------------------------------------

    def _decide(
        self, start: int, end: int, step: Step, final: bool
    ) -> tuple[int | None, tuple[Hit, ...]]:
        """Where verdicts cut this step's text (if they do), and the hits they make.

        A held lane cuts at a blocked segment's start; an async lane's text has already
        gone out, so it cuts where this step starts and counts what the client got.
        """
        book = self._book
        lanes = self._channel.lanes
        cut: int | None = None
        hits: list[Hit] = []
        for number, lane in enumerate(lanes):
            at, hit = self._cut_in(lane, self._applied[number], end, final or step.cut)
            if at is not None and not lane.rule.hold:
                at = max(at, start)
            if at is not None and (cut is None or at < cut):
                cut, hits = at, [hit] if hit is not None else []
        limit = end if cut is None else cut
        for number, lane in enumerate(lanes):
            index = self._applied[number]
            rule = lane.rule
            while index < len(lane.segments):
                segment = lane.segments[index]
                verdict = segment.verdict
                if verdict is None or segment.start > limit:
                    break
                blocks = book.blocks(rule, verdict)
                if segment.start == limit and not (blocks and cut is not None):
                    break
                hit = book.hit(rule, verdict, self._input(segment.start), self._input(segment.end))
                index += 1
                if hit is None:
                    continue
                if blocks:
                    at = segment.start if rule.hold else max(segment.start, start)
                    if at != cut:
                        continue  # a later block of this lane: its text is never sent
                    hit = Hit(hit.rule_id, hit.action, self._input(at), hit.end, hit.reason)
                    if at > segment.start:
                        book.leaked(rule.id, at - segment.start)
                elif hit.action is Action.REDACT:
                    self._redactions.append(
                        _Redaction(segment.start, segment.end, rule.replacement)
                    )
                hits.append(hit)
            self._applied[number] = index
        return cut, tuple(hits)

    def _cut_in(
        self, lane: _Lane, first: int, end: int, last: bool
    ) -> tuple[int | None, Hit | None]:
        """Where this lane cuts: at its first blocked segment, or where its verdicts run out.

        A held lane's text comes here only once it is decided (``Book.settled``); text
        it has no verdict for can only mean the shadow saw other text than the gate (a
        scan that timed out in one of them), which ``on_error`` decides like a failure.
        """
        book, rule = self._book, lane.rule
        for segment in lane.segments[first:]:
            if segment.start > end or (segment.start == end and not last):
                return None, None
            verdict = segment.verdict
            if verdict is None:
                return self._unchecked(segment.start, end) if rule.hold else (None, None)
            if book.blocks(rule, verdict):
                return segment.start, None
        covered = lane.segments[-1].end if lane.segments else 0
        if rule.hold and covered < end:
            return self._unchecked(covered, end)
        return None, None

    def _unchecked(self, at: int, end: int) -> tuple[int | None, Hit | None]:
        if not self._book.fail_closed:
            return None, None
        hit = Hit(ERROR_RULE, Action.BLOCK, self._input(at), self._input(end), Reason.ERROR)
        return at, hit

    # -- rebuilding --------------------------------------------------------------------

    def _rebuild(self, spans: list[tuple[int, Piece]], limit: int) -> tuple[Piece, ...]:
        """The step's pieces up to ``limit``, with classifier redactions applied."""
        out: list[Piece] = []
        redactions = self._redactions
        for pos, piece in spans:
            if pos >= limit:
                break
            size = len(piece.text)
            if piece.redacted:
                if pos + size > limit:
                    break  # a cut inside a replacement cuts before it
                covering = _overlapping(redactions, pos, pos + size)
                if covering is None:
                    out.append(piece)
                else:
                    out.append(Piece(piece.start, piece.end, _emit(covering), True))
                continue
            cursor = pos
            stop = min(pos + size, limit)
            while cursor < stop:
                red = _overlapping(redactions, cursor, stop)
                if red is None:
                    out.append(_slice(piece, pos, cursor, stop))
                    break
                if red.start > cursor:
                    out.append(_slice(piece, pos, cursor, red.start))
                    cursor = red.start
                upto = min(red.end, stop)
                a, b = piece.start + cursor - pos, piece.start + upto - pos
                out.append(Piece(a, b, _emit(red), True))
                cursor = upto
        self._redactions = [r for r in redactions if r.end > self._pos]
        return tuple(out)

    def _input(self, offset: int) -> int:
        """The input offset of a pattern-output offset (inside a replacement: its start)."""
        entries = self._map
        k = bisect.bisect_right(entries, offset, key=_out_end)
        if k < len(entries) and entries[k][2] < offset:
            return entries[k][3]  # inside that replacement
        if k == 0:
            return offset
        out_end, in_end, _, _ = entries[k - 1]
        return offset - out_end + in_end


def _out_end(entry: tuple[int, int, int, int]) -> int:
    return entry[0]


def _overlapping(redactions: list[_Redaction], start: int, end: int) -> _Redaction | None:
    """The first redaction reaching into ``[start, end)``."""
    best: _Redaction | None = None
    for red in redactions:
        if red.start < end and red.end > start and (best is None or red.start < best.start):
            best = red
    return best


def _emit(red: _Redaction) -> str:
    """The replacement goes out once, where the redacted segment starts."""
    if red.emitted:
        return ""
    red.emitted = True
    return red.replacement


def _slice(piece: Piece, pos: int, start: int, end: int) -> Piece:
    a, b = start - pos, end - pos
    return Piece(piece.start + a, piece.start + b, piece.text[a:b])
