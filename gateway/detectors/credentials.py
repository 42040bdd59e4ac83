"""Credentials: API keys and tokens with a vendor prefix, JWTs, PEM private keys, and
high-entropy values assigned to a secret-like name.

Vendor tokens start with a distinctive prefix (``sk-``, ``AKIA``, ``ghp_``, ``xoxb-``,
``AIza``, ``-----BEGIN``), so ordinary prose is never held back for them. Values whose only
mark is their context (``aws_secret_access_key = …``, ``password: …``) are matched after a
look-behind on that context: the span is the value alone, the name stays readable, and
nothing is held before the name has been seen. (The module is not called ``secrets`` so
that it never shadows the standard library's.)
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from functools import partial

from pydantic import Field

from gateway.detectors.base import Detector, DetectorOptions, Validator
from gateway.detectors.randomness import plausible_secret, shannon_entropy

# Random base-62 tokens of 20 characters or more score 3.4 bits per character or more in
# 9,999 cases of 10,000; the floor only has to separate them from filler ("xxxx…").
_TOKEN_MIN_ENTROPY = 3.0
# A token must not start inside a longer identifier: "task-…" contains "sk-".
_START = r"(?<![\w-])"
_END = r"(?![\w-])"
# `name = value`, `name: value`, `"name": "value"`, `name => value`, `name := value`.
_ASSIGNMENT = r"[\"']?[ \t]{0,4}(?:=>|:=|[:=])[ \t]{0,4}[\"']?"
# What the character before a value after a name or "Bearer" can be. Checked before the
# look-behind on the name, it spares that look-behind at most positions (twice as fast).
_AFTER_NAME = r"(?<=[=:\"' \t])"


def _random_after(
    prefix: str, *, min_classes: int = 1, min_entropy: float = _TOKEN_MIN_ENTROPY
) -> Validator:
    """A validator that drops the vendor prefix and asks whether the rest looks random."""
    prefix_re = re.compile(prefix)

    def validate(candidate: str) -> bool:
        match = prefix_re.match(candidate)
        body = candidate[match.end() :] if match else candidate
        return plausible_secret(body, min_entropy=min_entropy, min_classes=min_classes)

    return validate


# --- vendor tokens --------------------------------------------------------------------------

_OPENAI_PREFIX = r"sk-(?:(?:proj|svcacct|admin|None)-)?"
OPENAI_KEY = Detector(
    name="openai_key",
    # "sk-ant-" is Anthropic's; hyphenated words after "sk-" fail the two-class check.
    pattern=rf"{_START}(?!sk-ant-){_OPENAI_PREFIX}[A-Za-z0-9_-]{{20,}}",
    validate=_random_after(_OPENAI_PREFIX, min_classes=2),
)

_ANTHROPIC_PREFIX = r"sk-ant-[a-z]{2,8}[0-9]{2}-"
ANTHROPIC_KEY = Detector(
    name="anthropic_key",
    # api03, admin01, oat01 …: the kind and version are part of the format, so accept any.
    pattern=rf"{_START}{_ANTHROPIC_PREFIX}[A-Za-z0-9_-]{{32,}}",
    validate=_random_after(_ANTHROPIC_PREFIX, min_classes=2),
)

AWS_ACCESS_KEY = Detector(
    name="aws_access_key",
    # AKIA long-term, ASIA temporary (STS), ABIA/ACCA service-specific key ids.
    pattern=r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])",
    # Only 16 random characters: one key id in 10,000 scores below 2.7 bits.
    validate=_random_after("A[A-Z]{3}", min_entropy=2.5),
)

# aws_secret_access_key, AWS_SECRET_KEY, SecretAccessKey (STS JSON), secret-access-key;
# not a bare SECRET_KEY, which frameworks use for their own hex or base-64 secrets.
_AWS_SECRET_NAME = r"(?i:aws[_.-]?secret[_.-]?(?:access[_.-]?)?key|secret[_.-]?access[_.-]?key)"
AWS_SECRET_KEY = Detector(
    name="aws_secret_key",
    # 40 base-64 characters are everywhere (hashes, blobs); only the name makes it a key.
    pattern=(
        rf"{_AFTER_NAME}(?<={_AWS_SECRET_NAME}{_ASSIGNMENT})[A-Za-z0-9/+]{{40}}(?![A-Za-z0-9/+=])"
    ),
    # Base-64 of random bytes: 40 characters without all three classes are not a key.
    validate=_random_after("", min_classes=3),
)

GITHUB_TOKEN = Detector(
    name="github_token",
    # Personal, OAuth, user-to-server, server-to-server and refresh tokens; fine-grained PATs.
    pattern=rf"{_START}(?:gh[pousr]_[A-Za-z0-9]{{36,}}|github_pat_[A-Za-z0-9_]{{82,}})(?!\w)",
    validate=_random_after("gh[pousr]_|github_pat_", min_classes=2),
)

# Bot, user, app, configuration and refresh tokens: dash-separated alphanumeric segments.
_SLACK_TOKEN = r"(?<![\w.-])(?:xoxe\.)?(?:xox[abposre]|xapp)-(?:[A-Za-z0-9]+-){1,6}[A-Za-z0-9]{6,}"
# The webhook's path is the secret; the host stays readable and starts no hold.
_SLACK_WEBHOOK = (
    r"(?<=(?i:hooks\.slack\.com))/(?:services|workflows|triggers)(?:/[A-Za-z0-9]+){2,4}"
)
SLACK_TOKEN = Detector(
    name="slack_token",
    pattern=rf"(?:{_SLACK_TOKEN}|{_SLACK_WEBHOOK})(?![\w/-])",
    validate=_random_after(r"(?:xoxe\.)?x[a-z]{3}-|/[a-z]+/"),
)

GOOGLE_API_KEY = Detector(
    name="google_api_key",
    pattern=rf"{_START}AIza[A-Za-z0-9_-]{{35}}{_END}",
    validate=_random_after("AIza"),
)

STRIPE_KEY = Detector(
    name="stripe_key",
    # Secret and restricted keys, live and test, and webhook signing secrets. Publishable
    # keys (pk_…) are meant to be embedded in web pages and are not detected.
    pattern=(
        rf"{_START}(?:(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{{16,}}|whsec_[A-Za-z0-9+/=]{{32,}})"
        rf"{_END}"
    ),
    validate=_random_after(r"[a-z]+_(?:(?:live|test)_)?"),
)

# --- JSON Web Tokens ------------------------------------------------------------------------


def _b64url_decode(segment: str) -> bytes:
    """Decode one unpadded base64url JWT segment; raises ``binascii.Error`` if it is not."""
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def jwt_valid(candidate: str) -> bool:
    """A header that decodes to a JSON object naming its "alg", and a decodable payload.

    Only unsecured tokens (``"alg": "none"``) may have an empty signature.
    """
    header, payload, signature = candidate.split(".")
    try:
        decoded: object = json.loads(_b64url_decode(header))
        _b64url_decode(payload)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return False
    algorithm = decoded.get("alg") if isinstance(decoded, dict) else None
    if not isinstance(algorithm, str):
        return False
    return (algorithm.lower() == "none") == (signature == "")


JWT = Detector(
    name="jwt",
    # '{"' base64url-encodes to "eyJ", so every JWT header starts with it.
    pattern=r"(?<![\w.-])eyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*(?![\w-])",
    validate=jwt_valid,
)

# --- PEM private keys -----------------------------------------------------------------------

_PEM_LABEL = r"(?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?"
# Base-64, line breaks (also as "\n" inside JSON strings) and the RFC 1421 headers of
# encrypted keys ("Proc-Type: 4,ENCRYPTED"). The lazy body ends at the first END line.
PRIVATE_KEY_PATTERN = (
    rf"-----BEGIN {_PEM_LABEL}-----[A-Za-z0-9+/=\s\\:,._-]*?-----END {_PEM_LABEL}-----"
)
_PEM_BOUNDARY_RE = re.compile(r"-----(?:BEGIN|END) ([A-Z0-9 ]+)-----")
_BASE64_RE = re.compile(r"[A-Za-z0-9+/=]")
_MIN_KEY_BASE64 = 40  # the smallest real key (Ed25519, PKCS #8) has 64; "..." has none


def private_key_valid(candidate: str) -> bool:
    """BEGIN and END name the same key type, and the body holds real key material."""
    boundaries = _PEM_BOUNDARY_RE.findall(candidate)
    if len(boundaries) < 2 or boundaries[0] != boundaries[-1]:
        return False
    body = candidate[candidate.index("-----", 5) + 5 : candidate.rindex("-----END")]
    material = "".join(_BASE64_RE.findall(body.replace("\\n", "\n")))
    return len(material) >= _MIN_KEY_BASE64 and shannon_entropy(material) >= _TOKEN_MIN_ENTROPY


PRIVATE_KEY = Detector(name="private_key", pattern=PRIVATE_KEY_PATTERN, validate=private_key_valid)

# --- generic secrets ------------------------------------------------------------------------


class GenericSecretOptions(DetectorOptions):
    """Options of ``generic_secret``."""

    min_entropy: float = Field(default=3.0, ge=0.0, le=8.0)
    """Shannon entropy floor of the value, in bits per character. A value of n characters
    scores at most log2(n), so a floor of 3.5 already needs 12 distinct characters."""
    min_length: int = Field(default=10, ge=4, le=256)
    """Shortest value considered."""


_SECRET_NAME = (
    r"(?i:pass(?:word|wd|phrase)?|pwd|secret(?:[_-]?key)?|token|api[_-]?key"
    r"|access[_-]?key|auth[_-]?key|private[_-]?key|credentials?)"
)
# Printable ASCII without whitespace, quotes, brackets, separators of lists and URL queries
# (",", ";", "&"), or ":" (which would swallow URLs); a value does not end in "." or ")".
_VALUE_CHAR = r"[A-Za-z0-9!#$%*+\-./=?@^_~()]"
_VALUE_LAST = r"[A-Za-z0-9!#$%*+\-/=?@^_~(]"


def generic_secret_valid(candidate: str, *, min_entropy: float, min_length: int) -> bool:
    """A random-looking value: long, high-entropy, with letters and digits, no filler.

    Requiring a digit rules out identifiers and words (``token = get_token(user)``,
    ``password: required``), which are what most name-value pairs in prose hold.
    """
    return (
        len(candidate) >= min_length
        and any(char.isdigit() for char in candidate)
        and any(char.isalpha() for char in candidate)
        and plausible_secret(candidate, min_entropy=min_entropy)
    )


def build_generic_secret(options: GenericSecretOptions) -> Detector:
    """A generic-secret detector with the policy's entropy and length floors."""
    return Detector(
        name="generic_secret",
        pattern=(
            rf"{_AFTER_NAME}(?:(?<={_SECRET_NAME}{_ASSIGNMENT})|(?<=(?i:bearer)[ ]))"
            rf"{_VALUE_CHAR}{{{options.min_length - 1},}}{_VALUE_LAST}"
        ),
        validate=partial(
            generic_secret_valid, min_entropy=options.min_entropy, min_length=options.min_length
        ),
    )
