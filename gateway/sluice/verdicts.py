"""Values that cross the classifier lane's boundary: verdict requests out, verdicts in.

The lane never calls a classifier itself; it asks for verdicts and is told them, which
keeps the engine free of I/O and lets property tests deliver verdicts in any order.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.sluice.types import Action


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a classifier said about one segment.

    ``error`` is a short reason label (``timeout``, ``http_5xx``, ``unparseable`` ...),
    never text from the classifier: it reaches metrics and logs. A verdict with an error
    is decided by the policy's ``on_error``.
    """

    flagged: bool
    categories: tuple[str, ...] = ()
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


ALLOW = Verdict(flagged=False)


@dataclass(frozen=True, slots=True)
class VerdictRequest:
    """One segment to judge: its text with the policy's redactions already applied.

    ``id`` is unique within a stream; ``context`` is the segment(s) before it, for
    classifiers that judge meaning across a sentence boundary.
    """

    id: int
    rule_id: str
    text: str
    context: str


@dataclass(frozen=True, slots=True)
class Segmenting:
    """How a rule cuts text into segments (docs/classifiers.md, "Segments")."""

    sentences: bool = True
    chars: int = 600  # fixed windows when not ``sentences``; else the longest segment
    first_chars: int = 120  # the first segment ends by here, so the first token is fast
    context: int = 1  # earlier segments sent along as context


@dataclass(frozen=True, slots=True)
class ClassifierRule:
    """A compiled classifier rule, as the pure lane needs it (no URL, no model).

    ``action`` is what the lane does (``FLAG`` in shadow mode); ``intended`` is what the
    policy asked for. ``hold``: text waits for its verdict; otherwise text streams and a
    flag cuts at the next event.
    """

    id: str
    action: Action
    intended: Action
    replacement: str = "[REDACTED]"
    hold: bool = True
    segmenting: Segmenting = Segmenting()
