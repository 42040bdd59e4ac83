r"""Checks on a rule's pattern that the regex compiler does not make.

A streaming rule is scanned over a sliding buffer, so some patterns that are fine for
``re.search`` over a whole document misbehave here: anchors see the buffer's edges, an
empty match would fire everywhere, and an ambiguous pattern can backtrack for seconds on
text a client chose (``backtracking``). The structure is read with the standard library's
own parser where it understands the pattern; ``regex``-only syntax is simply not linted
structurally.

Exponential backtracking is an error, not a warning: one short crafted request then costs
a full scan timeout per rule and per text, there is always an unambiguous way to write the
same rule, and the message says how. Polynomial backtracking is a warning: it is common in
sensible rules (``\w+\s*\w+``), costs nothing on ordinary text, and the scan timeout
bounds it.
"""

from __future__ import annotations

import re._constants as sre_c
from collections.abc import Iterator
from typing import Any

import regex

from gateway.policy.backtracking import Backtracking, backtracking
from gateway.sluice.regex_tree import SubPattern, children, parse_tree

_ANCHORS = {
    sre_c.AT_BEGINNING: "^",
    sre_c.AT_BEGINNING_STRING: "\\A",
    sre_c.AT_END: "$",
    sre_c.AT_END_STRING: "\\Z",
}
_EMPTY_PROBES = ("", "a", "A", " ", "0", "ab 12", "\n", "x.y@z", "-_")


def pattern_errors(pattern: str, compiled: regex.Pattern[str]) -> list[str]:
    """Problems that make a pattern unusable in a stream."""
    errors = []
    for probe in _EMPTY_PROBES:
        if any(m.start() == m.end() for m in compiled.finditer(probe)):
            errors.append("the pattern can match the empty string; it would fire everywhere")
            break
    tree = parse_tree(pattern)
    if tree is not None:
        anchors = sorted(
            {_ANCHORS[av] for op, av in _items(tree) if op is sre_c.AT and av in _ANCHORS}
        )
        if anchors:
            errors.append(
                f"anchors {', '.join(anchors)} are not supported: a stream is scanned in a "
                "sliding window, so they would match at its edges; use \\b or look-arounds"
            )
    if backtracking(pattern, bool(compiled.flags & regex.IGNORECASE)) is Backtracking.EXPONENTIAL:
        errors.append(
            "the pattern can backtrack exponentially: a repeated part can match the same "
            "text in more than one way (like (a|aa)+ or (a+)+), so a short crafted text "
            "stalls the scan; make the alternatives or the nested repeats exclusive "
            "((a+)+ -> a+, (\\w+\\s?)* -> \\w+(?:\\s\\w+)*), or use a possessive "
            "quantifier (a++) or an atomic group (?>...)"
        )
    return errors


def pattern_warnings(pattern: str) -> list[str]:
    if backtracking(pattern) is Backtracking.POLYNOMIAL:
        return [
            "the pattern can backtrack polynomially: two repeats in a row can match the "
            "same text (like \\w+\\w+ or a*a*b), so a long text that almost matches is "
            "slow to reject; the scan timeout bounds it, but the rule may time out (see "
            "on_error); make the repeats exclusive or possessive"
        ]
    return []


def _items(tree: SubPattern) -> Iterator[tuple[Any, Any]]:
    for op, av in tree:
        yield op, av
        for child in children(av):
            yield from _items(child)
