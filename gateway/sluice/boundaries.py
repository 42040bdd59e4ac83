"""Spell ``\\b`` and ``\\B`` out as look-arounds, so partial matching can see them.

``regex`` reports a partial match when a path *reads* past the end of the buffer. A
look-ahead does (``(?=\\w)`` at the end is undecided), but ``\\b`` does not: at the end
of the string it is simply false after a non-word character. So ``[.]\\bcom`` over
``"example."`` looks impossible, the probe would release the dot, and the ``.com`` that
follows would leak. Written as the equivalent look-arounds, the same assertion at the
buffer end is a partial match, and the text is held until the next character decides.
"""

from __future__ import annotations

WORD_BOUNDARY = r"(?:(?<=\w)(?!\w)|(?<!\w)(?=\w))"
NOT_WORD_BOUNDARY = r"(?:(?<=\w)(?=\w)|(?<!\w)(?!\w))"
_SPELLED = {"b": WORD_BOUNDARY, "B": NOT_WORD_BOUNDARY}


def spell_out_boundaries(pattern: str) -> str:
    """The same pattern with ``\\b``/``\\B`` outside character classes rewritten.

    Inside a class ``[\\b]`` means backspace and is kept. Escapes are copied as pairs,
    so ``\\\\b`` (a backslash, then ``b``) stays literal.
    """
    out: list[str] = []
    i, size, in_class = 0, len(pattern), False
    while i < size:
        char = pattern[i]
        if char == "\\" and i + 1 < size:
            escaped = pattern[i + 1]
            out.append(
                _SPELLED.get(escaped, "")
                if not in_class and escaped in _SPELLED
                else pattern[i : i + 2]
            )
            i += 2
            continue
        out.append(char)
        i += 1
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            # A ']' first in a class (after an optional '^') is a literal member.
            if i < size and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < size and pattern[i] == "]":
                out.append("]")
                i += 1
    return "".join(out)
