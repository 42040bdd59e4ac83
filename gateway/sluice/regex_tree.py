"""Read a pattern's structure with the standard library's own regex parser.

Used for conservative static facts only (FIRST sets, lint): ``regex``-only syntax that
``re`` cannot parse yields ``None``, and every caller then assumes the worst.
"""

from __future__ import annotations

import re._parser as sre_p
from typing import Any, TypeAlias

# re._parser has no type stubs; its SubPattern is a list of (opcode, argument) pairs.
SubPattern: TypeAlias = Any


def parse_tree(pattern: str) -> SubPattern | None:
    try:
        return sre_p.parse(pattern)
    except Exception:  # regex-only syntax, or not a pattern at all
        return None


def children(av: Any) -> list[SubPattern]:
    """The sub-patterns nested in one node's argument, whatever its shape."""
    if isinstance(av, sre_p.SubPattern):
        return [av]
    if isinstance(av, tuple | list):
        return [c for item in av for c in children(item)]
    return []
