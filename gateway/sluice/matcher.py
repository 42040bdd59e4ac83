"""The two scan questions, asked only of the rules that could possibly answer.

Every feed asks two questions of the buffer:

* **Where could a match still be in progress?** A rule's *probe* is its pattern
  followed by ``(?!)``. It can never succeed, so the engine explores every path, and with
  ``partial=True`` it reports the leftmost position where some path ran into the end of
  the buffer. Nothing before the leftmost such position over all rules can be (part of)
  a match, whatever text comes next. (``regex`` prefers a complete match to a partial
  one, so asking the plain pattern would hide ``sk-abc…`` that is still growing.)
* **Which decided match comes first?** Each rule's leftmost complete match; the
  leftmost start wins, then the longest match there, then the strongest action.

Which rules are asked: those still *active* (a possible match in progress, or a
complete match touching the buffer end) plus those whose FIRST set (``prefilter``) has a
character of the fresh text. A rule that is neither cannot match anywhere new. One
alternation of all rules would be a single call, but ``regex`` then loses each
pattern's literal-prefix search and was three to four times slower than asking the
rules one by one (bench/engine.py); the FIRST filter removes most calls altogether.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import regex

from gateway.sluice.boundaries import spell_out_boundaries
from gateway.sluice.budget import Budget, RequestBudget
from gateway.sluice.prefilter import GRAM, context_literals, first_class, literal_prefixes
from gateway.sluice.types import Rule

_START_CACHE_LIMIT = 8192  # distinct characters and short deltas remembered per matcher
_CACHED_DELTA_LEN = 16


class ScanTimeout(Exception):
    """A rule's regex ran past the scan timeout (catastrophic backtracking)."""


@dataclass(frozen=True, slots=True)
class Found:
    """The leftmost decided hit: ``rule`` matched ``[start, end)``."""

    start: int
    end: int
    rule: Rule
    index: int


@dataclass(frozen=True, slots=True)
class Pending:
    """Complete matches at ``start`` end at the buffer end, so they may still change."""

    start: int
    rules: frozenset[int]


class _GramIndex:
    """Rules whose every match begins with one of a few literal trigrams (``sk-``,
    keywords), found by the trigrams of the fresh text; at its end, where fewer than
    three characters have arrived, by what those characters could begin."""

    __slots__ = ("_all_folded", "_folded", "_grams", "rules")

    def __init__(self, rules: Sequence[Rule]) -> None:
        exact: dict[str, set[int]] = {}
        folded: dict[str, set[int]] = {}
        served: set[int] = set()
        for index, rule in enumerate(rules):
            found = literal_prefixes(rule.pattern, rule.ignore_case)
            if found is None:
                continue
            prefixes, is_folded = found
            table = folded if is_folded else exact
            for prefix in prefixes:
                for size in range(1, GRAM + 1):  # heads for the buffer end, then the trigram
                    table.setdefault(prefix[:size], set()).add(index)
            served.add(index)
        self.rules = frozenset(served)
        self._grams = {k: frozenset(v) for k, v in exact.items()}
        self._folded = {k: frozenset(v) for k, v in folded.items()}
        self._all_folded = frozenset(i for v in folded.values() for i in v)

    def lookup(self, fresh: str) -> frozenset[int]:
        found: frozenset[int] = frozenset()
        if not self.rules:
            return found
        lowered = fresh.lower()
        if not fresh.isascii():
            # Case-insensitive matching pairs some non-ASCII characters with ASCII ones
            # ("ſ" with "s", the Kelvin sign with "k"): keep every folded rule then.
            found = self._all_folded
            lowered = ""
        for start in range(len(fresh)):
            end = start + GRAM
            found = (
                found
                | self._grams.get(fresh[start:end], found)
                | self._folded.get(lowered[start:end], found)
            )
        return found


def compile_rule(rule: Rule) -> regex.Pattern[str]:
    """Compile one rule; scoped flags keep ``ignore_case`` to the rule itself."""
    return regex.compile(_scoped(rule))


def _scoped(rule: Rule) -> str:
    pattern = spell_out_boundaries(rule.pattern)
    if regex.compile(rule.pattern).flags & regex.VERBOSE:
        pattern += "\n"  # a trailing ``# comment`` must not swallow the closing paren
    return f"(?i:{pattern})" if rule.ignore_case else f"(?:{pattern})"


class Matcher:
    """Answers the two scan questions for a fixed set of rules. Shared by all channels."""

    __slots__ = (
        "_always",
        "_context_rules",
        "_context_words",
        "_deltas",
        "_firsts",
        "_grams",
        "_probes",
        "_singles",
        "_starts",
        "rules",
        "timeout",
    )

    def __init__(self, rules: Sequence[Rule], timeout: float) -> None:
        self.rules = tuple(rules)
        self.timeout = timeout
        self._singles = tuple(compile_rule(r) for r in self.rules)
        self._probes = tuple(regex.compile(f"{_scoped(r)}(?!)") for r in self.rules)
        self._grams = _GramIndex(self.rules)
        # FIRST classes for the rules the trigram index cannot serve; None = any character.
        self._firsts = tuple(
            None if i in self._grams.rules else first_class(r.pattern, r.ignore_case)
            for i, r in enumerate(self.rules)
        )
        self._always = frozenset(
            i
            for i, first in enumerate(self._firsts)
            if first is None and i not in self._grams.rules
        )
        self._context_words: dict[int, frozenset[str]] = {}
        for index, rule in enumerate(self.rules):
            words = context_literals(rule.pattern)
            if words:
                self._context_words[index] = words
        self._context_rules = frozenset(self._context_words)
        self._starts: dict[str, frozenset[int]] = {}  # per character
        self._deltas: dict[str, frozenset[int]] = {}  # per short delta

    def __bool__(self) -> bool:
        return bool(self.rules)

    def candidates(self, fresh: str, active: frozenset[int], buffer: str) -> frozenset[int]:
        """Rules that could match given the text that just arrived.

        ``buffer`` is all the text a regex call would see: a rule whose matches must
        follow certain words (its look-behind) waits until one of them is in it.
        Deltas repeat (tokens), so the answer per short delta is remembered too.
        """
        known = self._by_delta(fresh)
        waiting = (known & self._context_rules) - active
        if waiting and buffer.isascii():
            # Only ASCII folds one to one: regex pairs "İ" with "i" where casefold() gives
            # two characters, so non-ASCII text keeps every waiting rule asked.
            folded = buffer.casefold()
            known = known - {
                i for i in waiting if not any(w in folded for w in self._context_words[i])
            }
        return known | active if active else known

    def _by_delta(self, fresh: str) -> frozenset[int]:
        known = self._deltas.get(fresh)
        if known is None:
            known = self._always | self._grams.lookup(fresh)
            for char in set(fresh):
                known = known | self._starts_with(char)
            if len(fresh) <= _CACHED_DELTA_LEN and len(self._deltas) < _START_CACHE_LIMIT:
                self._deltas[fresh] = known
        return known

    def _starts_with(self, char: str) -> frozenset[int]:
        known = self._starts.get(char)
        if known is None:
            known = frozenset(
                i for i, first in enumerate(self._firsts) if first and first.match(char)
            )
            if len(self._starts) < _START_CACHE_LIMIT:
                self._starts[char] = known
        return known

    def survey(
        self,
        text: str,
        pos: int,
        limit: int,
        final: bool,
        rules: Iterable[int],
        budget: RequestBudget | None = None,
    ) -> tuple[int, frozenset[int], Found | Pending | None]:
        """Where the hold starts, which rules are active, and the leftmost decided hit.

        The hold is the leftmost index ``>= pos`` where a match could still be in
        progress (at most ``limit``); the hit, if any, starts before it. Unless
        ``final``, a complete match ending exactly at the buffer end is only
        ``Pending``: ``$`` and look-aheads evaluated at the end would see different text
        once more arrives, and the probe cannot see that (they read no character).
        Every search is charged to ``budget``, the request's scan time (``sluice.budget``).
        """
        size = len(text)
        hold = limit
        active: list[int] = []
        complete: list[int] = []
        try:
            for index in rules:
                # One call answers both questions when the rule has no complete match:
                # regex then reports its leftmost partial match, as the probe would.
                m = self._search(self._singles[index], text, pos, not final, budget)
                if m is None:
                    continue
                if m.partial:
                    if m.start() < size:
                        active.append(index)
                        hold = min(hold, m.start())
                    continue
                # Undecided until the cursor passes it: keep the rule active, or a match
                # starting at or after the hold would be skipped on the next feed.
                complete.append(index)
                active.append(index)
                if not final:
                    p = self._search(self._probes[index], text, pos, True, budget)
                    if p is not None and p.start() < size:
                        active.append(index)
                        hold = min(hold, p.start())
            hit = self._first(text, pos, hold, final, complete, budget) if complete else None
        except TimeoutError as exc:
            raise ScanTimeout from exc
        return hold, frozenset(active), hit

    def _search(
        self,
        pattern: regex.Pattern[str],
        text: str,
        pos: int,
        partial: bool,
        budget: RequestBudget | None,
    ) -> regex.Match[str] | None:
        """One search under the scan timeout, or under what is left of the request's
        scan time if that is less; running out of the latter is the request's budget
        crossed, not this rule's timeout (``TimeoutError``)."""
        if budget is None:
            return pattern.search(text, pos, partial=partial, timeout=self.timeout)
        timeout = budget.search_timeout(self.timeout)
        started = time.perf_counter()
        try:
            return pattern.search(text, pos, partial=partial, timeout=timeout)
        except TimeoutError:
            if timeout < self.timeout:
                raise budget.exceed(Budget.SCAN_TIME) from None
            raise
        finally:
            budget.charge(time.perf_counter() - started)

    def _first(
        self,
        text: str,
        pos: int,
        before: int,
        final: bool,
        rules: list[int],
        budget: RequestBudget | None,
    ) -> Found | Pending | None:
        """The leftmost decided hit starting in ``[pos, before)``: longest, then strongest."""
        leftmost: list[tuple[int, int]] = []  # (rule index, end) of matches at the best start
        best_start = before
        for index in rules:
            found = self._leftmost_valid(index, text, pos, best_start + 1, final, budget)
            if found is None or found[0] > best_start:
                continue
            if found[0] < best_start:
                best_start, leftmost = found[0], []
            leftmost.append((index, found[1]))
        if not leftmost or best_start >= before:
            return None
        size = len(text)
        pending = frozenset(i for i, end in leftmost if end == size and not final)
        if pending:
            return Pending(best_start, pending)
        index, end = max(leftmost, key=lambda c: (c[1], self.rules[c[0]].strength, -c[0]))
        return Found(best_start, end, self.rules[index], index)

    def _leftmost_valid(
        self,
        index: int,
        text: str,
        pos: int,
        before: int,
        final: bool,
        budget: RequestBudget | None,
    ) -> tuple[int, int] | None:
        """The rule's leftmost match starting before ``before`` that its validator accepts.

        A match touching the buffer end is returned unvalidated unless ``final``: it may
        still grow into a valid one, so it must be held, not judged.
        """
        size = len(text)
        rule, single = self.rules[index], self._singles[index]
        while pos < before:
            m = self._search(single, text, pos, False, budget)
            if m is None or m.start() >= before:
                return None
            growing = m.end() == size and not final
            if m.end() > m.start() and (
                growing or rule.validate is None or rule.validate(m.group())
            ):
                return m.start(), m.end()
            pos = m.start() + 1
        return None
