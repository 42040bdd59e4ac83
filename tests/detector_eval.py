"""Scores detectors on the labelled corpus, with a whole-text reference scanner.

The scanner is what the sluice does for one detector on a text that is already complete:
search, validate the candidate, and on rejection resume one character after the
candidate's start (not after its end), so that a rejected candidate hides nothing that
starts inside it. It lives here, not in gateway/, because the sluice is the only scanner
the gateway has; this one is the oracle the tests and the benchmark compare against.

Matching rule: a reported span counts only if it equals a labelled span of the same
detector exactly (start and end). A span that is too long or too short is both a false
positive and a false negative: a redaction that misses a character leaks it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import regex

from gateway.detectors import Detector
from tests.detector_corpus import Document, Label


def compile_detector(detector: Detector) -> regex.Pattern[str]:
    """Compile the pattern the way the sluice does (``regex`` module, V0 syntax)."""
    flags = regex.VERSION0 | (regex.IGNORECASE if detector.ignore_case else 0)
    return regex.compile(detector.pattern, flags)


def scan(
    detector: Detector,
    text: str,
    compiled: regex.Pattern[str] | None = None,
    timeout: float | None = None,
) -> list[tuple[int, int]]:
    """Every span of ``text`` that ``detector`` reports, left to right, not overlapping.

    ``timeout`` bounds each regex call (``TimeoutError`` past it), as the sluice does.
    """
    pattern = compiled or compile_detector(detector)
    spans = []
    position = 0
    while (match := pattern.search(text, position, timeout=timeout)) is not None:
        start, end = match.span()
        if detector.validate is None or detector.validate(match.group()):
            spans.append((start, end))
            position = end
        else:
            position = start + 1
    return spans


@dataclass
class Score:
    """Exact-span counts for one detector, with examples of each kind of error."""

    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    fp_examples: list[str] = field(default_factory=list)
    fn_examples: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        reported = self.true_positives + self.false_positives
        return self.true_positives / reported if reported else 1.0

    @property
    def recall(self) -> float:
        labelled = self.true_positives + self.false_negatives
        return self.true_positives / labelled if labelled else 1.0

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0

    def add(
        self, text: str, predicted: Iterable[tuple[int, int]], gold: Iterable[tuple[int, int]]
    ) -> None:
        """Count one document's spans; keep a few examples of each error with context."""
        predicted, gold = set(predicted), set(gold)
        self.true_positives += len(predicted & gold)
        for start, end in sorted(predicted - gold):
            self.false_positives += 1
            if len(self.fp_examples) < 10:
                self.fp_examples.append(
                    repr(text[max(0, start - 20) : end + 20]) + f" -> {text[start:end]!r}"
                )
        for start, end in sorted(gold - predicted):
            self.false_negatives += 1
            if len(self.fn_examples) < 10:
                self.fn_examples.append(
                    repr(text[max(0, start - 20) : end + 20]) + f" -> {text[start:end]!r}"
                )


def gold_spans(document: Document, name: str) -> list[tuple[int, int]]:
    """The labelled spans of ``name`` in ``document``."""
    return [(label.start, label.end) for label in document.labels if label.detector == name]


def evaluate(detector: Detector, corpus: Iterable[Document]) -> Score:
    """Score ``detector`` against its own labels on every document of ``corpus``."""
    compiled = compile_detector(detector)
    score = Score()
    for document in corpus:
        score.add(
            document.text,
            scan(detector, document.text, compiled),
            gold_spans(document, detector.name),
        )
    return score


__all__ = ["Label", "Score", "compile_detector", "evaluate", "gold_spans", "scan"]
