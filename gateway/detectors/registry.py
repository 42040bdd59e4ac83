"""Detector names, their options, and the one way the policy compiler builds a detector.

Each name maps to a pydantic options model and a builder, so a policy's
``match: {detector: {name: phone, regions: [GB]}}`` is checked as strictly as the rest of
the policy file, and errors name the detector and the options it does take.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from gateway.detectors.base import Detector, DetectorError, DetectorOptions, NoOptions
from gateway.detectors.credentials import (
    ANTHROPIC_KEY,
    AWS_ACCESS_KEY,
    AWS_SECRET_KEY,
    GITHUB_TOKEN,
    GOOGLE_API_KEY,
    JWT,
    OPENAI_KEY,
    PRIVATE_KEY,
    SLACK_TOKEN,
    STRIPE_KEY,
    GenericSecretOptions,
    build_generic_secret,
)
from gateway.detectors.iban import IBAN
from gateway.detectors.phone import PhoneOptions, build_phone
from gateway.detectors.pii import (
    CREDIT_CARD,
    EMAIL,
    IPV4,
    IPV6,
    UsSsnOptions,
    build_us_ssn,
)

OptionsT = TypeVar("OptionsT", bound=DetectorOptions)


@dataclass(frozen=True, slots=True)
class _Spec(Generic[OptionsT]):
    summary: str
    options: type[OptionsT]
    build: Callable[[OptionsT], Detector]


def _fixed(summary: str, detector: Detector) -> _Spec[NoOptions]:
    """The spec of a detector without options: every policy shares one instance."""
    return _Spec(summary, NoOptions, lambda _options: detector)


_SPECS: dict[str, _Spec[Any]] = {
    "anthropic_key": _fixed("Anthropic API keys (sk-ant-api03-…, sk-ant-admin01-…)", ANTHROPIC_KEY),
    "aws_access_key": _fixed("AWS access key ids (AKIA…, ASIA…, ABIA…, ACCA…)", AWS_ACCESS_KEY),
    "aws_secret_key": _fixed(
        "AWS secret access keys, after an aws_secret_access_key-like name", AWS_SECRET_KEY
    ),
    "credit_card": _fixed("Payment card numbers of known brands that pass Luhn", CREDIT_CARD),
    "email": _fixed("E-mail addresses", EMAIL),
    "generic_secret": _Spec(
        "High-entropy values assigned to a password/secret/token/api_key-like name",
        GenericSecretOptions,
        build_generic_secret,
    ),
    "github_token": _fixed(
        "GitHub tokens (ghp_, gho_, ghu_, ghs_, ghr_, github_pat_)", GITHUB_TOKEN
    ),
    "google_api_key": _fixed("Google API keys (AIza…)", GOOGLE_API_KEY),
    "iban": _fixed("IBANs of the right length for their country that pass mod 97", IBAN),
    "ipv4": _fixed("IPv4 addresses in dotted-quad form", IPV4),
    "ipv6": _fixed("IPv6 addresses, full and compressed", IPV6),
    "jwt": _fixed("JSON Web Tokens", JWT),
    "openai_key": _fixed("OpenAI API keys (sk-, sk-proj-, sk-svcacct-, sk-admin-)", OPENAI_KEY),
    "phone": _Spec(
        "Phone numbers, international and in the regions' national formats",
        PhoneOptions,
        build_phone,
    ),
    "private_key": _fixed("PEM private key blocks, BEGIN to END", PRIVATE_KEY),
    "slack_token": _fixed("Slack tokens (xoxb-, xoxp-, xapp- …) and webhook URLs", SLACK_TOKEN),
    "stripe_key": _fixed("Stripe secret, restricted and webhook keys", STRIPE_KEY),
    "us_ssn": _Spec("US social security numbers", UsSsnOptions, build_us_ssn),
}

KNOWN_DETECTORS: tuple[str, ...] = tuple(sorted(_SPECS))


def _explain(name: str, spec: _Spec[Any], error: ValidationError) -> str:
    """One readable sentence per problem, then what the detector does accept."""
    allowed = ", ".join(spec.options.model_fields)
    problems = []
    for issue in error.errors():
        option = ".".join(str(part) for part in issue["loc"]) or "options"
        if issue["type"] == "extra_forbidden":
            problems.append(f"unknown option {option!r}")
        else:
            message = issue["msg"].removeprefix("Value error, ")
            problems.append(f"option {option!r}: {message}")
    accepts = f"allowed options: {allowed}" if allowed else "it takes no options"
    return f"detector {name!r}: {'; '.join(problems)} ({accepts})"


def build_detector(name: str, options: Mapping[str, object] | None = None) -> Detector:
    """The detector called ``name``, bound to ``options`` as written in a policy rule.

    Raises ``DetectorError`` for an unknown name (listing the known ones) and for options
    the detector does not take or values it cannot use.
    """
    spec = _SPECS.get(name)
    if spec is None:
        raise DetectorError(f"unknown detector {name!r}; known: {', '.join(KNOWN_DETECTORS)}")
    if options is not None and not isinstance(options, Mapping):
        raise DetectorError(f"detector {name!r}: options must be a mapping of option names")
    try:
        parsed = spec.options.model_validate(dict(options or {}))
    except ValidationError as error:
        raise DetectorError(_explain(name, spec, error)) from None
    detector: Detector = spec.build(parsed)
    return detector


def detector_options_schema() -> dict[str, object]:
    """JSON Schema of a rule's ``match.detector``: a bare name, or a name with options."""
    with_options: list[dict[str, object]] = []
    for name, spec in sorted(_SPECS.items()):
        options = spec.options.model_json_schema()
        with_options.append(
            {
                "type": "object",
                "description": spec.summary,
                "properties": {"name": {"const": name}, **options.get("properties", {})},
                "required": ["name"],
                "additionalProperties": False,
            }
        )
    names = {"type": "string", "enum": list(KNOWN_DETECTORS)}
    return {"oneOf": [names, *with_options]}
