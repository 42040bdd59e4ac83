"""Checking a presented ``Authorization: Bearer`` credential against the configured keys.

One function for the client keys and the metrics key, so both get the same care: the
comparison takes the same time whatever the bytes, and a header aiohttp could not decode
as UTF-8 (it keeps such bytes as surrogates) or that is present twice is simply a wrong
credential, never an exception.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from multidict import CIMultiDictProxy
from pydantic import SecretStr


def presents_key(headers: CIMultiDictProxy[str], keys: Iterable[SecretStr]) -> bool:
    """Whether the request carries exactly one ``Authorization: Bearer <key>`` of ``keys``.

    Two ``Authorization`` headers are refused: the gateway would check one, and an
    upstream could read the other.
    """
    values = headers.getall("Authorization", [])
    if len(values) != 1:
        return False
    scheme, _, presented = values[0].partition(" ")
    if scheme.lower() != "bearer":
        return False
    # The raw bytes again (aiohttp decodes with surrogateescape), so nothing here can raise.
    token = presented.strip().encode("utf-8", "surrogateescape")
    matched = False
    for key in keys:  # every key is compared, so timing does not tell which one matched
        matched |= hmac.compare_digest(token, key.get_secret_value().encode())
    return matched
