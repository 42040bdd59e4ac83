"""Checks on a rule's pattern that the regex compiler does not make.

A streaming rule is scanned over a sliding buffer, so some patterns that are fine for
``re.search`` over a whole document misbehave here: anchors see the buffer's edges, an
empty match would fire everywhere, and nested quantifiers can backtrack for seconds.
The structure is read with the standard library's own parser where it understands the
pattern; ``regex``-only syntax is simply not linted structurally.
"""

from __future__ import annotations

import re._constants as sre_c
from collections.abc import Iterator
from typing import Any

import regex

from gateway.sluice.regex_tree import SubPattern, children, parse_tree

_ANCHORS = {
    sre_c.AT_BEGINNING: "^",
    sre_c.AT_BEGINNING_STRING: "\\A",
    sre_c.AT_END: "$",
    sre_c.AT_END_STRING: "\\Z",
}
_REPEATS = {sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, sre_c.POSSESSIVE_REPEAT}
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
    return errors


def pattern_warnings(pattern: str) -> list[str]:
    tree = parse_tree(pattern)
    if tree is not None and _nested_unbounded(tree, inside=False):
        return [
            "nested unbounded quantifiers (like (a+)+) can backtrack catastrophically; "
            "the scan timeout bounds it, but the rule may time out (see on_error)"
        ]
    return []


def _items(tree: SubPattern) -> Iterator[tuple[Any, Any]]:
    for op, av in tree:
        yield op, av
        for child in children(av):
            yield from _items(child)


def _nested_unbounded(tree: SubPattern, inside: bool) -> bool:
    for op, av in tree:
        unbounded = op in _REPEATS and av[1] == sre_c.MAXREPEAT
        if unbounded and inside:
            return True
        for child in children(av):
            if _nested_unbounded(child, inside or unbounded):
                return True
    return False
