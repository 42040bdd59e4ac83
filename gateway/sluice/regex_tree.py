"""Read a pattern's structure with the standard library's own regex parser.

Used for conservative static facts only (FIRST sets, lint): ``regex``-only syntax that
``re`` cannot parse yields ``None``, and every caller then assumes the worst.
"""

from __future__ import annotations

import re._constants as sre_c
import re._parser as sre_p
import warnings
from typing import Any, TypeAlias

# re._parser has no type stubs; its SubPattern is a list of (opcode, argument) pairs.
SubPattern: TypeAlias = Any


def parse_tree(pattern: str) -> SubPattern | None:
    """``None`` also where ``re`` reads the pattern differently from ``regex``.

    ``re`` warns on ``[[:digit:]]`` (a POSIX class to ``regex``) and takes ``{e<=1}``
    (fuzzy matching to ``regex``) as literal text; trusting either reading would skip a
    rule that can match.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            tree = sre_p.parse(pattern)
    except Exception:  # regex-only syntax, a warning, or not a pattern at all
        return None
    return None if _has_literal_brace(tree) else tree


def _has_literal_brace(tree: SubPattern) -> bool:
    for op, av in tree:
        if op is sre_c.LITERAL and av == ord("{"):
            return True
        if any(_has_literal_brace(child) for child in children(av)):
            return True
    return False


def children(av: Any) -> list[SubPattern]:
    """The sub-patterns nested in one node's argument, whatever its shape."""
    if isinstance(av, sre_p.SubPattern):
        return [av]
    if isinstance(av, tuple | list):
        return [c for item in av for c in children(item)]
    return []
