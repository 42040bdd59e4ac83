"""Unit tests of the built-in detectors: expected spans, must-not-match cases, validators.

Each case lists every value the detector must report in a text, in order, so a case with
an empty list is a must-not-match case (Presidio's recognizer tests, gitleaks' tps/fps).
Spans come from the whole-text reference scanner in ``detector_eval``, which follows the
sluice's rule of resuming one character after a rejected candidate.
"""

from __future__ import annotations

import string

import pytest
import regex

from gateway.detectors import KNOWN_DETECTORS, DetectorError, build_detector
from gateway.detectors.checksums import iban_mod97_valid, luhn_valid
from gateway.detectors.credentials import jwt_valid, private_key_valid
from gateway.detectors.iban import IBAN_LENGTHS, iban_valid
from gateway.detectors.phone import phone_valid
from gateway.detectors.pii import card_number_valid, ipv6_valid, ssn_valid
from gateway.detectors.randomness import is_placeholder, plausible_secret, shannon_entropy
from tests.detector_eval import scan

PEM_BODY = (
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
)
JWT_HS256 = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
OPENAI_PROJECT_KEY = "sk-proj-4Gx7QbN2mV9kRz1LpW8sTfY3HcJ6dEaU0oKiMnBvC5tXyZq"
PKCS8_IN_JSON = (
    "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\\n"
    "-----END PRIVATE KEY-----"
)
ANTHROPIC_API_KEY = "sk-ant-api03-" + "Qm7Vx2Kp9Lz4Tn8Rw1Ys6Bd3Hf5Jg0Cv" * 3 + "AbCd_efGhAA"

CASES: dict[str, list[tuple[str, list[str]]]] = {
    "email": [
        ("write to john.smith@example.org today", ["john.smith@example.org"]),
        (
            "<amy+news@mail.co.uk>, 'x_y@sub.example.travel'.",
            ["amy+news@mail.co.uk", "x_y@sub.example.travel"],
        ),
        ("mailto:Support@Example.COM", ["Support@Example.COM"]),
        ("ping @username or team@localhost", []),
        ("git clone git@github.com:org/repo.git", []),
        ("use icon@2x.png", []),
        ("bad..dots@example.com and trailing.@example.com", []),
    ],
    "phone": [
        ("Call +44 20 7946 0958 now", ["+44 20 7946 0958"]),
        (
            "(415) 555-2671, 415.555.2671 x123 or 1-800-555-0199",
            ["(415) 555-2671", "415.555.2671 x123", "1-800-555-0199"],
        ),
        (
            "+1 (415) 555-2671; +49 (0) 30 12345678; +4930123456",
            ["+1 (415) 555-2671", "+49 (0) 30 12345678", "+4930123456"],
        ),
        ("tel:+33 1 41 63 60 83.", ["+33 1 41 63 60 83"]),
        ("Order #4155552671 and id 4155552671", []),
        ("on 2024-01-15 10:30, 15.01.2024, 01/15/2024", []),
        ("host 192.168.1.254, v10.15.7, ISBN 0-306-40615-2", []),
        ("SSN 536-22-1234 and card 4111 1111 1111 1111", []),
        ("IBAN DE89 3704 0044 0532 0130 00", []),
        ("the +44 20 7946 0958 68.170.197.207 pair", ["+44 20 7946 0958"]),
    ],
    "credit_card": [
        ("card 4111 1111 1111 1111 ok", ["4111 1111 1111 1111"]),
        ("4111-1111-1111-1111 and 4111111111111111", ["4111-1111-1111-1111", "4111111111111111"]),
        ("Amex 378282246310005 or 3782 822463 10005", ["378282246310005", "3782 822463 10005"]),
        (
            "Diners 3056 930902 5904, MC 5555 5555 5555 4444, 2-series 2223003122003222",
            ["3056 930902 5904", "5555 5555 5555 4444", "2223003122003222"],
        ),
        ("card 4111 1111 1111 1111 12/27", ["4111 1111 1111 1111"]),
        ("fails Luhn: 4111 1111 1111 1112", []),
        ("mixed separators 4111 1111-1111 1111", []),
        ("unknown brand 1111 1111 1111 1117 and 9111111111111111", []),
        ("13 digits 4222222222222 (retired Visa, EAN-13 shaped)", []),
        ("longer 4111-1111-1111-1111-2 or 44111111111111111111111", []),
        ("IBAN PL74 4624 1755 2440 8094 0161 7640", []),
    ],
    "iban": [
        ("IBAN DE89 3704 0044 0532 0130 00 please", ["DE89 3704 0044 0532 0130 00"]),
        ("GB82WEST12345698765432, NO9386011117947.", ["GB82WEST12345698765432", "NO9386011117947"]),
        ("DE89370400440532013000 1234", ["DE89370400440532013000"]),
        ("wrong check DE89 3704 0044 0532 0130 01", []),
        ("uneven DE89 37040044 0532 0130 00", []),
        ("too long DE8937040044053201300012", []),
        ("unknown country XX89370400440532013000", []),
    ],
    "us_ssn": [
        ("SSN 536-22-1234 or 536 22 1234.", ["536-22-1234", "536 22 1234"]),
        ("000-12-3456 666-12-3456 912-34-5678 536-00-1234 536-22-0000", []),
        ("samples 123-45-6789 078-05-1120 219-09-9999", []),
        ("bare 536221234 needs the option; 536-221234 is not grouped", []),
        ("phone 415-555-2671, zip 12345-6789, 536-22-1234-5", []),
    ],
    "ipv4": [
        ("hosts 10.0.0.1 and 192.168.1.254.", ["10.0.0.1", "192.168.1.254"]),
        ("http://8.8.4.4/x and 203.0.113.7:8080", ["8.8.4.4", "203.0.113.7"]),
        ("1.2.3.4.5, 256.1.1.1, 01.2.3.4, 1.2.3", []),
        ("version 1.2.3.4, v1.2.3.4, build 10.0.19045.3693", []),
        ("::ffff:192.0.2.128 is ipv6's", []),
    ],
    "ipv6": [
        ("fe80::1 and 2001:db8::8a2e:370:7334", ["fe80::1", "2001:db8::8a2e:370:7334"]),
        ("2001:0DB8:85A3:0000:0000:8A2E:0370:7334", ["2001:0DB8:85A3:0000:0000:8A2E:0370:7334"]),
        ("[2001:db8::1]:443 and ::ffff:192.0.2.128.", ["2001:db8::1", "::ffff:192.0.2.128"]),
        ("::1, ::, std::vector, a[::2], Foo::bar", []),
        ("12:30:45, 00:1A:2B:3C:4D:5E, 1:2:3:4:5:6:7:8:9, 1::2::3", []),
    ],
    "openai_key": [
        (f"key {OPENAI_PROJECT_KEY}.", [OPENAI_PROJECT_KEY]),
        (
            "sk-4Gx7QbN2mV9kRz1LpW8sT3BlbkFJfY3HcJ6dEaU0oKiMn",
            ["sk-4Gx7QbN2mV9kRz1LpW8sT3BlbkFJfY3HcJ6dEaU0oKiMn"],
        ),
        ("sk-... sk-xxxxxxxxxxxxxxxxxxxxxxxx sk-your-api-key-here", []),
        ("sk-learn-compatible-estimators-here task-sk-4Gx7QbN2mV9kRz1LpW8s", []),
        (f"{ANTHROPIC_API_KEY}", []),
    ],
    "anthropic_key": [
        (f"ANTHROPIC_API_KEY={ANTHROPIC_API_KEY}\n", [ANTHROPIC_API_KEY]),
        ("sk-ant-api03-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", []),
        ("sk-ant-short", []),
    ],
    "aws_access_key": [
        (
            "AKIAZ7VQ3KX5M2P4N6RT and ASIAJ4K7M2Q9X3V6B8NW",
            ["AKIAZ7VQ3KX5M2P4N6RT", "ASIAJ4K7M2Q9X3V6B8NW"],
        ),
        ("AKIAIOSFODNN7EXAMPLE", []),
        ("AKIAZ7VQ3KX5M2P4N6RTX (too long) xAKIAZ7VQ3KX5M2P4N6RT", []),
    ],
    "aws_secret_key": [
        (
            "aws_secret_access_key = Zq3xR8vK2mT9pL4wN7yB1cF6hJ0dG5sA+E/uIoPa",
            ["Zq3xR8vK2mT9pL4wN7yB1cF6hJ0dG5sA+E/uIoPa"],
        ),
        (
            '"SecretAccessKey": "Zq3xR8vK2mT9pL4wN7yB1cF6hJ0dG5sA+E/uIoPa"',
            ["Zq3xR8vK2mT9pL4wN7yB1cF6hJ0dG5sA+E/uIoPa"],
        ),
        ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", []),
        ("Zq3xR8vK2mT9pL4wN7yB1cF6hJ0dG5sA+E/uIoPa without a name", []),
        ("SECRET_KEY = 4b1be150c478da03f081c1abd7731d7a398cd964", []),
    ],
    "github_token": [
        (
            "GITHUB_TOKEN=ghp_R7vK2mT9pL4wN7yB1cF6hJ0dG5sAqE3xZ8uI",
            ["ghp_R7vK2mT9pL4wN7yB1cF6hJ0dG5sAqE3xZ8uI"],
        ),
        (
            "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p9",
            [
                "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p9"
            ],
        ),
        ("ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx ghp_short ghp_token()", []),
    ],
    "slack_token": [
        (
            "xoxb-263594206564-2343594206574-FGqddMF8t08v8N7Oq4i57vs1",
            ["xoxb-263594206564-2343594206574-FGqddMF8t08v8N7Oq4i57vs1"],
        ),
        (
            "https://hooks.slack.com/services/T00AB1234/B00CD5678/XyZ12abcDEF34ghiJKL56mno",
            ["/services/T00AB1234/B00CD5678/XyZ12abcDEF34ghiJKL56mno"],
        ),
        ("xoxb-your-bot-token-here, xoxb- tokens, xoxp-0000000000-0000000000-xxxxxxxx", []),
        ("https://example.com/services/T00AB1234/B00CD5678/XyZ12abcDEF34ghiJKL56mno", []),
    ],
    "google_api_key": [
        (
            "key=AIzaSyD4kR8vQ2mT9pL4wN7yB1cF6hJ0dG5sAqE.",
            ["AIzaSyD4kR8vQ2mT9pL4wN7yB1cF6hJ0dG5sAqE"],
        ),
        ("AIzaSyXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX AIza-too-short", []),
    ],
    "stripe_key": [
        (
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc and rk_test_51H8xK2mT9pL4wN7yB1cF6hJ0",
            ["sk_live_4eC39HqLyjWDarjtT1zdp7dc", "rk_test_51H8xK2mT9pL4wN7yB1cF6hJ0"],
        ),
        ("whsec_Zq3xR8vK2mT9pL4wN7yB1cF6hJ0dG5sAq", ["whsec_Zq3xR8vK2mT9pL4wN7yB1cF6hJ0dG5sAq"]),
        ("pk_live_51H8xK2mT9pL4wN7yB1cF6hJ0 sk_test_XXXXXXXXXXXXXXXXXXXXXXXX", []),
    ],
    "jwt": [
        (f"Authorization: Bearer {JWT_HS256}\n", [JWT_HS256]),
        (
            "unsecured eyJhbGciOiJub25lIn0.eyJzdWIiOiIxMjM0In0. ok",
            ["eyJhbGciOiJub25lIn0.eyJzdWIiOiIxMjM0In0."],
        ),
        ("eyJub3QiOiJhIGp3dCJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl (no alg)", []),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0. (alg but no signature)", []),
        ("eyJhbGciOiJIUzI1NiJ9 alone, eyJ.eyJ.x", []),
    ],
    "private_key": [
        (
            f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}-----END RSA PRIVATE KEY-----\n",
            [f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}-----END RSA PRIVATE KEY-----"],
        ),
        (f'"private_key": "{PKCS8_IN_JSON}\\n",', [PKCS8_IN_JSON]),
        ("-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----", []),
        (f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}-----END EC PRIVATE KEY-----", []),
        (f"-----BEGIN CERTIFICATE-----\n{PEM_BODY}-----END CERTIFICATE-----", []),
        (f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}(truncated)", []),
    ],
    "generic_secret": [
        (
            'password: "Xy7#kq9!Lm2pQ" and DB_PASSWORD=S3cr3t-V4lue-2024.',
            ["Xy7#kq9!Lm2pQ", "S3cr3t-V4lue-2024"],
        ),
        ('{"api_key": "a8F3kQ9zX2mP7vL1"}', ["a8F3kQ9zX2mP7vL1"]),
        ("Authorization: Bearer a8F3kQ9zX2mP7vL1w", ["a8F3kQ9zX2mP7vL1w"]),
        (
            "https://x.test/cb?access_token=9f86d081884c7d659a2feaa0&state=1",
            ["9f86d081884c7d659a2feaa0"],
        ),
        ("password: required; token = get_token(user); api_key = settings.OPENAI_API_KEY", []),
        ("password=changeme, max_tokens: 1024, password: ********, token: ${GITHUB_TOKEN}", []),
        ('API_KEY="<your-api-key>" client_secret: YOUR_CLIENT_SECRET password = 12345678901', []),
        ("the bearer of bad news; secret: kubernetes.io/service-account-token", []),
    ],
}


def test_every_detector_has_cases() -> None:
    assert set(CASES) == set(KNOWN_DETECTORS)


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [(name, text, expected) for name, cases in CASES.items() for text, expected in cases],
)
def test_detector_spans(name: str, text: str, expected: list[str]) -> None:
    detector = build_detector(
        name, {"regions": ["US", "GB", "DE", "FR"]} if name == "phone" else None
    )
    assert [text[start:end] for start, end in scan(detector, text)] == expected


# --- options ----------------------------------------------------------------------------------


def test_phone_regions_decide_national_formats() -> None:
    text = "Ring 020 7946 0958 or (415) 555-2671; abroad +44 20 7946 0958"
    found = scan(build_detector("phone"), text)
    assert [text[s:e] for s, e in found] == ["(415) 555-2671", "+44 20 7946 0958"]
    found = scan(build_detector("phone", {"regions": ["gb"]}), text)
    assert [text[s:e] for s, e in found] == ["020 7946 0958", "+44 20 7946 0958"]


def test_phone_bare_option() -> None:
    text = "call 4155552671 now"
    assert scan(build_detector("phone"), text) == []
    assert scan(build_detector("phone", {"bare": True}), text) == [(5, 15)]


def test_us_ssn_bare_option() -> None:
    text = "ssn 536221234 and 536-22-1234; not 000221234"
    assert len(scan(build_detector("us_ssn"), text)) == 1
    assert scan(build_detector("us_ssn", {"bare": True}), text) == [(4, 13), (18, 29)]


def test_generic_secret_floors() -> None:
    text = "password: Abc123xyz9"  # 10 characters, 10 distinct: 3.32 bits per character
    assert len(scan(build_detector("generic_secret"), text)) == 1
    assert scan(build_detector("generic_secret", {"min_entropy": 3.5}), text) == []
    assert scan(build_detector("generic_secret", {"min_length": 12}), text) == []


# --- validators -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("4111111111111111", True),
        ("5555555555554444", True),
        ("378282246310005", True),
        ("79927398713", True),  # the Luhn article's example
        ("4111111111111112", False),
        ("79927398710", False),
        ("4111 1111 1111 1111", False),  # separators are the caller's to strip
        ("٤١١١١١١١١١١١١١١١", False),  # non-ASCII digits
    ],
)
def test_luhn(digits: str, valid: bool) -> None:
    assert luhn_valid(digits) is valid


@pytest.mark.parametrize(
    ("iban", "valid"),
    [
        ("GB82WEST12345698765432", True),  # ISO 13616 examples
        ("DE89370400440532013000", True),
        ("FR1420041010050500013M02606", True),
        ("NO9386011117947", True),
        ("GB82WEST12345698765433", False),
        ("DE88370400440532013000", False),
        ("DE89", False),
        ("DE89-3704", False),
    ],
)
def test_iban_mod97(iban: str, valid: bool) -> None:
    assert iban_mod97_valid(iban) is valid


def test_iban_lengths_cover_sepa() -> None:
    sepa = "AD AT BE BG CH CY CZ DE DK EE ES FI FR GB GI GR HR HU IE IS IT LI LT LU LV MC MT NL"
    sepa += " NO PL PT RO SE SI SK SM VA"
    assert set(sepa.split()) <= set(IBAN_LENGTHS)
    assert (IBAN_LENGTHS["DE"], IBAN_LENGTHS["NO"], IBAN_LENGTHS["RU"]) == (22, 15, 33)


def test_iban_valid_grouping() -> None:
    assert iban_valid("DE89 3704 0044 0532 0130 00")
    assert not iban_valid("DE89 3704 0044 0532 013000")


@pytest.mark.parametrize(
    ("ssn", "valid"),
    [
        ("536-22-1234", True),
        ("001-01-0001", True),
        ("899-99-9999", True),
        ("000-22-1234", False),
        ("666-22-1234", False),
        ("900-22-1234", False),
        ("999-22-1234", False),
        ("536-00-1234", False),
        ("536-22-0000", False),
        ("123-45-6789", False),
        ("536-22-123", False),
    ],
)
def test_ssn_ranges(ssn: str, valid: bool) -> None:
    assert ssn_valid(ssn) is valid


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("4111 1111 1111 1111", True),
        ("6011-1111-1111-1117", True),  # Discover
        ("3530111333300000", True),  # JCB
        ("6200000000000005", True),  # UnionPay
        ("4111 1111-1111 1111", False),  # mixed separators
        ("4222222222222", False),  # 13-digit Visa: retired, collides with EAN-13
        ("7111111111111111", False),  # no such brand
    ],
)
def test_card_numbers(number: str, valid: bool) -> None:
    assert card_number_valid(number) is valid


@pytest.mark.parametrize(
    ("address", "valid"),
    [
        ("2001:db8::1", True),
        ("::ffff:192.0.2.1", True),
        ("::1", False),
        ("::", False),
        ("1::2::3", False),
    ],
)
def test_ipv6_validator(address: str, valid: bool) -> None:
    assert ipv6_valid(address) is valid


def test_phone_validator() -> None:
    assert phone_valid("(415) 555-2671", regions=("US",))
    assert not phone_valid("(415) 555-2671", regions=("GB",))
    assert phone_valid("+44 20 7946 0958", regions=("US",))  # "+" numbers name their country
    assert not phone_valid("4155552671", regions=("US",))
    assert phone_valid("4155552671", regions=("US",), bare=True)
    assert not phone_valid("2024-01-15 10", regions=("US",))


def test_jwt_validator() -> None:
    assert jwt_valid(JWT_HS256)
    assert not jwt_valid(
        JWT_HS256.replace("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9", "eyJ0eXAiOiJKV1QifQ")
    )
    assert not jwt_valid("eyJhbGci.eyJzdWIi.c2ln")  # header is not valid base64url JSON


def test_private_key_validator() -> None:
    block = f"-----BEGIN EC PRIVATE KEY-----\n{PEM_BODY}-----END EC PRIVATE KEY-----"
    assert private_key_valid(block)
    assert not private_key_valid(block.replace("END EC", "END RSA"))
    assert not private_key_valid(block.replace(PEM_BODY, "AAAA\n" * 20))


def test_randomness() -> None:
    assert shannon_entropy("") == 0.0
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == pytest.approx(2.0)
    assert all(map(is_placeholder, ("sk-your-key", "abcdefgh", "x0000000y")))
    assert not is_placeholder("R7vK2mT9pL4wN7yB1cF6")
    assert plausible_secret("R7vK2mT9pL4wN7yB1cF6", min_entropy=3.0, min_classes=3)
    assert not plausible_secret("sk-learn-compatible", min_entropy=3.0, min_classes=2)


# --- the registry -----------------------------------------------------------------------------


def test_known_detectors_sorted_and_buildable() -> None:
    assert list(KNOWN_DETECTORS) == sorted(KNOWN_DETECTORS)
    for name in KNOWN_DETECTORS:
        assert build_detector(name).name == name


def test_unknown_detector_lists_known_names() -> None:
    with pytest.raises(
        DetectorError, match=r"unknown detector 'cc'; known: anthropic_key, .*us_ssn$"
    ):
        build_detector("cc")


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        (
            "phone",
            {"region": ["US"]},
            "detector 'phone': unknown option 'region' (allowed options: regions, bare)",
        ),
        ("phone", {"regions": ["XX"]}, "option 'regions': unknown region(s) XX"),
        ("phone", {"regions": []}, "option 'regions': at least one region is required"),
        (
            "email",
            {"strict": True},
            "detector 'email': unknown option 'strict' (it takes no options)",
        ),
        (
            "generic_secret",
            {"min_entropy": 9},
            "option 'min_entropy': Input should be less than or equal to 8",
        ),
        ("us_ssn", {"bare": "maybe"}, "option 'bare': Input should be a valid boolean"),
    ],
)
def test_bad_options_are_explained(name: str, options: dict[str, object], message: str) -> None:
    with pytest.raises(DetectorError) as caught:
        build_detector(name, options)
    assert message in str(caught.value)


def test_options_must_be_a_mapping() -> None:
    with pytest.raises(DetectorError, match="options must be a mapping"):
        build_detector("phone", ["US"])  # type: ignore[arg-type]


# --- what the sluice requires of a pattern ----------------------------------------------------


def _all_detectors() -> list[tuple[str, object]]:
    variants: list[tuple[str, object]] = [(name, None) for name in KNOWN_DETECTORS]
    variants += [
        ("us_ssn", {"bare": True}),
        ("phone", {"bare": True}),
        ("generic_secret", {"min_length": 4}),
    ]
    return variants


def _outside_classes(pattern: str) -> str:
    """``pattern`` with every character class ``[...]`` removed, escapes kept as pairs."""
    kept, in_class, escaped = [], False, False
    for char in pattern:
        if escaped:
            escaped = False
            if not in_class:
                kept.append("\\" + char)
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        else:
            kept.append(char)
    return "".join(kept)


@pytest.mark.parametrize(("name", "options"), _all_detectors())
def test_pattern_contract(name: str, options: dict[str, object] | None) -> None:
    detector = build_detector(name, options)
    pattern = detector.pattern
    compiled = regex.compile(f"(?:{pattern})", regex.VERSION0)
    assert compiled.search("") is None
    assert compiled.groups == 0, "capture groups would shift the sluice's group numbers"
    syntax = _outside_classes(pattern)
    assert not regex.search(r"\\[1-9]|\(\?P=|\\g<", syntax), "no back-references"
    assert not regex.search(r"\(\?[a-zA-Z]+\)", syntax), "no global inline flags"
    assert not regex.search(r"(?<!\\)[\^$]|\\[AZz]", syntax), "no anchors"
    # Shares an alternation with everything else, as the sluice compiles it.
    others = "|".join(f"(?:{build_detector(n).pattern})" for n in KNOWN_DETECTORS)
    regex.compile(f"(?:{pattern})|{others}")


# The characters a match can start on after a space: each is a character the sluice may
# hold for one delta when it ends a delta. Secrets found by context (aws_secret_key,
# generic_secret, the Slack webhook path) start only right after their name or host.
START_CHARACTERS = {
    "anthropic_key": "s",
    "aws_access_key": "A",
    "aws_secret_key": "",
    "credit_card": "23456",
    "email": string.ascii_letters + string.digits + "%+-_",
    "generic_secret": "",
    "github_token": "g",
    "google_api_key": "A",
    "iban": string.ascii_uppercase,
    "ipv4": string.digits,
    "ipv6": string.digits + "abcdefABCDEF:",
    "jwt": "e",
    "openai_key": "s",
    "phone": string.digits + "+(",
    "private_key": "-",
    "slack_token": "x",
    "stripe_key": "rsw",
    "us_ssn": string.digits,
}


@pytest.mark.parametrize("name", KNOWN_DETECTORS)
def test_start_characters(name: str) -> None:
    probe = regex.compile(f"(?:{build_detector(name).pattern})(?!)")
    printable = string.ascii_letters + string.digits + string.punctuation
    starts = {c for c in printable if (m := probe.search(" " + c, partial=True)) and m.start() == 1}
    assert starts == set(START_CHARACTERS[name])


PATHOLOGICAL = (
    "1 " * 3000,
    "1-" * 3000,
    "a." * 3000 + "@",
    "a" * 5000 + "@" + "b-" * 2000,
    "4" * 6000,
    "1.1." * 2000,
    ":" * 3000 + "f" * 3000,
    "f:" * 3000,
    "-----BEGIN PRIVATE KEY-----" + "A" * 20000,
    "password=" + "a" * 20000,
    "sk-" + "a" * 20000,
    "eyJ" + "a." * 5000,
    "xoxb-" + "1-" * 5000,
    "(1) " * 2000,
    "+1 " * 2000,
    "DE89 " + "1234 " * 2000,
)


#: A budget no linear scan of these texts comes near (they take milliseconds) and no
#: catastrophic one stays within: ``(?:\w+\.?)+@`` exceeds it on the email text. The
#: regex engine enforces it (``TimeoutError``); nothing here measures speed, which is
#: bench/'s job.
BACKTRACK_BUDGET = 5.0


@pytest.mark.parametrize("name", KNOWN_DETECTORS)
def test_no_catastrophic_backtracking(name: str) -> None:
    """Each pattern, alone and as the sluice's never-matching probe, finishes on inputs
    built to make a backtracking pattern explode."""
    detector = build_detector(name)
    plain = regex.compile(f"(?:{detector.pattern})")
    probe = regex.compile(f"(?:{detector.pattern})(?!)")
    for text in PATHOLOGICAL:
        scan(detector, text, timeout=BACKTRACK_BUDGET)
        probe.search(text, partial=True, timeout=BACKTRACK_BUDGET)
        plain.search(text, partial=True, timeout=BACKTRACK_BUDGET)
