"""The streaming validator: text deltas in, released text and hits out.

A ``Sluice`` moderates one text channel (one choice's content, one tool call's
arguments, ...). It holds back only the shortest suffix of the text that some
continuation could still turn into a match (see ``matcher``), releases everything
before it in the same ``feed``, and never holds more than ``max_hold`` characters.

Rules run in two lanes over the same text. The *enforcing* lane (redact, block) decides
what is released. The *observing* lane (flag rules, and every rule of a shadow policy)
only records hits, so it never delays text; it may decide only what the enforcing lane
has released, so it reports hits on text the client actually saw.

Chunking invariance is by construction: a decision is taken only once no continuation
can change it, and the hold limit is evaluated at the exact text length where it is
first exceeded (``feed`` slices a long delta at those lengths), so feeding the text in
any pieces gives the same result as feeding it whole.

Every regex search is charged to the scan time of the request being served
(``budget``); when that runs out, ``BudgetExceeded`` leaves ``feed`` and the channel is
not used again: the caller ends its stream with an error, releasing nothing held.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.sluice import budget
from gateway.sluice.matcher import Found, Matcher, Pending, ScanTimeout
from gateway.sluice.types import (
    ERROR_RULE,
    HOLD_LIMIT_RULE,
    Action,
    Hit,
    Piece,
    Reason,
    Step,
)
from gateway.sluice.verdicts import ClassifierRule

#: Characters of already-scanned text kept for look-behinds and ``\b``; patterns whose
#: look-behind reaches further back see less at a chunk boundary than in whole text.
CONTEXT_CHARS = 256


@dataclass(frozen=True, slots=True, eq=False)
class SluiceConfig:
    """Everything a channel needs, compiled once per policy and direction.

    Compared and hashed by identity (``eq=False``): a config is built once per policy, and
    the per-process caches keyed by it (clean tokens, member names) hash it on every
    event, where hashing five fields each time showed in profiles.
    """

    enforce: Matcher
    observe: Matcher
    max_hold: int  # no default of its own: the policy's ``max_hold_chars`` decides
    fail_closed: bool = True
    cutoff_notice: str = ""
    #: Read by the adapters, not the sluice: tool calls leave only whole (see docs/wire.md).
    whole_tool_calls: bool = True
    #: Read by the adapters: text in fields none of them knows goes out empty.
    drop_unknown: bool = False
    #: Read by the relay: rules whose verdicts come from a model (``sluice.classify``).
    classifiers: tuple[ClassifierRule, ...] = ()

    def open(self) -> Sluice:
        return Sluice(self)


@dataclass(slots=True)
class _Scan:
    """One lane's verdicts over the buffer: decided hits, where it now holds, what broke."""

    found: list[Found] = field(default_factory=list)
    hold: int = 0
    block: Found | None = None
    timed_out: bool = False


class _Lane:
    """A lane's place in the text: its cursor, and which rules may have a match going."""

    __slots__ = ("active", "budget", "cursor", "matcher", "seen")

    def __init__(self, matcher: Matcher, spend: budget.RequestBudget | None) -> None:
        self.matcher = matcher
        self.budget = spend  # the request's scan time, shared with its other channels
        self.cursor = 0  # absolute: nothing before it can still be part of a match
        self.seen = 0  # absolute end of the text at the last scan
        self.active: frozenset[int] = frozenset()

    def scan(self, text: str, base: int, limit: int, final: bool) -> _Scan:
        """Decide every hit no continuation can change, left to right, up to ``limit``."""
        pos = self.cursor - base
        fresh = text[max(self.seen - base, 0) :]
        rules = self.matcher.candidates(fresh, self.active, text)
        self.seen = base + len(text)
        result = _Scan(hold=pos)
        if not rules:
            result.hold = limit
            self.active = frozenset()
            return result
        try:
            self._decide(text, pos, limit, final, rules, result)
        except ScanTimeout:
            result.timed_out = True
        return result

    def _decide(
        self, text: str, pos: int, limit: int, final: bool, rules: frozenset[int], result: _Scan
    ) -> None:
        while True:
            hold, active, nxt = self.matcher.survey(text, pos, limit, final, rules, self.budget)
            if isinstance(nxt, Pending):
                result.hold, self.active = nxt.start, active | nxt.rules
                return
            if nxt is not None and nxt.end > limit:
                result.hold, self.active = nxt.start, active | {nxt.index}
                return
            if nxt is None:
                result.hold, self.active = hold, active
                return
            if nxt.rule.action is Action.BLOCK:
                result.block, result.hold = nxt, nxt.start
                return
            result.found.append(nxt)
            pos = result.hold = nxt.end


def _differing(intended: Action) -> Action | None:
    """``Hit.intended`` is set only where it differs from the flag that was recorded."""
    return None if intended is Action.FLAG else intended


class Sluice:
    """Moderates one text channel. Pure and synchronous; not thread-safe."""

    __slots__ = (
        "_base",
        "_cfg",
        "_cut_now",
        "_done",
        "_enforce",
        "_hits",
        "_observe",
        "_pieces",
        "_text",
    )

    def __init__(self, config: SluiceConfig) -> None:
        self._cfg = config
        self._text = ""  # input text from absolute offset _base on
        self._base = 0
        # Opened while serving a request: its scan time is spent here too (``budget``).
        spend = budget.current()
        self._enforce = _Lane(config.enforce, spend)  # its cursor is how far text is released
        self._observe = _Lane(config.observe, spend)
        self._done = False
        self._cut_now = False
        self._pieces: list[Piece] = []
        self._hits: list[Hit] = []

    @property
    def held(self) -> int:
        """Characters received but not yet released."""
        return 0 if self._done else self._base + len(self._text) - self._enforce.cursor

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, delta: str) -> Step:
        """Take the next piece of text; return what may be shown now."""
        max_hold = self._cfg.max_hold
        while delta and not self._done:
            end = self._base + len(self._text)
            room = self._enforce.cursor + max_hold + 1 - end
            if room >= len(delta):
                self._text += delta
                delta = ""
            else:
                self._text += delta[:room]
                delta = delta[room:]
            self._evaluate(final=False)
        return self._step()

    def finish(self) -> Step:
        """The text is complete: decide everything still held and release it."""
        if not self._done:
            self._evaluate(final=True)
            self._done = True
        return self._step()

    # -- internals -------------------------------------------------------------------

    def _step(self) -> Step:
        cut, self._cut_now = self._cut_now, False
        step = Step(
            pieces=tuple(self._pieces),
            hits=tuple(self._hits),
            cut=cut,
            notice=self._cfg.cutoff_notice if cut else "",
            held=self.held,
        )
        self._pieces.clear()
        self._hits.clear()
        return step

    def _evaluate(self, *, final: bool) -> None:
        text, base = self._text, self._base
        size = len(text)
        while True:
            scan = self._enforce.scan(text, base, size, final)
            for found in scan.found:
                self._release_to(found.start)
                self._redact(found)
            if scan.block is not None:
                self._cut(scan.block.start, self._hit(scan.block, Action.BLOCK))
            elif scan.timed_out:
                self._fail(scan.hold, size, Reason.ERROR)
            elif not final and size - scan.hold > self._cfg.max_hold:
                if self._fail(scan.hold, size, Reason.HOLD_LIMIT):
                    continue  # scan what follows the given-up start again, every rule
            else:
                self._release_to(scan.hold)
            break
        if not self._done:
            self._observe_released(final)
        self._trim()

    def _release_to(self, index: int) -> None:
        lane = self._enforce
        absolute = self._base + index
        if absolute > lane.cursor:
            start = lane.cursor - self._base
            self._pieces.append(Piece(lane.cursor, absolute, self._text[start:index]))
            lane.cursor = absolute

    def _redact(self, found: Found) -> None:
        hit = self._hit(found, Action.REDACT)
        self._hits.append(hit)
        self._pieces.append(Piece(hit.start, hit.end, found.rule.replacement, redacted=True))
        self._enforce.cursor = hit.end

    def _hit(self, found: Found, action: Action) -> Hit:
        base, text = self._base, self._text[found.start : found.end]
        return Hit(found.rule.id, action, base + found.start, base + found.end, matched=text)

    def _fail(self, index: int, size: int, reason: Reason) -> bool:
        """A scan error or an over-long hold: ``on_error`` says cut or let it through.

        Letting an over-long hold through gives up only on the match in progress: its
        first character is released and everything after it is scanned again by every
        rule, so one unclosed ``-----BEGIN`` cannot switch the other rules off. A scan
        error leaves nothing to trust in the buffer, so ``allow`` releases it all.
        Returns whether the caller should scan again.
        """
        base, held = self._base, self._text[index:size]
        rule = HOLD_LIMIT_RULE if reason is Reason.HOLD_LIMIT else ERROR_RULE
        if self._cfg.fail_closed:
            hit = Hit(rule, Action.BLOCK, base + index, base + size, reason, matched=held)
            self._cut(index, hit)
            return False
        self._hits.append(Hit(rule, Action.FLAG, base + index, base + size, reason, matched=held))
        lane = self._enforce
        if reason is Reason.HOLD_LIMIT:
            self._release_to(index + 1)
            lane.seen, lane.active = lane.cursor, frozenset()
            return True
        self._release_to(size)
        lane.active = frozenset()
        return False

    def _cut(self, index: int, hit: Hit) -> None:
        """End the channel at ``index``: nothing from there on is ever released."""
        self._release_to(index)
        self._text = self._text[:index]
        self._observe_released(final=True)
        self._hits.append(hit)
        self._done = self._cut_now = True

    def _observe_released(self, final: bool) -> None:
        """Flag rules judge only what the client saw, so they never hold anything back.

        They see the released text as if it were all there is so far: what follows it
        may still be cut, and ``\bfoo\b`` over "foo" must not be ruled out by a "b"
        the client never receives. Released text can jump ahead by more than the hold
        limit at once, so it is shown to the lane in steps that evaluate the limit at
        the exact length where it is first exceeded, as ``feed`` does for the text.
        """
        lane = self._observe
        limit = self._enforce.cursor - self._base
        if not lane.matcher:
            lane.cursor = self._enforce.cursor
            return
        while True:
            view = min(limit, lane.cursor - self._base + self._cfg.max_hold + 1)
            self._observe_view(view, final and view == limit)
            if view == limit:
                return

    def _observe_view(self, view: int, final: bool) -> None:
        lane, base = self._observe, self._base
        text = self._text if view == len(self._text) else self._text[:view]
        scan = lane.scan(text, base, view, final)
        for found in scan.found:
            start, end = base + found.start, base + found.end
            self._hits.append(
                Hit(
                    found.rule.id,
                    Action.FLAG,
                    start,
                    end,
                    intended=_differing(found.rule.strength),
                    matched=text[found.start : found.end],
                )
            )
        hold = scan.hold
        if scan.timed_out or (not final and view - hold > self._cfg.max_hold):
            reason = Reason.ERROR if scan.timed_out else Reason.HOLD_LIMIT
            rule = ERROR_RULE if scan.timed_out else HOLD_LIMIT_RULE
            intended = Action.BLOCK if self._cfg.fail_closed else None
            held = text[hold:view]
            self._hits.append(
                Hit(rule, Action.FLAG, base + hold, base + view, reason, intended, matched=held)
            )
            hold = view
            lane.active = frozenset()
        lane.cursor = base + hold

    def _trim(self) -> None:
        """Forget text that no lane will scan again, keeping look-behind context.

        Trimmed only once a whole context's worth can go, so the copy is amortised
        instead of paid on every feed.
        """
        keep_from = min(self._enforce.cursor, self._observe.cursor) - CONTEXT_CHARS - self._base
        if keep_from >= CONTEXT_CHARS:
            self._text = self._text[keep_from:]
            self._base += keep_from
