"""Policy file format, version 1, as pydantic models.

These models *are* the format: the JSON Schema that editors use (``policies/schema.json``)
is generated from them, so the schema and the loader cannot disagree. They validate
shape only; compiling patterns and linting them is ``compiler``'s and ``lint``'s job.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gateway.detectors import detector_options_schema

RULE_ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"


class _Strict(BaseModel):
    """Unknown keys are errors: a typo must never silently disable a rule."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Mode(StrEnum):
    ENFORCE = "enforce"
    SHADOW = "shadow"


class OnError(StrEnum):
    BLOCK = "block"
    ALLOW = "allow"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Direction(StrEnum):
    OUTPUT = "output"
    INPUT = "input"


class RuleAction(StrEnum):
    REDACT = "redact"
    BLOCK = "block"
    FLAG = "flag"


class UnknownText(StrEnum):
    MODERATE = "moderate"
    DROP = "drop"


class ToolArguments(StrEnum):
    WHOLE = "whole"
    STREAM = "stream"


class PolicySettings(_Strict):
    max_hold_chars: int = Field(
        512, ge=16, le=65536, description="The most text one stream may hold back at any moment."
    )
    on_error: OnError = Field(
        OnError.BLOCK,
        description="What a failing rule, a scan timeout or an over-long hold means.",
    )
    cutoff_notice: str = Field("", description="Text appended where a stream is cut off.")
    scan_timeout_ms: int = Field(
        100, ge=1, le=10_000, description="Upper bound on one regex scan (stops backtracking)."
    )
    unknown: UnknownText = Field(
        UnknownText.MODERATE,
        description=(
            "Text in fields no adapter knows: moderate it like any text, or drop it (the "
            "field goes out empty). Never passed unchecked."
        ),
    )
    tool_arguments: ToolArguments = Field(
        ToolArguments.WHOLE,
        description=(
            "whole: a tool call's arguments are held until the call is complete and a block "
            "withdraws the whole call; stream: arguments stream like text and a block leaves "
            "them truncated."
        ),
    )


class DetectorRef(BaseModel):
    """``detector: {name: phone, regions: [US]}``; options are checked by the detector."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Match(_Strict):
    """Exactly one of ``regex``, ``keywords``, ``detector`` (``classifier`` is reserved)."""

    regex: str | None = Field(None, description="A pattern in Python `regex` syntax.")
    keywords: list[str] | None = Field(None, description="Literal phrases.")
    detector: str | DetectorRef | None = Field(None, description="A built-in detector.")
    ignore_case: bool = False
    whole_words: bool = Field(False, description="keywords only: match whole words only.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Match:
        kinds = [k for k in ("regex", "keywords", "detector") if getattr(self, k) is not None]
        if len(kinds) != 1:
            got = ", ".join(kinds) if kinds else "none"
            raise ValueError(f"match needs exactly one of regex, keywords, detector (got {got})")
        if self.whole_words and self.keywords is None:
            raise ValueError("whole_words applies to keywords only")
        if self.ignore_case and self.detector is not None:
            raise ValueError("ignore_case does not apply to detectors")
        return self

    @field_validator("keywords")
    @classmethod
    def _keywords_not_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            if not value:
                raise ValueError("keywords must list at least one phrase")
            if any(not k.strip() for k in value):
                raise ValueError("keywords must not contain an empty phrase")
        return value

    @field_validator("regex")
    @classmethod
    def _regex_not_empty(cls, value: str | None) -> str | None:
        if value is not None and not value:
            raise ValueError("regex must not be empty")
        return value

    @property
    def kind(self) -> Literal["regex", "keywords", "detector"]:
        if self.regex is not None:
            return "regex"
        return "keywords" if self.keywords is not None else "detector"


class Examples(_Strict):
    match: list[str] = Field(default_factory=list, description="Texts the rule must fire on.")
    no_match: list[str] = Field(default_factory=list, description="Texts it must not fire on.")


class PolicyRule(_Strict):
    id: str = Field(pattern=RULE_ID_PATTERN, description="Unique within the policy.")
    description: str = ""
    severity: Severity = Severity.MEDIUM
    scope: list[Direction] = Field(
        default_factory=lambda: [Direction.OUTPUT, Direction.INPUT], min_length=1
    )
    match: Match
    action: RuleAction
    replacement: str | None = Field(
        None, description='redact only; "{rule}" is replaced by the rule id.'
    )
    examples: Examples = Field(default_factory=Examples)

    @field_validator("replacement")
    @classmethod
    def _replacement_needs_redact(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A field validator, so the error points at the ``replacement:`` line."""
        action = info.data.get("action")
        if value is not None and action is not None and action is not RuleAction.REDACT:
            raise ValueError(
                f"replacement is only allowed when action is redact (action is {action})"
            )
        return value

    @field_validator("scope")
    @classmethod
    def _scope_unique(cls, value: list[Direction]) -> list[Direction]:
        if len(set(value)) != len(value):
            raise ValueError("scope lists a direction twice")
        return value

    @property
    def rendered_replacement(self) -> str:
        return (self.replacement or "[REDACTED]").replace("{rule}", self.id)


class PolicyTest(_Strict):
    """A whole-policy case: ``output`` is what the client must receive for ``input``."""

    input: str
    output: str
    direction: Direction = Direction.OUTPUT
    rules: list[str] | None = Field(
        None, description="If given, exactly these rule ids must hit (in order)."
    )


class Policy(_Strict):
    version: Literal[1]
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    description: str = ""
    mode: Mode = Mode.ENFORCE
    settings: PolicySettings = Field(default_factory=PolicySettings)
    rules: list[PolicyRule] = Field(default_factory=list)
    tests: list[PolicyTest] = Field(default_factory=list)


def policy_json_schema() -> dict[str, Any]:
    """The editor-facing schema; ``match.detector`` lists the real names and options."""
    schema = Policy.model_json_schema()
    detector = schema["$defs"]["Match"]["properties"]["detector"]
    detector["anyOf"] = [detector_options_schema(), {"type": "null"}]
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Sluicegate policy, version 1"
    return schema
