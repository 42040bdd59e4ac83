"""Built-in detectors vs Microsoft Presidio's pattern recognizers, on one corpus, in one run.

    .venv/bin/python bench/detectors.py [--repeat 3]

Both sides scan the labelled corpus of tests/detector_corpus.py, document by document, and
are scored on exact spans (tests/detector_eval.py). Ours run through the whole-text
reference scanner (regex search + validator, resume one character after a rejection);
Presidio's recognizers are instantiated directly, without the spaCy NLP engine, and asked
through their own ``analyze(text, entities, nlp_artifacts=None)``, which is their regex +
validation path. Presidio keeps every result it returns (the analyzer's default score
threshold is 0), and scans phone numbers for the same regions as ours.

Throughput is corpus characters per second of the best of ``--repeat`` timed runs; the
ratio column divides ours by Presidio's, and the last line compares the totals of the six
comparable detectors, so that machine noise cancels. Presidio's single IP recognizer is
compared with our ipv4 and ipv6 detectors together. Presidio is optional: without it only
our columns are printed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.detectors import KNOWN_DETECTORS, build_detector  # noqa: E402 (needs ROOT on the path)
from tests.detector_corpus import DETECTOR_OPTIONS, PHONE_REGIONS, Document, generate_corpus  # noqa: E402
from tests.detector_eval import Score, compile_detector, gold_spans, scan  # noqa: E402

Spans = list[tuple[int, int]]

# Presidio entity -> the detectors of ours it is compared with.
PRESIDIO_ENTITIES = {
    "EMAIL_ADDRESS": ("email",),
    "PHONE_NUMBER": ("phone",),
    "CREDIT_CARD": ("credit_card",),
    "IBAN_CODE": ("iban",),
    "US_SSN": ("us_ssn",),
    "IP_ADDRESS": ("ipv4", "ipv6"),
}


@dataclass
class Run:
    """What one side reported for one row, and how long it took."""

    spans: dict[str, list[Spans]]  # detector -> spans per document
    seconds: float


def best_of(repeat: int, work: Callable[[], dict[str, list[Spans]]]) -> Run:
    """Run ``work`` ``repeat`` times; keep its result and its fastest time."""
    fastest, result = float("inf"), {}
    for _ in range(repeat):
        started = time.perf_counter()
        result = work()
        fastest = min(fastest, time.perf_counter() - started)
    return Run(result, fastest)


def ours(names: Sequence[str], corpus: Sequence[Document], repeat: int) -> Run:
    detectors = [build_detector(name, DETECTOR_OPTIONS.get(name)) for name in names]
    compiled = [compile_detector(detector) for detector in detectors]

    def work() -> dict[str, list[Spans]]:
        return {
            detector.name: [scan(detector, document.text, pattern) for document in corpus]
            for detector, pattern in zip(detectors, compiled, strict=True)
        }

    return best_of(repeat, work)


def presidio_recognizers() -> dict[str, Any] | None:
    """Presidio's pattern recognizers by entity, or None when presidio-analyzer is absent."""
    try:
        from presidio_analyzer.predefined_recognizers import (
            CreditCardRecognizer,
            EmailRecognizer,
            IbanRecognizer,
            IpRecognizer,
            PhoneRecognizer,
            UsSsnRecognizer,
        )
    except ImportError:
        return None
    # EmailRecognizer's tldextract tries to download the public suffix list once, then
    # falls back to its bundled copy; the warm-up below takes that hit outside the timing.
    logging.getLogger("tldextract").setLevel(logging.CRITICAL)
    return {
        "EMAIL_ADDRESS": EmailRecognizer(),
        "PHONE_NUMBER": PhoneRecognizer(supported_regions=PHONE_REGIONS),
        "CREDIT_CARD": CreditCardRecognizer(),
        "IBAN_CODE": IbanRecognizer(),
        "US_SSN": UsSsnRecognizer(),
        "IP_ADDRESS": IpRecognizer(),
    }


def presidio(entity: str, recognizer: Any, corpus: Sequence[Document], repeat: int) -> Run:
    names = PRESIDIO_ENTITIES[entity]
    recognizer.analyze("warm-up a@b.com 10.0.0.1", [entity], None)

    def work() -> dict[str, list[Spans]]:
        found: dict[str, list[Spans]] = {name: [] for name in names}
        for document in corpus:
            results = recognizer.analyze(document.text, [entity], None)
            spans = sorted({(result.start, result.end) for result in results})
            for name in names:
                # The IP recognizer reports both families; split them like our detectors.
                is_v6 = name == "ipv6"
                found[name].append(
                    [
                        s
                        for s in spans
                        if len(names) == 1 or (":" in document.text[s[0] : s[1]]) == is_v6
                    ]
                )
        return found

    return best_of(repeat, work)


def score(name: str, spans: list[Spans], corpus: Sequence[Document]) -> Score:
    result = Score()
    for document, found in zip(corpus, spans, strict=True):
        result.add(document.text, found, gold_spans(document, name))
    return result


def speed(chars: int, seconds: float) -> str:
    return (
        f"{chars / seconds / 1e6:.2f} M"
        if chars / seconds >= 1e6
        else f"{chars / seconds / 1e3:.0f} k"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per row (best is kept)")
    args = parser.parse_args()

    corpus = generate_corpus()
    chars = sum(len(document.text) for document in corpus)
    labels = sum(len(document.labels) for document in corpus)
    print(f"corpus: {len(corpus)} documents, {chars:,} characters, {labels:,} labels\n")

    recognizers = presidio_recognizers()
    if recognizers is None:
        print("presidio-analyzer is not installed: showing our detectors only.")
        print("  pip install presidio-analyzer   (or: pip install -e '.[bench]')\n")

    print(
        "| detector | P | R | F1 | Presidio P | Presidio R | Presidio F1 "
        "| chars/s | Presidio chars/s | speed-up |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    ours_total = presidio_total = 0.0
    compared = set()
    for entity, names in PRESIDIO_ENTITIES.items():
        mine = ours(names, corpus, args.repeat)
        theirs = presidio(entity, recognizers[entity], corpus, args.repeat) if recognizers else None
        for name in names:
            compared.add(name)
            own = score(name, mine.spans[name], corpus)
            row = [name, f"{own.precision:.3f}", f"{own.recall:.3f}", f"{own.f1:.3f}"]
            if theirs is not None:
                other = score(name, theirs.spans[name], corpus)
                row += [f"{other.precision:.3f}", f"{other.recall:.3f}", f"{other.f1:.3f}"]
                row += [speed(chars * len(names), mine.seconds), speed(chars, theirs.seconds)]
                row += [f"{theirs.seconds / mine.seconds:.0f}x"]
            else:
                row += ["—", "—", "—", speed(chars * len(names), mine.seconds), "—", "—"]
            print("| " + " | ".join(row) + " |")
        ours_total += mine.seconds
        presidio_total += theirs.seconds if theirs is not None else 0.0

    for name in (name for name in KNOWN_DETECTORS if name not in compared):
        mine = ours([name], corpus, args.repeat)
        own = score(name, mine.spans[name], corpus)
        row = [name, f"{own.precision:.3f}", f"{own.recall:.3f}", f"{own.f1:.3f}", "—", "—", "—"]
        print("| " + " | ".join([*row, speed(chars, mine.seconds), "—", "—"]) + " |")

    print()
    if recognizers is not None:
        print(
            f"comparable detectors, all together: ours {ours_total:.3f} s, Presidio "
            f"{presidio_total:.3f} s over {chars:,} characters: {presidio_total / ours_total:.1f}x"
        )
    print("(ipv4 and ipv6 share one timing row: Presidio's IP recognizer covers both; our")
    print(" chars/s for them counts the corpus once per detector, the speed-up the pair.)")


if __name__ == "__main__":
    main()
