"""Tells generated secrets from words, identifiers and documentation placeholders.

Prefix-anchored token formats (``ghp_``, ``AIza`` …) are distinctive, but the same
prefixes appear in docs and tutorials as ``ghp_xxxxxxxx…`` or ``sk-...your-key-here``, and a
name-anchored value (``password: …``) is as often a variable name as a password. Generated
secrets are random: many distinct characters, several character classes, no filler runs.
Placeholders are deliberately not detected: they carry no secret, and redacting them would
make the gateway noisy on exactly the documentation answers users ask for.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter

# Words that documentation uses to mark a value as not real. A random base-62 string contains
# a given word of five letters or more with probability well below one in a million.
_PLACEHOLDER_WORDS = ("example", "placeholder", "your", "xxxx", "redacted", "dummy", "sample")
# The longest run of one repeated character, or of ascending code points ("abcdef",
# "123456"), that a random token still plausibly contains: in 25 random digits a run of six
# turns up about once in 4,000 tokens, in base-62 text practically never.
_MAX_RUN = 5


def shannon_entropy(value: str) -> float:
    """Shannon entropy of ``value``'s character distribution, in bits per character.

    Bounded by ``log2(len(value))``: a value of 12 characters can score at most 3.58.
    """
    if not value:
        return 0.0
    length = len(value)
    return -sum(count / length * math.log2(count / length) for count in Counter(value).values())


def character_classes(value: str) -> int:
    """How many of lower-case letters, upper-case letters and digits ``value`` uses.

    Punctuation does not count: hyphenated words ("sk-learn-compatible-…") have plenty.
    """
    return (
        any(c.islower() for c in value)
        + any(c.isupper() for c in value)
        + any(c.isdigit() for c in value)
    )


def _longest_run(value: str) -> int:
    """The longest run of one repeated character or of ascending code points."""
    longest = same = ascending = 1
    for previous, current in itertools.pairwise(value):
        step = ord(current) - ord(previous)
        same = same + 1 if step == 0 else 1
        ascending = ascending + 1 if step == 1 else 1
        longest = max(longest, same, ascending)
    return longest


def is_placeholder(value: str) -> bool:
    """Whether ``value`` looks like documentation filler rather than a generated secret."""
    lowered = value.lower()
    return any(word in lowered for word in _PLACEHOLDER_WORDS) or _longest_run(value) > _MAX_RUN


def plausible_secret(value: str, *, min_entropy: float, min_classes: int = 1) -> bool:
    """Whether ``value`` could be a generated secret rather than a word or a placeholder."""
    return (
        shannon_entropy(value) >= min_entropy
        and character_classes(value) >= min_classes
        and not is_placeholder(value)
    )
