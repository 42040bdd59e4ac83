"""Check-digit algorithms that turn a digit-shaped candidate into a yes or no.

They take the candidate's significant characters only (separators already removed), so
that each algorithm is testable on its own against published test vectors.
"""

from __future__ import annotations

_IBAN_LETTER_VALUES = {
    ord(letter): str(value) for value, letter in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 10)
}


def luhn_valid(digits: str) -> bool:
    """Whether ``digits`` (ASCII digits only) passes the Luhn mod-10 check.

    Card numbers carry a Luhn check digit, so nine in ten random digit runs of the right
    length and prefix are rejected here.
    """
    if not digits.isascii() or not digits.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def iban_mod97_valid(iban: str) -> bool:
    """Whether the compact, upper-case ``iban`` passes the ISO 13616 mod-97 check.

    The country code and check digits move to the end, letters become 10..35, and the
    resulting integer must leave remainder 1 modulo 97: one random string in 97 passes.
    """
    if len(iban) < 5 or not iban.isascii() or not iban.isalnum():
        return False
    rearranged = (iban[4:] + iban[:4]).upper().translate(_IBAN_LETTER_VALUES)
    return int(rearranged) % 97 == 1
