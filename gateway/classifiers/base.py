"""What every classifier takes and gives: one segment in, one ``Verdict`` out, never a raise.

The lane that asks for verdicts runs inside a stream; a classifier that raised would take
the stream down with it. So failures are values here (``Verdict.error``, a short label
that is safe for metrics and logs), and only cancellation escapes, because the stream
that asked may be gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from gateway.sluice.verdicts import Verdict

Role = Literal["assistant", "user"]


@dataclass(frozen=True, slots=True)
class ClassifyInput:
    """One segment to judge, with what a model needs to read it in its place.

    ``context`` is earlier text of the same message (it may change what the segment
    means: "how to kill" + "a process"), ``prompt`` the user's last message (a guard
    judges an answer *to* something). ``api_key`` is the client's own bearer key, the
    last credential to fall back on. ``role`` says whose text ``text`` is: ``user`` for
    input rules, so a guard judges it as a prompt, not as an answer.
    """

    text: str
    context: str = ""
    prompt: str = ""
    api_key: str | None = None
    role: Role = "assistant"

    @property
    def passage(self) -> str:
        """Context and segment as they stood in the message (segments are adjacent cuts)."""
        return self.context + self.text


class Classifier(Protocol):
    """Anything that judges a segment; ``classify`` never raises but ``CancelledError``."""

    async def classify(self, item: ClassifyInput) -> Verdict: ...


class ClassifierError(ValueError):
    """A classifier spec that cannot be built (unknown local name, unset key variable).

    A ``ValueError`` so that policy loading reports it like any other bad value, at load
    time, with the file and rule it knows and we do not.
    """


def counted(found: tuple[str, ...], wanted: frozenset[str] | None) -> tuple[str, ...]:
    """The found categories that count: all of them, or those ``wanted`` names (any case)."""
    if wanted is None:
        return found
    return tuple(c for c in found if c.casefold() in wanted)


def wanted_set(categories: object) -> frozenset[str] | None:
    """A spec's category list as a case-folded set; ``None`` (any category) otherwise."""
    if isinstance(categories, list):
        return frozenset(str(c).casefold() for c in categories)
    return None
