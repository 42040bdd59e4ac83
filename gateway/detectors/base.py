"""The shape every built-in detector has.

A detector is a candidate pattern plus an optional validator, like Presidio's pattern
recognizers: the pattern finds what *could* be a card number, the validator (Luhn, mod-97,
phonenumbers) decides. The sluice alone decides what happens to a validated span, so a
detector never sees more than the candidate text and never changes anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

Validator = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class Detector:
    """A compiled, option-bound detector.

    ``pattern`` uses the ``regex`` module's syntax and must never match the empty string.
    It is scanned with partial matching, so a candidate still growing at the end of the
    stream's buffer is held like any other partial match; ``validate`` runs only on
    complete candidates, and a rejected candidate is released as ordinary text.
    Look-behinds may look at most ``gateway.sluice.CONTEXT_CHARS`` characters back.
    """

    name: str
    pattern: str
    validate: Validator | None = None
    ignore_case: bool = False


class DetectorError(ValueError):
    """A policy named an unknown detector or gave it options it does not take.

    A ``ValueError`` so that the policy compiler can report it like any other bad value,
    with the file, line and rule id it knows and we do not.
    """


class DetectorOptions(BaseModel):
    """Base of every detector's options: unknown keys are errors, not silently ignored.

    A typo such as ``region: [GB]`` for ``regions`` would otherwise fall back to the
    default and quietly detect something other than what the policy author asked for.
    """

    # Attribute docstrings become field descriptions in the policy JSON Schema.
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class NoOptions(DetectorOptions):
    """The options of a detector that takes none."""
