"""Phone numbers: a broad candidate pattern, decided by Google's libphonenumber metadata.

Digit groups are as varied as the world's numbering plans ("+44 (0)20 7946 0958",
"(0406)-812415", "06 12 34 56 78"), so the pattern accepts any run of digit groups and
``phonenumbers`` decides, region by region, whether the number is dialable as written,
including whether a national prefix that the region requires is present. On top of that
the validator rejects shapes that a numbering plan may happen to accept but that prose uses
for other things: dates, dotted quads, ISBNs, SSNs and, unless asked for, bare digit runs.
"""

from __future__ import annotations

import re
from functools import partial

import phonenumbers
from pydantic import field_validator

from gateway.detectors.base import Detector, DetectorOptions
from gateway.detectors.iban import NOT_INSIDE_IBAN

# "+44 ", "+1-", "+4930…": the country code's digits may run on into the number's.
_INTERNATIONAL = r"\+(?<![\w+]\+)[0-9]{1,3}[ .-]?"
# Not inside a word, a version, a path, a "#123" reference, a time ("10:30:45.123456"),
# an IBAN, or a grouped number such as a card number ("2275 5811 0533 2319"). The
# look-ahead comes first so that ``regex`` tries the look-behinds only where a number can
# start (three times faster than look-behinds first).
_NATIONAL_START = rf"(?=[0-9(])(?<![\w+.,/#-])(?<![0-9][ ./:-]){NOT_INSIDE_IBAN}"
# The digits after any "(0)" and "(415)": one kind of separator throughout, so that a number
# does not run on into a neighbour written differently ("+33 1 80 96 42 17 68.170.197.207").
# Possessive runs make the split into groups unique, so a long digit string costs one pass.
_BODY = "|".join(rf"[0-9]++(?:{separator}[0-9]++){{0,7}}" for separator in (" ", "-", r"\.", "/"))
_EXTENSION = r"[ ]?(?:x|ext\.?|\#)[ ]?[0-9]{1,6}"
PHONE_PATTERN = (
    rf"(?:{_INTERNATIONAL}|{_NATIONAL_START})"
    rf"(?:\(0\)[ ]?)?(?:\([0-9]{{1,5}}\)[ .-]?)?(?:{_BODY})(?:{_EXTENSION})?"
    # Not followed by more of a word, by ":30" (a time after a date) or by a differently
    # separated continuation; a space and digits may follow (a second number).
    r"(?!\w|[.:/-][0-9])"
)

_EXTENSION_RE = re.compile(rf"(?:{_EXTENSION})$")
# Shapes that start what a phone number never starts with: a date, possibly followed by a
# time (2024-01-15, 15.01.2024, 01/15/24 10), or an IPv4 address (10.0.0.1/24).
_DATE_RE = re.compile(
    r"(?:[0-9]{4}([./-])[0-9]{1,2}\1[0-9]{1,2}|[0-9]{1,2}([./-])[0-9]{1,2}\2(?:[0-9]{4}|[0-9]{2}))"
    r"(?![0-9])"
)
_DOTTED_QUAD_RE = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?![0-9])")
_SSN_SHAPE_RE = re.compile(r"[0-9]{3}([ -])[0-9]{2}\1[0-9]{4}")
_SEPARATORS = frozenset(" ./-()")
# E.164 allows at most 15 digits; no plan has numbers shorter than 7 digits in the
# formats people write (short service codes such as 112 are not personal data).
_MIN_DIGITS, _MAX_DIGITS = 7, 15


class PhoneOptions(DetectorOptions):
    """Options of ``phone``."""

    regions: tuple[str, ...] = ("US",)
    """ISO 3166 regions whose national formats are accepted ("(415) 555-2671" for US,
    "020 7946 0958" for GB). Numbers written with "+" and a country code are accepted for
    every country."""
    bare: bool = False
    """Also accept national numbers written as one digit run ("4155552671"); off by
    default because order numbers, ids and timestamps look the same."""

    @field_validator("regions")
    @classmethod
    def _known_regions(cls, regions: tuple[str, ...]) -> tuple[str, ...]:
        """Reject regions that libphonenumber has no metadata for, naming them."""
        if not regions:
            raise ValueError("at least one region is required")
        regions = tuple(region.upper() for region in regions)
        unknown = [region for region in regions if region not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            raise ValueError(
                f"unknown region(s) {', '.join(unknown)}; "
                "use ISO 3166 alpha-2 codes such as US, GB, DE, FR"
            )
        return regions


def _plausible_shape(number: str, *, bare: bool) -> bool:
    """Cheap checks before libphonenumber: digit count, grouping, and look-alike shapes."""
    digits = sum(char.isdigit() for char in number)
    if not _MIN_DIGITS <= digits <= _MAX_DIGITS:
        return False
    grouped = any(char in _SEPARATORS for char in number)
    if not (grouped or bare or number.startswith("+")):
        return False
    last_group = re.split(r"[ ./()-]", number)[-1]
    return not (
        len(last_group) == 1  # ISBN-10 and ISBN-13 end in a one-digit check group
        or _DATE_RE.match(number)
        or _DOTTED_QUAD_RE.match(number)
        or _SSN_SHAPE_RE.fullmatch(number)
    )


def phone_valid(candidate: str, *, regions: tuple[str, ...], bare: bool = False) -> bool:
    """Whether ``candidate`` is, as a whole, a valid number in one of ``regions``.

    ``PhoneNumberMatcher`` at leniency VALID is libphonenumber's own test for numbers in
    text: valid number, only allowed punctuation, national prefix present where the region
    requires one. It must cover the whole candidate, extension included. It is several times
    slower than ``parse`` and ``is_valid_number``, which therefore sort out the invalid
    candidates first.
    """
    number = _EXTENSION_RE.sub("", candidate)
    if not _plausible_shape(number, bare=bare):
        return False
    # A "+" number names its own country; the region only matters for national formats.
    for region in regions[:1] if number.startswith("+") else regions:
        try:
            parsed = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if not phonenumbers.is_valid_number(parsed):
            continue
        matcher = phonenumbers.PhoneNumberMatcher(
            candidate, region, leniency=phonenumbers.Leniency.VALID
        )
        if any(match.start == 0 and match.end == len(candidate) for match in matcher):
            return True
    return False


def build_phone(options: PhoneOptions) -> Detector:
    """A phone detector bound to the policy's regions."""
    return Detector(
        name="phone",
        pattern=PHONE_PATTERN,
        validate=partial(phone_valid, regions=options.regions, bare=options.bare),
    )
