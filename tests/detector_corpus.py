"""A labelled corpus for the built-in detectors, generated reproducibly.

Positives come from Faker (fixed seeds, several locales) where Faker's values are real in
shape (e-mail addresses, phone numbers, IBANs, card numbers of most brands, SSNs, IP
addresses), and from small generators here where they are not (vendor tokens, JWTs, PEM
blocks, card brands Faker gets wrong). Hard negatives are written out by hand or generated:
order numbers, versions, timestamps, UUIDs, git SHAs, numbers in prose, Luhn-failing card
numbers, base-64 blobs, placeholders from documentation.

A label is ``(detector, start, end)``: the exact span that detector should report. One span
may carry two labels when two detectors are right about it: a token assigned to
``api_key = …`` is both that vendor's token and a ``generic_secret``.

The corpus is generated at test time (about 1 s); the seed and the installed Faker version
fix it completely. Its size is in ``CORPUS_DOCUMENTS``.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import ipaddress
import json
import random
import string
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import phonenumbers
from faker import Faker

from gateway.detectors.checksums import luhn_valid

SEED = 20240607
CORPUS_DOCUMENTS = 900
SEGMENTS_PER_DOCUMENT = 8

# The options the corpus is scored with: phone numbers come from these regions' locales.
PHONE_REGIONS = ("US", "GB", "DE", "FR")
DETECTOR_OPTIONS: dict[str, dict[str, object]] = {"phone": {"regions": list(PHONE_REGIONS)}}

PROSE_LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL")
_NATIONAL_PHONE_LOCALES = {"en_US": "US", "en_GB": "GB", "de_DE": "DE", "fr_FR": "FR"}
# Locales whose numbers are used only when written internationally ("+39 …").
_INTERNATIONAL_PHONE_LOCALES = ("it_IT", "es_ES", "nl_NL", "pt_PT", "pl_PL", "en_AU", "sv_SE")
# Locales whose Faker IBANs are real IBANs of their country (others produce placeholders).
_IBAN_LOCALES = (
    "az_AZ", "cs_CZ", "da_DK", "de_AT", "de_CH", "de_DE", "el_GR", "en_GB", "en_IE", "es_ES",
    "fi_FI", "fr_FR", "it_IT", "mk_MK", "nl_BE", "nl_NL", "no_NO", "pl_PL", "pt_BR", "pt_PT",
    "ro_RO", "ru_RU", "sk_SK", "tr_TR", "uk_UA",
)  # fmt: skip

T = TypeVar("T")

ALNUM = string.ascii_letters + string.digits
BASE64 = ALNUM + "+/"
BASE64URL = ALNUM + "-_"
HEX = "0123456789abcdef"


@dataclass(frozen=True, order=True)
class Label:
    """What a detector should report: its name and the exact span."""

    detector: str
    start: int
    end: int


@dataclass(frozen=True)
class Document:
    """One text of the corpus and every span some detector should report in it."""

    text: str
    labels: frozenset[Label]


@dataclass
class _Segment:
    """A piece of a document with its labels relative to the piece."""

    text: str
    labels: list[tuple[str, int, int]] = field(default_factory=list)


def _segment(template: str, value: str, *detectors: str) -> _Segment:
    """``template`` with ``{}`` replaced by ``value``, labelled for ``detectors``."""
    start = template.index("{}")
    text = template.replace("{}", value, 1)
    return _Segment(text, [(name, start, start + len(value)) for name in detectors])


class _Generator:
    """Draws values and sentences from one seeded RNG and seeded Faker instances."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self._fakers: dict[str, Faker] = {}
        self._seed = seed

    def faker(self, locale: str) -> Faker:
        if locale not in self._fakers:
            fake = Faker(locale)
            fake.seed_instance(self._seed)
            self._fakers[locale] = fake
        return self._fakers[locale]

    def token(self, alphabet: str, length: int) -> str:
        """A random token with lower case, upper case and digits where the alphabet has them."""
        while True:
            value = "".join(self.rng.choice(alphabet) for _ in range(length))
            classes = (str.islower, str.isupper, str.isdigit)
            if all(any(test(c) for c in value) for test in classes if any(map(test, alphabet))):
                return value

    def moment(self) -> datetime.datetime:
        """A timestamp with microseconds; Faker's own date methods depend on today."""
        return datetime.datetime(2000, 1, 1) + datetime.timedelta(
            seconds=self.rng.randrange(10**9), microseconds=self.rng.randrange(10**6)
        )

    def prose(self) -> str:
        return self.faker(self.rng.choice(PROSE_LOCALES)).sentence(nb_words=self.rng.randint(4, 14))

    def pick(self, options: Sequence[T]) -> T:
        return self.rng.choice(options)


# --- PII positives ----------------------------------------------------------------------------

_PII_TEMPLATES = (
    "{}",
    "Contact: {}.",
    "({})",
    "'{}'",
    "<{}>",
    "- {}\n",
    "{}, then",
    '"{}"',
    "value={};",
)


def _emails(gen: _Generator) -> Iterator[_Segment]:
    locales = ("en_US", "en_GB", "de_DE", "fr_FR", "it_IT", "es_ES")
    while True:
        fake = gen.faker(gen.pick(locales))
        kind = gen.rng.randrange(5)
        if kind == 0:
            value = fake.email()
        elif kind == 1:
            value = fake.free_email()
        elif kind == 2:
            value = fake.company_email()
        elif kind == 3:
            value = f"{fake.first_name()}.{fake.last_name()}@mail.{fake.domain_name()}"
        else:
            value = f"{fake.user_name()}+{fake.word()}@{fake.domain_name(2)}"
        value = value.replace(" ", "")
        if not value.isascii():
            continue
        template = gen.pick((*_PII_TEMPLATES, "mailto:{}", "Email {} for details.", "write to {}."))
        yield _segment(template, value, "email")


def _phone_number_ok(number: str, region: str) -> bool:
    """The corpus's definition of a phone number: valid in its region, written with
    separators or a "+" (bare national digit runs are left out; see docs/detectors.md)."""
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return False
    grouped = number.startswith("+") or any(c in " .-/()" for c in number)
    return grouped and phonenumbers.is_valid_number(parsed)


def _phones(gen: _Generator) -> Iterator[_Segment]:
    while True:
        if gen.rng.random() < 0.75:
            locale = gen.pick(tuple(_NATIONAL_PHONE_LOCALES))
            number = gen.faker(locale).phone_number()
            if not _phone_number_ok(number, _NATIONAL_PHONE_LOCALES[locale]):
                continue
        else:
            number = gen.faker(gen.pick(_INTERNATIONAL_PHONE_LOCALES)).phone_number()
            if not number.startswith("+") or not _phone_number_ok(number, "ZZ"):
                continue
        template = gen.pick((*_PII_TEMPLATES, "Call {} today.", "Tel.: {}", "phone {} or"))
        yield _segment(template, number, "phone")


def _luhn_complete(prefix: str, length: int, gen: _Generator) -> str:
    body = prefix + "".join(gen.pick(string.digits) for _ in range(length - len(prefix) - 1))
    return next(body + d for d in string.digits if luhn_valid(body + d))


def _group_card(digits: str, separator: str) -> str:
    sizes: tuple[int, ...]
    if len(digits) == 15:
        sizes = (4, 6, 5)
    elif len(digits) == 14:
        sizes = (4, 6, 4)
    else:
        sizes = (4, 4, 4, 4, 3)
    parts, position = [], 0
    for size in sizes:
        if position < len(digits):
            parts.append(digits[position : position + size])
            position += size
    return separator.join(parts)


def _credit_cards(gen: _Generator) -> Iterator[_Segment]:
    # No visa13: retired, and not detected (docs/detectors.md explains why).
    faker_types = ("visa16", "visa19", "mastercard", "amex", "discover", "diners")
    # Faker's JCB and Maestro prefixes include ranges no issuer uses; draw those here.
    own = (("3528", 16), ("3589", 16), ("62", 16), ("62", 19), ("6304", 16), ("5018", 16))
    fake = gen.faker("en_US")
    while True:
        if gen.rng.random() < 0.8:
            digits = fake.credit_card_number(gen.pick(faker_types))
        else:
            prefix, length = gen.rng.choice(own)
            digits = _luhn_complete(prefix, length, gen)
        if len(digits) in (14, 15, 16, 19) and gen.rng.random() < 0.6:
            value = _group_card(digits, gen.pick((" ", "-")))
        else:
            value = digits
        template = gen.pick((*_PII_TEMPLATES, "card number {} exp 12/27", "Visa: {}"))
        yield _segment(template, value, "credit_card")


def _ibans(gen: _Generator) -> Iterator[_Segment]:
    while True:
        compact = gen.faker(gen.pick(_IBAN_LOCALES)).iban()
        if gen.rng.random() < 0.5:
            value = " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
        else:
            value = compact
        template = gen.pick((*_PII_TEMPLATES, "IBAN: {}", "Überweisung auf {} bitte"))
        yield _segment(template, value, "iban")


_SAMPLE_SSNS = frozenset({"078-05-1120", "219-09-9999", "123-45-6789"})


def _ssns(gen: _Generator) -> Iterator[_Segment]:
    fake = gen.faker("en_US")
    while True:
        value = fake.ssn()
        if value in _SAMPLE_SSNS:
            continue
        if gen.rng.random() < 0.2:
            value = value.replace("-", " ")
        template = gen.pick((*_PII_TEMPLATES, "SSN {}", "social security number: {}"))
        yield _segment(template, value, "us_ssn")


def _ipv4s(gen: _Generator) -> Iterator[_Segment]:
    fake = gen.faker("en_US")
    while True:
        kind = gen.rng.randrange(3)
        value = (
            fake.ipv4_private() if kind == 0 else fake.ipv4_public() if kind == 1 else fake.ipv4()
        )
        template = gen.pick(
            (*_PII_TEMPLATES, "ssh admin@{} -p 22", "host {}:8080", "from {}.", "http://{}/login")
        )
        yield _segment(template, value, "ipv4")


def _ipv6s(gen: _Generator) -> Iterator[_Segment]:
    fake = gen.faker("en_US")
    while True:
        kind = gen.rng.randrange(5)
        address = ipaddress.IPv6Address(fake.ipv6())
        if kind == 0:
            value = str(address)
        elif kind == 1:
            value = address.exploded.upper()
        elif kind == 2:  # a run of zero groups, written compressed
            groups = address.exploded.split(":")
            zero_from = gen.rng.randrange(1, 6)
            for i in range(zero_from, zero_from + gen.rng.randint(2, 3)):
                groups[i] = "0000"
            value = str(ipaddress.IPv6Address(":".join(groups)))
        elif kind == 3:
            value = f"fe80::{gen.token(HEX, 4)}:{gen.token(HEX, 4)}:{gen.token(HEX, 3)}"
        else:
            value = f"::ffff:{fake.ipv4_public()}"
        template = gen.pick((*_PII_TEMPLATES, "[{}]:443", "inet6 {}/64 scope", "AAAA {}"))
        yield _segment(template, value, "ipv6")


# --- secrets ----------------------------------------------------------------------------------

# Names that make a value a generic secret (`generic_secret` labels the value too) and
# names that do not; the templates say `{name}` and `{}` for the value.
_SECRET_NAMES = (
    "password", "DB_PASSWORD", "api_key", "apiKey", "API-KEY", "client_secret", "SECRET_KEY",
    "access_token", "auth_token", "passwd", "token", "GITHUB_TOKEN", "private_key",
)  # fmt: skip
_ASSIGNMENTS = ("{name}={}", "{name}: {}", '"{name}": "{}"', "{name} = '{}'", 'export {name}="{}"')
_PLAIN_CONTEXTS = (
    "Here is the key: {}",
    "use {} for now",
    "`{}`",
    "{}\n",
    "({})",
    "key {} expired",
)


def _secret_segment(gen: _Generator, value: str, detector: str) -> _Segment:
    """The token alone in prose, or assigned to a secret-like name (also a generic secret)."""
    if gen.rng.random() < 0.4:
        template = gen.pick(_ASSIGNMENTS).replace("{name}", gen.pick(_SECRET_NAMES))
        return _segment(template, value, detector, "generic_secret")
    return _segment(gen.pick(_PLAIN_CONTEXTS), value, detector)


def _openai_keys(gen: _Generator) -> Iterator[_Segment]:
    while True:
        kind = gen.rng.randrange(4)
        if kind == 0:
            value = f"sk-{gen.token(ALNUM, 20)}T3BlbkFJ{gen.token(ALNUM, 20)}"
        else:
            prefix = ("sk-proj-", "sk-svcacct-", "sk-admin-")[kind - 1]
            value = f"{prefix}{gen.token(BASE64URL, 74)}T3BlbkFJ{gen.token(BASE64URL, 74)}"
        yield _secret_segment(gen, value, "openai_key")


def _anthropic_keys(gen: _Generator) -> Iterator[_Segment]:
    while True:
        kind = gen.pick(("api03", "api03", "admin01"))
        yield _secret_segment(gen, f"sk-ant-{kind}-{gen.token(BASE64URL, 93)}AA", "anthropic_key")


def _aws_access_keys(gen: _Generator) -> Iterator[_Segment]:
    base32 = string.ascii_uppercase + "234567"
    while True:
        value = gen.pick(("AKIA", "AKIA", "ASIA", "ABIA", "ACCA")) + "".join(
            gen.pick(base32) for _ in range(16)
        )
        template = gen.pick(
            (
                *_PLAIN_CONTEXTS,
                "aws_access_key_id = {}",
                "AWS_ACCESS_KEY_ID={}",
                '"AccessKeyId": "{}"',
            )
        )
        yield _segment(template, value, "aws_access_key")


def _aws_secret_keys(gen: _Generator) -> Iterator[_Segment]:
    templates = (
        "aws_secret_access_key = {}",
        "AWS_SECRET_ACCESS_KEY={}",
        'export AWS_SECRET_ACCESS_KEY="{}"',
        '"SecretAccessKey": "{}",',
        "aws_secret_access_key: '{}'",
        "secret_access_key={}\n",
    )
    while True:
        yield _segment(
            gen.pick(templates), gen.token(BASE64, 40), "aws_secret_key", "generic_secret"
        )


def _github_tokens(gen: _Generator) -> Iterator[_Segment]:
    while True:
        if gen.rng.random() < 0.8:
            value = f"gh{gen.pick('pousr')}_{gen.token(ALNUM, 36)}"
        else:
            value = f"github_pat_{gen.token(ALNUM, 22)}_{gen.token(ALNUM, 59)}"
        yield _secret_segment(gen, value, "github_token")


def _slack_tokens(gen: _Generator) -> Iterator[_Segment]:
    digits = string.digits
    while True:
        kind = gen.rng.randrange(4)
        if kind == 0:
            value = f"xoxb-{gen.token(digits, 12)}-{gen.token(digits, 13)}-{gen.token(ALNUM, 24)}"
        elif kind == 1:
            value = (
                f"xoxp-{gen.token(digits, 11)}-{gen.token(digits, 12)}-{gen.token(digits, 13)}"
                f"-{gen.token(HEX, 32)}"
            )
        elif kind == 2:
            app = gen.token(string.ascii_uppercase + digits, 10)
            value = f"xapp-1-A{app}-{gen.token(digits, 13)}-{gen.token(HEX, 64)}"
        else:
            path = (
                f"/services/T{gen.token(string.ascii_uppercase + digits, 8)}"
                f"/B{gen.token(string.ascii_uppercase + digits, 10)}/{gen.token(ALNUM, 24)}"
            )
            yield _segment(
                gen.pick(
                    ("POST https://hooks.slack.com{} with", "url: https://hooks.slack.com{}\n")
                ),
                path,
                "slack_token",
            )
            continue
        yield _secret_segment(gen, value, "slack_token")


def _google_api_keys(gen: _Generator) -> Iterator[_Segment]:
    while True:
        yield _secret_segment(gen, f"AIza{gen.token(BASE64URL, 35)}", "google_api_key")


def _stripe_keys(gen: _Generator) -> Iterator[_Segment]:
    while True:
        prefix = gen.pick(("sk_live_", "sk_test_", "rk_live_", "whsec_"))
        length = 32 if prefix == "whsec_" else gen.pick((24, 99))
        yield _secret_segment(gen, prefix + gen.token(ALNUM, length), "stripe_key")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwts(gen: _Generator) -> Iterator[_Segment]:
    fake = gen.faker("en_US")
    while True:
        algorithm = gen.pick(("HS256", "RS256", "ES256"))
        header = {"alg": algorithm, "typ": "JWT"}
        if gen.rng.random() < 0.3:
            header["kid"] = gen.token(ALNUM, 12)
        claims = {
            "sub": fake.uuid4(),
            "name": fake.name(),
            "iat": gen.rng.randrange(1_600_000_000, 1_800_000_000),
        }
        if gen.rng.random() < 0.5:
            claims["email"] = fake.email()
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        if algorithm == "HS256":
            key = gen.token(ALNUM, 32).encode()
            signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
        else:
            signature = gen.rng.randbytes(256 if algorithm == "RS256" else 64)
        token = f"{signing_input}.{_b64url(signature)}"
        if gen.rng.random() < 0.4:
            template = gen.pick(("Authorization: Bearer {}", "id_token={}&state=xyz"))
            yield _segment(template, token, "jwt", "generic_secret")
        else:
            yield _segment(gen.pick(("JWT: {}", "{}\n", "cookie session={};")), token, "jwt")


def _private_keys(gen: _Generator) -> Iterator[_Segment]:
    while True:
        label = gen.pick(("RSA ", "EC ", "OPENSSH ", "", "ENCRYPTED ", "DSA "))
        material = base64.b64encode(gen.rng.randbytes(gen.rng.randrange(48, 1200))).decode()
        lines = [material[i : i + 64] for i in range(0, len(material), 64)]
        if label == "RSA " and gen.rng.random() < 0.3:
            lines = [
                "Proc-Type: 4,ENCRYPTED",
                "DEK-Info: AES-128-CBC,3F1A2B3C4D5E6F708192A3B4C5D6E7F8",
                "",
                *lines,
            ]
        newline = "\\n" if gen.rng.random() < 0.2 else "\n"
        block = newline.join(
            [f"-----BEGIN {label}PRIVATE KEY-----", *lines, f"-----END {label}PRIVATE KEY-----"]
        )
        template = (
            '"private_key": "{}\\n",' if newline == "\\n" else gen.pick(("{}\n", "```\n{}\n```"))
        )
        yield _segment(template, block, "private_key")


def _generic_secrets(gen: _Generator) -> Iterator[_Segment]:
    password_alphabet = ALNUM + "!#$%*+-=?@^_~"
    while True:
        kind = gen.rng.randrange(3)
        if kind == 0:
            value = gen.token(password_alphabet, gen.rng.randint(12, 24))
        elif kind == 1:
            value = gen.token(HEX, gen.pick((32, 40, 64)))
        else:
            value = gen.token(BASE64URL, gen.rng.randint(16, 48))
        template = gen.pick(_ASSIGNMENTS).replace("{name}", gen.pick(_SECRET_NAMES))
        yield _segment(template, value, "generic_secret")


POSITIVE_SOURCES: dict[str, Callable[[_Generator], Iterator[_Segment]]] = {
    "email": _emails,
    "phone": _phones,
    "credit_card": _credit_cards,
    "iban": _ibans,
    "us_ssn": _ssns,
    "ipv4": _ipv4s,
    "ipv6": _ipv6s,
    "openai_key": _openai_keys,
    "anthropic_key": _anthropic_keys,
    "aws_access_key": _aws_access_keys,
    "aws_secret_key": _aws_secret_keys,
    "github_token": _github_tokens,
    "slack_token": _slack_tokens,
    "google_api_key": _google_api_keys,
    "stripe_key": _stripe_keys,
    "jwt": _jwts,
    "private_key": _private_keys,
    "generic_secret": _generic_secrets,
}

# --- hard negatives ---------------------------------------------------------------------------

# Written out: each is text that some detector's pattern finds a candidate in, and that
# is not what the detector is for.
HARD_NEGATIVES = (
    # order and reference numbers, bare digit runs
    "Order #4155552671 has shipped.",
    "Your order number is 2024-00042-17.",
    "Invoice INV-2023-004512 is due.",
    "PO 4500012345, ticket 88123, case 00731942.",
    "Tracking: 1Z999AA10123456784",
    "Customer id 4839201748 was merged into 4839201749.",
    # versions
    "Upgrade to v1.2.3 or version 10.15.7 of the SDK.",
    "Requires Python 3.11.4 and OpenSSL 1.1.1w.",
    "Chrome 120.0.6099.109 fixed it; so did 1.2.3.4.5.",
    "release 2.14.4-rc.1 and build 20240115.3",
    "SNMP OID 1.3.6.1.4.1.9 identifies the vendor.",
    "version 1.2.3.4 of the firmware",
    # timestamps and dates
    "Started 2024-01-15T10:30:00Z and ended 2024-01-15 11:45:12.",
    "Meeting on 15.01.2024 at 10:30, or 01/15/2024.",
    "Unix time 1700000000 is in November 2023.",
    "Le 06.01.2024 à 14h30, puis le 20 12 2024.",
    "Logged at 12:30:45.123 on 2023-12-31.",
    # identifiers and hashes
    "Request 3f2504e0-4f89-11d3-9a0c-0305e82c3301 failed.",
    "Fixed in commit 8e448c6b15a4f8622830072f1c00edfeca81cdd8 (short 8e448c6).",
    "sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "MAC 00:1A:2B:3C:4D:5E, time 12:30:45, std::vector<int>, a[::2], Foo::bar",
    # numbers in prose that look like phones, SSNs or cards
    "We shipped 1,234,567 units for $1,200.00 in 2023 and 2,345,678 in 2024.",
    "ISBN 978-3-16-148410-0 and ISBN 0-306-40615-2.",
    "ZIP 12345-6789; room 101; extension 4412.",
    "Scores: 10 20 30 40 50 60 70.",
    "The range 2024 - 2025 covers 415 projects.",
    "Serial 4111 1111 1111 1112 fails its check digit.",
    "Card 5555-5555-5555-4445 is not valid.",
    "Reference 1234 5678 9012 3456 is a test id.",
    "SSN 000-12-3456, 666-12-3456, 912-34-5678, 123-45-6789 and 078-05-1120 are never issued.",
    "IBAN DE89 3704 0044 0532 0130 01 has a wrong check digit.",
    "Account GB00 WEST 1234 5698 7654 32 is malformed.",
    "IPs 256.1.1.1 and 999.10.10.10 do not exist; 01.02.03.04 is ambiguous.",
    # e-mail look-alikes
    "Mention @username or ping team@localhost.",
    "git clone git@github.com:org/repo.git",
    "Use icon@2x.png and logo@3x.png for retina screens.",
    "Contact name at example dot com.",
    # base-64 and tokens without a secret's context
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk",
    "The blob dGhpcyBpcyBub3QgYSBzZWNyZXQgYnV0IGEgYmxvYg== decodes to a sentence.",
    "Checksum wJalrXUtnFEMIK7MDENGbPxRfiCYzzAbCdEf012345 without a name is only a hash.",
    "eyJub3QiOiJhIGp3dCJ9 is base64 of a JSON object, not a JWT.",
    "eyJhbGciOiJIUzI1NiJ9.bm90LWpzb24. has an algorithm but no signature.",
    # documentation placeholders
    "Set OPENAI_API_KEY=sk-... or sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx in your shell.",
    "export OPENAI_API_KEY=sk-your-api-key-here",
    "AWS example: AKIAIOSFODNN7EXAMPLE / wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "SLACK_BOT_TOKEN=xoxb-your-bot-token-here",
    "api_key = AIzaSyXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "stripe.api_key = 'sk_test_XXXXXXXXXXXXXXXXXXXXXXXX'",
    "Publishable key pk_live_51H8abcDEF123ghiJKL456mnoPQR is safe to embed.",
    "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----",
    "-----BEGIN RSA PRIVATE KEY-----\n<your key here>\n-----END RSA PRIVATE KEY-----",
    "-----BEGIN CERTIFICATE-----\n"
    "MIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJ\n-----END CERTIFICATE-----",
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEYWnm2RuLxRWSQdgNqEWhPqXLzOe2\n-----END PUBLIC KEY-----",
    # names that look like secrets, values that are not
    "password: required",
    "token = get_token(user)",
    "api_key = settings.OPENAI_API_KEY",
    "api_key=os.environ['OPENAI_API_KEY']",
    "password=changeme",
    "max_tokens: 1024, temperature: 0.7",
    "password: ********",
    'API_KEY="<your-api-key>"',
    "token: ${GITHUB_TOKEN}",
    "secret: kubernetes.io/service-account-token",
    "password = 12345678901",
    "the bearer of bad news",
    "passwordless login; token-based auth; secret sauce",
    "client_secret: YOUR_CLIENT_SECRET",
    "token=abcdefghijklmnopqrstuvwxyz0123",
    # identifiers that start like tokens
    "The task-sk-learn-compatible-estimators module and sk-learn-compatible-transformers.",
    "Call ghp_token() or read github_pat_docs.",
    "xoxb- tokens are bot tokens; AKIA prefixes mark key ids.",
)


def _hard_negatives(gen: _Generator) -> Iterator[_Segment]:
    """The written-out negatives in turn, then generated ones, forever."""
    fake = gen.faker("en_US")
    written = iter(HARD_NEGATIVES)
    while True:
        text = next(written, None)
        if text is not None:
            yield _Segment(text)
            continue
        kind = gen.rng.randrange(8)
        if kind == 0:
            yield _Segment(f"Order {gen.token(string.digits, gen.rng.randint(8, 12))} confirmed.")
        elif kind == 1:
            yield _Segment(f"request id {fake.uuid4()} at {gen.moment().isoformat()}")
        elif kind == 2:
            yield _Segment(f"commit {fake.sha1()} on {gen.moment().date()}")
        elif kind == 3:
            digits = gen.pick("3456") + gen.token(string.digits, 15)
            if not luhn_valid(digits):
                yield _Segment(f"ref {_group_card(digits, gen.pick((' ', '-', '')))} (not a card)")
        elif kind == 4:
            yield _Segment(f"blob {base64.b64encode(gen.rng.randbytes(30)).decode()} end")
        elif kind == 5:
            major, minor, patch = (gen.rng.randint(0, 30) for _ in range(3))
            yield _Segment(f"v{major}.{minor}.{patch} and {major}.{minor}.{patch}.{minor}.{patch}")
        elif kind == 6:
            yield _Segment(
                f"We sold {gen.rng.randint(1000, 99999):,} items at {gen.moment().time()}."
            )
        else:
            yield _Segment(f"EAN {fake.ean13()}, ISBN {fake.isbn13()}")


# --- assembly ---------------------------------------------------------------------------------


def _segments(gen: _Generator) -> list[_Segment]:
    """Every labelled and unlabelled segment of the corpus, in random order."""
    per_detector = CORPUS_DOCUMENTS * SEGMENTS_PER_DOCUMENT // 30
    segments: list[_Segment] = []
    for name, source in POSITIVE_SOURCES.items():
        values = source(gen)
        count = per_detector * 2 if name in ("phone", "email") else per_detector
        segments.extend(next(values) for _ in range(count))
    negatives = _hard_negatives(gen)
    segments.extend(next(negatives) for _ in range(len(HARD_NEGATIVES) + per_detector * 2))
    prose_count = CORPUS_DOCUMENTS * SEGMENTS_PER_DOCUMENT - len(segments)
    segments.extend(_Segment(gen.prose()) for _ in range(max(prose_count, 0)))
    gen.rng.shuffle(segments)
    return segments


def generate_corpus(seed: int = SEED) -> list[Document]:
    """The corpus: ``CORPUS_DOCUMENTS`` documents, identical for the same seed and Faker."""
    gen = _Generator(seed)
    segments = _segments(gen)
    documents = []
    size = -(-len(segments) // CORPUS_DOCUMENTS)
    for first in range(0, len(segments), size):
        text, labels = "", set[Label]()
        for segment in segments[first : first + size]:
            if text:
                text += gen.pick((" ", " ", "\n", "\n\n"))
            labels.update(
                Label(name, len(text) + start, len(text) + end)
                for name, start, end in segment.labels
            )
            text += segment.text
        documents.append(Document(text, frozenset(labels)))
    return documents
