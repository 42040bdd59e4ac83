"""Values that cross the sluice's boundary: rules in, pieces and hits out.

The sluice sees plain text and offsets only. Offsets in ``Piece`` and ``Hit`` count
characters of the channel's *input* text (what upstream sent), so an adapter can map
released text back onto whatever carried it (tokens, logprobs, JSON strings).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field


class Action(enum.IntEnum):
    """What a hit does; the integer order is the tie-break strength (block wins)."""

    FLAG = 1
    REDACT = 2
    BLOCK = 3

    @property
    def label(self) -> str:
        return self.name.lower()


class Reason(enum.StrEnum):
    """Why a hit exists, so hold-limit and error cut-offs can be counted apart from rules."""

    MATCH = "match"
    HOLD_LIMIT = "hold_limit"
    ERROR = "error"


HOLD_LIMIT_RULE = "sluice.hold_limit"
ERROR_RULE = "sluice.error"


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled pattern rule.

    ``action`` is what the sluice does; ``intended`` is what the policy asked for, which
    differs only in shadow mode (action FLAG) and drives overlap resolution there, so a
    shadow policy reports exactly the hits its enforcing twin would act on.
    """

    id: str
    pattern: str
    action: Action
    replacement: str = "[REDACTED]"
    ignore_case: bool = False
    validate: Callable[[str], bool] | None = None
    intended: Action | None = None

    @property
    def strength(self) -> Action:
        return self.intended if self.intended is not None else self.action


@dataclass(frozen=True, slots=True)
class Hit:
    """A decided hit: the span ``[start, end)`` of the channel's input text.

    ``intended`` is what the policy asked for where it differs from ``action``: a shadow
    policy's redact or block recorded as a flag. ``None`` means "as ``action`` says".

    ``matched`` is the span's text where the sluice had it at hand (pattern lanes), for
    the audit log's keyed hash and its opt-in text only; it is left out of ``repr`` and
    comparisons, so a hit printed or compared never shows or weighs it.
    """

    rule_id: str
    action: Action
    start: int
    end: int
    reason: Reason = Reason.MATCH
    intended: Action | None = None
    matched: str = field(default="", repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Piece:
    """Released output for the input span ``[start, end)``.

    ``text`` equals the input span unless the span was redacted, in which case it is the
    replacement; ``redacted`` says which, so adapters can drop per-token data (logprobs)
    that would reveal the original.
    """

    start: int
    end: int
    text: str
    redacted: bool = False


@dataclass(frozen=True, slots=True)
class Step:
    """What one ``feed`` or ``finish`` released.

    ``cut`` is set on the step that ends the channel because of a block (or a fail-closed
    error); nothing is released after it. ``notice`` is the policy's cutoff notice, kept
    apart from ``pieces`` because it covers no input text.
    """

    pieces: tuple[Piece, ...] = ()
    hits: tuple[Hit, ...] = ()
    cut: bool = False
    notice: str = ""
    held: int = field(default=0)

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.pieces) + self.notice
