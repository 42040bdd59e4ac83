"""IBANs: per-country lengths from the SWIFT IBAN registry, then the mod-97 check.

The pattern is built from the length table so that each country's candidate has exactly
that country's length. A looser "2 letters, 2 digits, groups of 4" pattern would run on
into a following number ("DE89370400440532013000 1234"), fail the checksum and leave the
IBAN undetected, because the sluice does not try shorter candidates at the same start.
"""

from __future__ import annotations

from collections import defaultdict

from gateway.detectors.base import Detector
from gateway.detectors.checksums import iban_mod97_valid

IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20,
    "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
    "YE": 30,
}  # fmt: skip


def _iban_pattern() -> str:
    """Country code and check digits, then one BBAN alternative per IBAN length.

    Each alternative is gated by a look-behind on the countries of that length. Paper format
    groups the IBAN in fours ("DE89 3704 0044 0532 0130 00"), so a space may precede every
    group; ``iban_valid`` then insists on all of them or none. The pattern starts with
    character classes and checks the word boundary only after four characters, which lets
    ``regex`` scan quickly (a leading look-behind or alternation makes it 2-4 times slower).
    """
    countries_by_length: dict[int, list[str]] = defaultdict(list)
    for country, length in IBAN_LENGTHS.items():
        countries_by_length[length].append(country)
    alternatives = []
    for length, countries in sorted(countries_by_length.items()):
        full_groups, rest = divmod(length - 4, 4)
        bban = f"(?: ?[A-Z0-9]{{4}}){{{full_groups}}}"
        if rest:
            bban += f" ?[A-Z0-9]{{{rest}}}"
        alternatives.append(f"(?<=(?:{'|'.join(sorted(countries))})[0-9]{{2}}){bban}")
    return rf"[A-Z]{{2}}[0-9]{{2}}(?<!\w....)(?:{'|'.join(alternatives)})(?![A-Za-z0-9])"


IBAN_PATTERN = _iban_pattern()

# For the number detectors: not at a later group of an IBAN in paper format, where
# "PL74 4624 1755 2440 8094 0161 7640" holds a Luhn-valid 16-digit run and phone numbers.
NOT_INSIDE_IBAN = r"(?<![A-Z]{2}[0-9]{2}(?: [A-Z0-9]{4}){0,7} )"


def iban_valid(candidate: str) -> bool:
    """Accept a compact or evenly grouped IBAN of its country's length that passes mod-97."""
    compact = candidate.replace(" ", "")
    if " " in candidate and candidate != " ".join(
        compact[i : i + 4] for i in range(0, len(compact), 4)
    ):
        return False
    return IBAN_LENGTHS.get(compact[:2]) == len(compact) and iban_mod97_valid(compact)


IBAN = Detector(name="iban", pattern=IBAN_PATTERN, validate=iban_valid)
