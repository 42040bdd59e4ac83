"""Cutting streamed text into the segments a classifier judges.

Sentences are found with pysbd, a rule-based sentence boundary detector that knows
abbreviations ("e.g.", "Dr."), decimals, list numbering and quotes, so a classifier
judges whole thoughts instead of fragments like "Dr.". Text with no sentence ends (code,
long lists) is still cut, at the last space before ``max_chars``.

Chunking invariance matters here as much as in the sluice: the same text must give the
same segments however it arrives, or a stream and its non-streamed twin would be judged
differently. So every boundary is decided from a fixed window of text: a candidate
boundary (terminal punctuation, then whitespace) is checked only once ``LOOKAHEAD``
characters after it have arrived (or the text is complete), by running the detector
over the open segment up to there and nothing more.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pysbd
import regex

from gateway.sluice.verdicts import Segmenting

#: Characters after a candidate boundary the detector sees before deciding it.
LOOKAHEAD = 8

# A terminal (with closing quotes or brackets) and the whitespace after it; the
# candidate boundary is where the next sentence would start.
_CANDIDATE = regex.compile(r"[.!?…。！？]+[\"'”’)\]]*\s+")
_PARAGRAPH = regex.compile(r"\n[ \t]*\n\s*")
_SPACE = regex.compile(r"\s")

_DETECTOR = pysbd.Segmenter(language="en", clean=False, char_span=True)


@dataclass(frozen=True, slots=True)
class Segment:
    """``text`` is the span ``[start, end)`` of the segmented text; ``index`` counts from 0."""

    index: int
    start: int
    end: int
    text: str


class Segmenter:
    """Text in, complete segments out. Pure; one per channel and classifier rule."""

    __slots__ = ("_buffer", "_count", "_done", "_scanned", "_settings", "_start")

    def __init__(self, settings: Segmenting) -> None:
        self._settings = settings
        self._buffer = ""  # the open segment's text and what follows it so far
        self._start = 0  # absolute offset of ``_buffer[0]``
        self._scanned = 0  # buffer offset up to which candidates were rejected
        self._count = 0
        self._done = False

    def feed(self, text: str) -> list[Segment]:
        if self._done or not text:
            return []
        self._buffer += text
        return list(self._cut(final=False))

    def flush(self) -> list[Segment]:
        """What is buffered, as a segment now: the text stopped coming (another channel
        took over, or upstream went quiet), so waiting for a boundary would hold it forever.
        Only the caller's timing decides this, so it gives up chunking invariance where used.
        """
        if self._done or not self._buffer:
            return []
        return [self._emit(len(self._buffer))]

    def finish(self) -> list[Segment]:
        """The text is complete: what is left is the last segment."""
        if self._done:
            return []
        out = list(self._cut(final=True))
        if self._buffer:
            out.append(self._emit(len(self._buffer)))
        self._done = True
        return out

    # -- internals -------------------------------------------------------------------

    def _limit(self) -> int:
        s = self._settings
        return min(s.first_chars, s.chars) if self._count == 0 else s.chars

    def _cut(self, final: bool) -> Iterator[Segment]:
        while True:
            end = self._boundary(final)
            if end is None:
                return
            yield self._emit(end)

    def _emit(self, end: int) -> Segment:
        text = self._buffer[:end]
        segment = Segment(self._count, self._start, self._start + end, text)
        self._buffer = self._buffer[end:]
        self._start += end
        self._scanned = 0
        self._count += 1
        return segment

    def _boundary(self, final: bool) -> int | None:
        """Where the open segment ends, once that no longer depends on text to come.

        The earliest of: a sentence end the detector confirms, a blank line, or (past
        ``limit``) the last space before it. Each waits until what decides it has arrived.
        """
        buffer, limit = self._buffer, self._limit()
        size = len(buffer)
        if not self._settings.sentences:
            return limit if size >= limit else None
        paragraph = _PARAGRAPH.search(buffer, 1, min(size, limit + 1))
        before = paragraph.start() + 1 if paragraph is not None else limit
        for found in _CANDIDATE.finditer(buffer, self._scanned):
            candidate: int = found.end()
            if candidate > min(before, limit):
                break
            if candidate + LOOKAHEAD > size and not final:
                return None  # too little known after it to decide
            if self._is_sentence_end(candidate):
                return candidate
            self._scanned = found.end()
        if paragraph is not None:
            return paragraph.end() if paragraph.end() < size or final else None
        if size >= limit + LOOKAHEAD or (final and size > limit):
            return _last_space(buffer, limit)
        return None

    def _is_sentence_end(self, candidate: int) -> bool:
        window = self._buffer[: candidate + LOOKAHEAD]
        return any(span.end == candidate for span in _DETECTOR.segment(window))


def _last_space(buffer: str, limit: int) -> int:
    """Cut before ``limit`` after the last whitespace in its second half, else at it."""
    for index in range(limit - 1, limit // 2, -1):
        if _SPACE.match(buffer, index):
            return index + 1
    return limit
