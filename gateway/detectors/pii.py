"""Personal data with a fixed shape: e-mail addresses, card numbers, US SSNs, IP addresses.

Phone numbers (``phone.py``) and IBANs (``iban.py``) need tables of their own.
Every pattern guards its start with a negative look-behind so that a candidate never starts
inside a longer word or number: the sluice resumes one character after a rejected
candidate, and without the guard it would find a shorter, wrong candidate inside it.
Digits are ``[0-9]``, not ``\\d``, which would also admit other scripts' digits.
"""

from __future__ import annotations

import ipaddress

from gateway.detectors.base import Detector, DetectorOptions
from gateway.detectors.checksums import luhn_valid
from gateway.detectors.iban import NOT_INSIDE_IBAN

# --- e-mail ---------------------------------------------------------------------------------

_EMAIL_LOCAL_CHAR = "[A-Za-z0-9_%+-]"
_EMAIL_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL_PATTERN = (
    rf"(?<![\w.%+-]){_EMAIL_LOCAL_CHAR}+(?:\.{_EMAIL_LOCAL_CHAR}+)*"
    # Not followed by ":path", which makes "git@github.com:org/repo" an SSH remote.
    rf"@(?:{_EMAIL_LABEL}\.)+[A-Za-z]{{2,63}}(?![\w-]|:[\w/])"
)
# Image names with a resolution suffix ("icon@2x.png") have the shape of an address.
_FILE_EXTENSIONS = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "tif"})


def email_valid(candidate: str) -> bool:
    """Reject image file names that have the shape of an address."""
    return candidate.rsplit(".", 1)[1].lower() not in _FILE_EXTENSIONS


EMAIL = Detector(name="email", pattern=EMAIL_PATTERN, validate=email_valid)

# --- payment cards --------------------------------------------------------------------------

# Grouped 4-4-4-4 (and 4-4-4-4-3 for 19 digits), 4-6-5 (Amex), 4-6-4 (Diners), or 14 to 19
# bare digits. The separator may be a space or a dash; `card_number_valid` insists on one
# kind only, since the pattern cannot say "the same as before" without a back-reference.
CREDIT_CARD_PATTERN = (
    rf"(?<![\w-]){NOT_INSIDE_IBAN}[2-6][0-9]{{3}}"
    r"(?:(?:[ -][0-9]{4}){3}(?:[ -][0-9]{3})?|[ -][0-9]{6}[ -][0-9]{4,5}|[0-9]{10,15})"
    r"(?![\w-])"
)

# (lowest, highest, lengths): issuer identification ranges of the brands whose cards
# circulate widely, compared on the candidate's first len(lowest) digits. No 13-digit
# numbers: Visa retired them, and one EAN-13 barcode in ten passes Luhn.
_CARD_RANGES: tuple[tuple[str, str, frozenset[int]], ...] = (
    ("4", "4", frozenset({16, 19})),  # Visa
    ("51", "55", frozenset({16})),  # Mastercard
    ("2221", "2720", frozenset({16})),  # Mastercard 2-series
    ("34", "34", frozenset({15})),  # American Express
    ("37", "37", frozenset({15})),
    ("300", "305", frozenset({14, 16, 19})),  # Diners Club
    ("36", "36", frozenset({14, 16, 19})),
    ("38", "39", frozenset({14, 16, 19})),
    ("6011", "6011", frozenset({16, 17, 18, 19})),  # Discover
    ("644", "649", frozenset({16, 17, 18, 19})),
    ("65", "65", frozenset({16, 17, 18, 19})),
    ("3528", "3589", frozenset({16, 17, 18, 19})),  # JCB
    ("62", "62", frozenset({16, 17, 18, 19})),  # UnionPay
    ("2200", "2204", frozenset({16, 17, 18, 19})),  # Mir
    ("50", "50", frozenset({14, 15, 16, 17, 18, 19})),  # Maestro
    ("56", "58", frozenset({14, 15, 16, 17, 18, 19})),
    ("60", "69", frozenset({14, 15, 16, 17, 18, 19})),
)


def card_brand_known(digits: str) -> bool:
    """Whether ``digits`` has the prefix and length of a card brand in circulation."""
    return any(
        low <= digits[: len(low)] <= high and len(digits) in lengths
        for low, high, lengths in _CARD_RANGES
    )


def card_number_valid(candidate: str) -> bool:
    """Accept a grouped or bare card number with one kind of separator, a known brand, Luhn."""
    if " " in candidate and "-" in candidate:
        return False
    digits = candidate.replace(" ", "").replace("-", "")
    return card_brand_known(digits) and luhn_valid(digits)


CREDIT_CARD = Detector(name="credit_card", pattern=CREDIT_CARD_PATTERN, validate=card_number_valid)

# --- US social security numbers -------------------------------------------------------------


class UsSsnOptions(DetectorOptions):
    """Options of ``us_ssn``."""

    bare: bool = False
    """Also match nine digits without separators (any nine-digit id then becomes a candidate)."""


_SSN_SEPARATED = "-[0-9]{2}-|[ ][0-9]{2}[ ]"
# Numbers the SSA voided after they appeared in advertising or became the usual example.
_SAMPLE_SSNS = frozenset({"078051120", "219099999", "123456789"})


def ssn_valid(candidate: str) -> bool:
    """Reject numbers the SSA never issues: area 000, 666 or 900-999, group 00, serial 0000."""
    digits = candidate.replace("-", "").replace(" ", "")
    if len(digits) != 9 or not digits.isascii() or not digits.isdigit():
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return (
        area not in {"000", "666"}
        and area[0] != "9"
        and group != "00"
        and serial != "0000"
        and digits not in _SAMPLE_SSNS
    )


def build_us_ssn(options: UsSsnOptions) -> Detector:
    """An SSN detector; bare nine-digit runs are candidates only when the policy asks."""
    middle = f"{_SSN_SEPARATED}|[0-9]{{2}}" if options.bare else _SSN_SEPARATED
    # The first digit is consumed before the look-behind: ``regex`` then scans for digits
    # quickly instead of evaluating the look-behind at every position (five times faster).
    pattern = rf"[0-9](?<![\w-][0-9])[0-9]{{2}}(?:{middle})[0-9]{{4}}(?![\w-])"
    return Detector(name="us_ssn", pattern=pattern, validate=ssn_valid)


# --- IP addresses ---------------------------------------------------------------------------

# No leading zeros: "010" is octal to some parsers and decimal to others.
_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
IPV4_PATTERN = (
    # Not inside a longer dotted number, and not a version number written out in words.
    # Nor the IPv4 tail of an IPv6 address (::ffff:192.0.2.1), which is ipv6's.
    rf"(?<![\w.])(?<!:[0-9A-Fa-f]{{0,4}}:)(?<!(?i:version|release|build)[ ]?)"
    rf"{_OCTET}(?:\.{_OCTET}){{3}}(?!\w|\.[0-9])"
)

IPV4 = Detector(name="ipv4", pattern=IPV4_PATTERN)

# A broad candidate, decided by ``ipaddress``: groups of hex digits and colons, maybe an
# IPv4 tail. It starts with at most four hex digits and a colon, a required literal that lets
# ``regex`` skip ahead to the next colon instead of trying every position, which makes it
# tens of times faster than spelling out the eight compressed forms. The guards keep
# "std::", "a::b" and a sentence's closing colon or full stop out of the span.
IPV6_PATTERN = (
    rf"(?<![\w:.])[0-9A-Fa-f]{{0,4}}:[0-9A-Fa-f:]*(?:(?<=:){_OCTET}(?:\.{_OCTET}){{3}})?"
    r"(?<![^:]:)(?!\w|\.[0-9]|:[0-9A-Fa-f:])"
)


def ipv6_valid(candidate: str) -> bool:
    """Accept what ``ipaddress`` parses, with at least two groups (or an IPv4 tail).

    That rules out times (12:30:45), MAC addresses, "::" and "::1", which name no host, and
    slices such as ``a[::2]``.
    """
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return "." in candidate or sum(1 for group in candidate.split(":") if group) >= 2


IPV6 = Detector(name="ipv6", pattern=IPV6_PATTERN, validate=ipv6_valid)
