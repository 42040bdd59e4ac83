"""The built-in detectors inside the sluice: streaming agrees with whole text, and leaks nothing.

The corpus documents are moderated by a policy that redacts with every detector at once.
Whatever way a document is split into deltas, the released text must equal the whole-text
result, and no character of a redacted span may ever be released. The whole-text result
of each detector alone must also equal the reference scanner's spans, which are what the
precision and recall in ``test_detectors_corpus`` were measured on.
"""

from __future__ import annotations

from functools import cache

import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from gateway.detectors import KNOWN_DETECTORS, build_detector
from gateway.sluice import Action, Hit, Matcher, Piece, Rule, SluiceConfig, moderate
from tests.detector_corpus import DETECTOR_OPTIONS, Document, generate_corpus
from tests.detector_eval import scan

TIMEOUT = 2.0
# A 4096-bit RSA key in PEM is about 3,300 characters and is held until its END line.
MAX_HOLD = 4096


@cache
def corpus() -> tuple[Document, ...]:
    return tuple(generate_corpus())


def _rule(name: str) -> Rule:
    detector = build_detector(name, DETECTOR_OPTIONS.get(name))
    return Rule(
        id=name,
        pattern=detector.pattern,
        action=Action.REDACT,
        replacement=f"[{name}]",
        ignore_case=detector.ignore_case,
        validate=detector.validate,
    )


@cache
def config(*names: str) -> SluiceConfig:
    return SluiceConfig(
        enforce=Matcher([_rule(name) for name in names], TIMEOUT),
        observe=Matcher([], TIMEOUT),
        max_hold=MAX_HOLD,
    )


@pytest.mark.parametrize("name", KNOWN_DETECTORS)
def test_sluice_finds_what_the_reference_scanner_finds(name: str) -> None:
    detector = build_detector(name, DETECTOR_OPTIONS.get(name))
    for document in corpus()[:300]:
        hits = moderate(config(name), document.text).hits
        assert [(hit.start, hit.end) for hit in hits] == scan(detector, document.text)


def test_a_policy_with_every_detector_redacts_the_labelled_text() -> None:
    """Overlapping detectors (a key that is also a generic secret) must not hide a span."""
    uncovered, labels = [], 0
    for document in corpus():
        redacted = [
            (piece.start, piece.end)
            for piece in moderate(config(*KNOWN_DETECTORS), document.text).pieces
            if piece.redacted
        ]
        for label in document.labels:
            labels += 1
            if not all(
                any(start <= i < end for start, end in redacted)
                for i in range(label.start, label.end)
            ):
                uncovered.append(document.text[label.start : label.end])
    assert len(uncovered) <= labels * 0.01, uncovered


def _stream(text: str, sizes: list[int]) -> tuple[list[Piece], list[Hit]]:
    sluice = config(*KNOWN_DETECTORS).open()
    pieces: list[Piece] = []
    hits: list[Hit] = []
    position = 0
    for size in sizes:
        step = sluice.feed(text[position : position + size])
        pieces += step.pieces
        hits += step.hits
        position += size
    step = sluice.feed(text[position:])
    pieces += step.pieces
    hits += step.hits
    step = sluice.finish()
    return pieces + list(step.pieces), hits + list(step.hits)


@given(
    document=st.sampled_from(range(len(corpus()))),
    sizes=st.lists(st.integers(min_value=1, max_value=48), max_size=400),
)
def test_any_chunking_gives_the_whole_text_result_and_leaks_nothing(
    document: int, sizes: list[int]
) -> None:
    text = corpus()[document].text
    whole = moderate(config(*KNOWN_DETECTORS), text)
    pieces, hits = _stream(text, sizes)
    note(f"hits: {hits}")
    assert "".join(piece.text for piece in pieces) == whole.text
    assert hits == list(whole.hits)
    for hit in hits:
        for piece in pieces:
            overlaps = piece.start < hit.end and hit.start < piece.end
            assert not overlaps or piece.redacted, (hit, piece)


def test_one_character_deltas() -> None:
    """The harshest chunking, on the documents with the most labels."""
    busiest = sorted(corpus(), key=lambda document: -len(document.labels))[:5]
    for document in busiest:
        text = document.text
        pieces, hits = _stream(text, [1] * len(text))
        assert (
            "".join(piece.text for piece in pieces) == moderate(config(*KNOWN_DETECTORS), text).text
        )
        assert all(
            piece.redacted
            for hit in hits
            for piece in pieces
            if piece.start < hit.end and hit.start < piece.end
        )
