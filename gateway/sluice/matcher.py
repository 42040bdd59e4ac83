"""One combined scan for many rules, with partial matching.

Two questions are asked of a buffer on every feed, each answered by one ``regex`` call
over all rules at once, so the cost of a feed does not grow with the number of rules:

* **Where could a match still be in progress?** The *probe* is the alternation of every
  rule followed by ``(?!)``. It can never succeed, so the engine explores every path,
  and with ``partial=True`` it reports the leftmost position where some path ran into
  the end of the buffer. That is the hold point: nothing before it can be (part of) a
  match, whatever text comes next. (``regex`` prefers a complete match to a partial one,
  so asking the plain alternation would hide ``sk-abc…`` that is still growing.)
* **Which decided match comes first?** The plain alternation, searched from the cursor.
  Only at its start are the rules tried one by one (anchored), to apply leftmost, then
  longest, then strongest — this is rare, because real hits are rare.

Rules with back-references cannot share an alternation (group numbers would shift), so
they get a bank of their own; every other rule shares one bank.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import regex

from gateway.sluice.boundaries import spell_out_boundaries
from gateway.sluice.types import Rule

_BACKREF = regex.compile(r"\\[1-9]|\(\?P=|\\g<")


class ScanTimeout(Exception):
    """A rule's regex ran past the scan timeout (catastrophic backtracking)."""


@dataclass(frozen=True, slots=True)
class Found:
    """The leftmost decided hit: ``rule`` matched ``[start, end)``."""

    start: int
    end: int
    rule: Rule


@dataclass(frozen=True, slots=True)
class Pending:
    """A complete match at ``start`` ends at the buffer end, so it may still change."""

    start: int


def compile_rule(rule: Rule) -> regex.Pattern[str]:
    """Compile one rule alone; scoped flags keep ``ignore_case`` from leaking to others."""
    return regex.compile(_scoped(rule))


def _scoped(rule: Rule) -> str:
    pattern = spell_out_boundaries(rule.pattern)
    return f"(?i:{pattern})" if rule.ignore_case else f"(?:{pattern})"


def _wrapper(index: int) -> str:
    return f"sluicegate_rule_{index}"


class _Bank:
    """Rules that can share one alternation."""

    __slots__ = ("any", "groups", "probe", "rules", "singles")

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        self.singles = tuple(compile_rule(r) for r in self.rules)
        # Each rule is wrapped in a uniquely named group so a match tells which alternative
        # won; rules before it are known not to match there. Names, not counted numbers:
        # ``regex`` gives equal user group names in two rules one shared number.
        alternation = "|".join(
            f"(?P<{_wrapper(index)}>{_scoped(rule)})" for index, rule in enumerate(self.rules)
        )
        self.any = regex.compile(alternation)
        self.probe = regex.compile(f"(?:{alternation})(?!)")
        self.groups = tuple(self.any.groupindex[_wrapper(i)] for i in range(len(self.rules)))

    def first_alternative(self, match: regex.Match[str]) -> int:
        for index, group in enumerate(self.groups):
            if match.start(group) >= 0:
                return index
        return 0


class Matcher:
    """Answers the two scan questions for a fixed set of rules. Immutable and shareable."""

    __slots__ = ("_banks", "rules", "timeout")

    def __init__(self, rules: Sequence[Rule], timeout: float) -> None:
        self.rules = tuple(rules)
        self.timeout = timeout
        shared = [r for r in self.rules if not _BACKREF.search(r.pattern)]
        solo = [r for r in self.rules if _BACKREF.search(r.pattern)]
        banks = [_Bank(shared)] if shared else []
        banks.extend(_Bank([r]) for r in solo)
        self._banks = tuple(banks)

    def __bool__(self) -> bool:
        return bool(self._banks)

    def hold_start(self, text: str, pos: int) -> int:
        """The leftmost index ``>= pos`` where a match could still be in progress."""
        hold = len(text)
        for bank in self._banks:
            try:
                m = bank.probe.search(text, pos, partial=True, timeout=self.timeout)
            except TimeoutError as exc:
                raise ScanTimeout from exc
            if m is not None and m.start() < hold:
                hold = m.start()
        return hold

    def first(self, text: str, pos: int, before: int, final: bool) -> Found | Pending | None:
        """The leftmost decided hit starting in ``[pos, before)``.

        Unless ``final``, a match ending exactly at the buffer end is only ``Pending``:
        ``\\b``, ``$`` and look-aheads evaluated at the end would see different text once
        more arrives, and the probe cannot see that (they read no character).
        """
        while pos < before:
            start = self._leftmost(text, pos, before)
            if start is None:
                return None
            best = self._resolve(text, start, final)
            if best is not None:
                return best
            pos = start + 1
        return None

    def _leftmost(self, text: str, pos: int, before: int) -> int | None:
        leftmost: int | None = None
        for bank in self._banks:
            end = before if leftmost is None else leftmost
            try:
                m = bank.any.search(text, pos, timeout=self.timeout)
            except TimeoutError as exc:
                raise ScanTimeout from exc
            if m is not None and m.start() < end:
                leftmost = m.start()
        return leftmost

    def _resolve(self, text: str, start: int, final: bool) -> Found | Pending | None:
        """Leftmost is fixed; pick the longest valid match there, then the strongest."""
        best: Found | None = None
        size = len(text)
        for bank in self._banks:
            try:
                head = bank.any.match(text, start, timeout=self.timeout)
                if head is None:
                    continue
                first = bank.first_alternative(head)
                for rule, single in zip(bank.rules[first:], bank.singles[first:], strict=True):
                    m = single.match(text, start, timeout=self.timeout)
                    if m is None or m.end() == start:
                        continue
                    if m.end() == size and not final:
                        return Pending(start)
                    if rule.validate is not None and not rule.validate(m.group()):
                        continue
                    if best is None or _better(m.end(), rule, best):
                        best = Found(start, m.end(), rule)
            except TimeoutError as exc:
                raise ScanTimeout from exc
        return best


def _better(end: int, rule: Rule, than: Found) -> bool:
    if end != than.end:
        return end > than.end
    return rule.strength > than.rule.strength
