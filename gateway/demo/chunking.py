"""How answer text is cut into deltas, and how the deltas of several choices interleave.

A moderating proxy must give the same verdict however the upstream splits its text (a match
may span deltas), so tests replay one text under several splits: token-like words, single
characters, seeded random pieces and the whole text at once. Every split concatenates back
to exactly the input.
"""

from __future__ import annotations

import enum
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

_WORD = re.compile(r"\s*\S+|\s+")

MAX_RANDOM_PIECE = 8


class ChunkingMode(enum.Enum):
    WORD = "word"
    CHAR = "char"
    RANDOM = "random"
    ALL = "all"


@dataclass(frozen=True, slots=True)
class Chunking:
    """A split rule; ``seed`` matters only for ``RANDOM``."""

    mode: ChunkingMode = ChunkingMode.WORD
    seed: int = 0

    def split(self, text: str) -> list[str]:
        """Cut ``text`` into non-empty pieces whose concatenation is ``text``."""
        if not text:
            return []
        if self.mode is ChunkingMode.WORD:
            return split_words(text)
        if self.mode is ChunkingMode.CHAR:
            return list(text)
        if self.mode is ChunkingMode.RANDOM:
            return _split_random(text, random.Random(self.seed))
        return [text]


def split_words(text: str) -> list[str]:
    """Token-like pieces: each starts with the whitespace before its word, as BPE tokens do."""
    return _WORD.findall(text)


def _split_random(text: str, rng: random.Random) -> list[str]:
    pieces: list[str] = []
    start = 0
    while start < len(text):
        end = start + rng.randint(1, MAX_RANDOM_PIECE)
        pieces.append(text[start:end])
        start = end
    return pieces


def interleave(per_choice: Sequence[Sequence[T]]) -> list[T]:
    """Round-robin over the choices' chunks, so each index first appears in order 0, 1, ….

    The Python SDK fails with an ``IndexError`` if choice 1 shows up before choice 0
    (docs/wire.md, "Chat chunk requirements"), while real upstreams do interleave choices.
    """
    longest = max((len(chunks) for chunks in per_choice), default=0)
    return [
        chunks[position]
        for position in range(longest)
        for chunks in per_choice
        if position < len(chunks)
    ]
