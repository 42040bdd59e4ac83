"""Which characters can begin a match of a rule (its FIRST set), to skip idle rules.

Most rules cannot start on most characters: ``sk-…`` only on ``s``, a card number only
on a digit. A rule that is not in the middle of a possible match and whose FIRST set
has none of the characters that just arrived cannot match anywhere new, so the sluice
does not call it at all. Measured on the default policy this is what makes a feed cost
microseconds rather than one regex call per rule.

The set is read from the pattern's structure with the standard library's parser and
is always a superset: zero-width assertions are skipped (they only narrow), and any
construct not understood here — or ``regex``-only syntax ``re`` cannot parse — means
"any character", which only costs speed, never correctness.
"""

from __future__ import annotations

import re
import re._constants as sre_c
from typing import Any

import regex

from gateway.sluice.regex_tree import children, parse_tree

_CATEGORIES = {
    sre_c.CATEGORY_DIGIT: r"\d",
    sre_c.CATEGORY_NOT_DIGIT: r"\D",
    sre_c.CATEGORY_SPACE: r"\s",
    sre_c.CATEGORY_NOT_SPACE: r"\S",
    sre_c.CATEGORY_WORD: r"\w",
    sre_c.CATEGORY_NOT_WORD: r"\W",
}
_REPEATS = {sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, sre_c.POSSESSIVE_REPEAT}
_ZERO_WIDTH = {sre_c.AT, sre_c.ASSERT, sre_c.ASSERT_NOT}


class _AnyChar(Exception):
    """The FIRST set is not known precisely enough: every character qualifies."""


def first_class(pattern: str, ignore_case: bool) -> regex.Pattern[str] | None:
    """A one-character class matching every character a match can start with.

    ``None`` means any character can.
    """
    tree = parse_tree(pattern)
    if tree is None:
        return None
    try:
        parts, nullable = _first(list(tree))
    except _AnyChar:
        return None
    if nullable or not parts:
        return None
    folded = ignore_case or bool(tree.state.flags & re.IGNORECASE) or _folds(list(tree))
    return regex.compile("[" + "".join(sorted(parts)) + "]", regex.IGNORECASE if folded else 0)


def _char(code: int) -> str:
    return f"\\U{code:08x}"


def _first(sequence: list[tuple[Any, Any]]) -> tuple[set[str], bool]:
    """FIRST parts of a sequence, and whether the whole sequence can match empty."""
    parts: set[str] = set()
    for op, av in sequence:
        if op in _ZERO_WIDTH:
            continue
        item, nullable = _first_item(op, av)
        parts |= item
        if not nullable:
            return parts, False
    return parts, True


def _first_item(op: Any, av: Any) -> tuple[set[str], bool]:
    if op is sre_c.LITERAL:
        return {_char(av)}, False
    if op is sre_c.IN:
        return _first_in(av), False
    if op is sre_c.SUBPATTERN:
        return _first(list(av[3]))
    if op is sre_c.ATOMIC_GROUP:
        return _first(list(av))
    if op is sre_c.BRANCH:
        parts: set[str] = set()
        nullable = False
        for branch in av[1]:
            branch_parts, branch_nullable = _first(list(branch))
            parts |= branch_parts
            nullable = nullable or branch_nullable
        return parts, nullable
    if op in _REPEATS:
        minimum, _, body = av
        parts, nullable = _first(list(body))
        return parts, nullable or minimum == 0
    if op is sre_c.CATEGORY and av in _CATEGORIES:
        return {_CATEGORIES[av]}, False
    raise _AnyChar


def _first_in(items: list[tuple[Any, Any]]) -> set[str]:
    parts: set[str] = set()
    for op, av in items:
        if op is sre_c.LITERAL:
            parts.add(_char(av))
        elif op is sre_c.RANGE:
            parts.add(f"{_char(av[0])}-{_char(av[1])}")
        elif op is sre_c.CATEGORY and av in _CATEGORIES:
            parts.add(_CATEGORIES[av])
        else:  # NEGATE and anything unusual
            raise _AnyChar
    return parts


def _folds(sequence: list[tuple[Any, Any]]) -> bool:
    """Does a scoped ``(?i:...)`` appear anywhere? Then the whole class folds case."""
    for op, av in sequence:
        if op is sre_c.SUBPATTERN and av[1] & re.IGNORECASE:
            return True
        if any(_folds(list(child)) for child in children(av)):
            return True
    return False


#: Length of the literal prefixes rules are indexed by (see ``literal_prefixes``).
GRAM = 3
_MAX_PREFIXES = 64


def literal_prefixes(pattern: str, ignore_case: bool) -> tuple[frozenset[str], bool] | None:
    """Every literal string of ``GRAM`` characters a match must begin with, and whether
    they are case-folded (lower case); ``None`` when the pattern does not pin one down.

    A FIRST set says ``s`` may start a key; ``sk-`` says far more: with two hundred
    keyword and secret rules, most letters begin some rule, but few trigrams do.
    """
    tree = parse_tree(pattern)
    if tree is None:
        return None
    folded = ignore_case or bool(tree.state.flags & re.IGNORECASE) or _folds(list(tree))
    try:
        grown, _ = _grow({""}, list(tree))
    except _AnyChar:
        return None
    if not grown or any(len(p) < GRAM for p in grown):
        return None
    if folded and not all(p.isascii() for p in grown):
        return None  # non-ASCII case folding has too many pairings to index safely
    return frozenset(p.lower() if folded else p for p in grown), folded


def _grow(prefixes: set[str], sequence: list[tuple[Any, Any]]) -> tuple[set[str], bool]:
    """Extend each prefix by the sequence's literal start, up to ``GRAM`` characters.

    Returns the prefixes and whether extension stopped early at something not literal
    (then nothing after it may extend them: ``(?:a\\d)bc`` does not begin with ``abc``).
    """
    for op, av in sequence:
        if all(len(p) >= GRAM for p in prefixes):
            break
        if op in _ZERO_WIDTH:
            continue
        stopped = False
        if op is sre_c.LITERAL:
            prefixes = {_add(p, chr(av)) for p in prefixes}
        elif op is sre_c.IN and len(av) <= 8 and all(o is sre_c.LITERAL for o, _ in av):
            prefixes = {_add(p, chr(c)) for p in prefixes for _, c in av}
        elif op is sre_c.SUBPATTERN or op is sre_c.ATOMIC_GROUP:
            prefixes, stopped = _grow(prefixes, list(av[3] if op is sre_c.SUBPATTERN else av))
        elif op is sre_c.BRANCH:
            grown = [_grow(set(prefixes), list(branch)) for branch in av[1]]
            prefixes = {q for branch, _ in grown for q in branch}
            stopped = any(s for _, s in grown)
        else:
            stopped = True
        if len(prefixes) > _MAX_PREFIXES:
            raise _AnyChar
        if stopped:
            return prefixes, True
    return prefixes, False


def _add(prefix: str, char: str) -> str:
    return prefix + char if len(prefix) < GRAM else prefix


def context_literals(pattern: str) -> frozenset[str] | None:
    """Case-folded words one of which must stand just before any match, or ``None``.

    ``aws_secret_key`` begins with a look-behind for ``aws…secret…key =``: any character
    may begin the value, so FIRST sets keep the rule busy on every feed, yet it cannot
    match unless "aws" or "secret" was written in the last few hundred characters.
    Read from a leading positive look-behind (or a group whose every branch starts with
    one); ``None`` when there is none or its words are not pinned down.
    """
    tree = parse_tree(pattern)
    if tree is None:
        return None
    for op, av in tree:
        grouped = op is sre_c.SUBPATTERN or op is sre_c.BRANCH
        if op not in _ZERO_WIDTH and not grouped:
            return None
        words = _behind_words(op, av)
        if words:
            return frozenset(w.casefold() for w in words)
        if grouped:
            return None
    return None


def _behind_words(op: Any, av: Any) -> set[str] | None:
    if op is sre_c.ASSERT and av[0] == -1:
        return _required_words(list(av[1]))
    if op is sre_c.BRANCH:
        found = [_first_behind(list(b)) for b in av[1]]
        return set().union(*found) if found and all(found) else None  # type: ignore[arg-type]
    if op is sre_c.SUBPATTERN:
        return _first_behind(list(av[3]))
    return None


def _first_behind(sequence: list[tuple[Any, Any]]) -> set[str] | None:
    return _behind_words(*sequence[0]) if sequence else None


def _required_words(sequence: list[tuple[Any, Any]]) -> set[str] | None:
    """A set of literal runs (3+ characters) one of which every match of ``sequence`` contains."""
    run = ""
    for op, av in sequence:
        if op is sre_c.LITERAL:
            run += chr(av)
            continue
        if len(run) >= GRAM:
            return {run}
        run = ""
        if op is sre_c.SUBPATTERN or op is sre_c.BRANCH:
            branches = [list(av[3])] if op is sre_c.SUBPATTERN else [list(b) for b in av[1]]
            found = [_required_words(b) for b in branches]
            if all(found):
                return set().union(*found)  # type: ignore[arg-type]
    return {run} if len(run) >= GRAM else None
