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


class ClassifierKind(StrEnum):
    MODERATION = "moderation"
    GUARD = "guard"
    JUDGE = "judge"
    LOCAL = "local"


class GuardFamily(StrEnum):
    LLAMA_GUARD = "llama_guard"
    SHIELDGEMMA = "shieldgemma"
    GRANITE_GUARDIAN = "granite_guardian"
    QWEN3GUARD = "qwen3guard"


class ClassifierMode(StrEnum):
    HOLD = "hold"
    ASYNC = "async"


class CharSegments(_Strict):
    """``segment: {chars: N}``: fixed windows instead of sentences."""

    chars: int = Field(ge=16, le=8192, description="Characters per segment.")


class ClassifierSpec(_Strict):
    """``match: {classifier: ...}``: a model judges segments of the text (docs/classifiers.md).

    What is sent where is the author's choice and is validated here, so a typo (a guard
    without a family, a local classifier without a name) fails at load time, not on the
    first stream.
    """

    kind: ClassifierKind
    url: str | None = Field(
        None,
        description="Base URL of an OpenAI-compatible API; default: the gateway's upstream.",
    )
    api_key_env: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Environment variable holding the key for url (default: the upstream key).",
    )
    model: str | None = Field(None, description="Model name (moderation: optional).")
    family: GuardFamily | None = Field(None, description="guard only: the model family.")
    name: str | None = Field(None, description="local only: the registered classifier name.")
    instructions: str | None = Field(None, description="judge only: what to flag.")
    categories: dict[str, float] | list[str] | None = Field(
        None,
        description=(
            "moderation: {category: score threshold}; guard/judge/local: categories that "
            "count (default: any flagged verdict)."
        ),
    )
    segment: Literal["sentence"] | CharSegments = Field(
        "sentence", description="sentence (default) or {chars: N}."
    )
    first_segment_chars: int = Field(
        120, ge=16, le=8192, description="The first segment ends by this length (fast start)."
    )
    max_segment_chars: int = Field(
        600, ge=16, le=8192, description="A sentence longer than this is judged in parts."
    )
    context_segments: int = Field(
        1, ge=0, le=8, description="Earlier segments sent along as context."
    )
    mode: ClassifierMode = Field(
        ClassifierMode.HOLD,
        description="hold: text waits for its verdict; async: text streams, a flag cuts.",
    )
    timeout_seconds: float = Field(5.0, gt=0, le=120, description="Per verdict, retries included.")

    @model_validator(mode="after")
    def _fits_kind(self) -> ClassifierSpec:
        kind = self.kind
        if kind is ClassifierKind.GUARD and self.family is None:
            raise ValueError(
                "a guard classifier needs family: llama_guard, shieldgemma, "
                "granite_guardian or qwen3guard"
            )
        if kind is not ClassifierKind.GUARD and self.family is not None:
            raise ValueError("family applies to kind: guard only")
        if kind in (ClassifierKind.GUARD, ClassifierKind.JUDGE) and not self.model:
            raise ValueError(f"a {kind} classifier needs model")
        if kind is ClassifierKind.LOCAL:
            if not self.name:
                raise ValueError("a local classifier needs name (its entry point)")
            if self.url or self.api_key_env or self.model:
                raise ValueError("a local classifier takes no url, api_key_env or model")
        elif self.name is not None:
            raise ValueError("name applies to kind: local only")
        if kind is ClassifierKind.JUDGE and not (self.instructions or "").strip():
            raise ValueError("a judge classifier needs instructions")
        if kind is not ClassifierKind.JUDGE and self.instructions is not None:
            raise ValueError("instructions apply to kind: judge only")
        if isinstance(self.categories, dict) and kind is not ClassifierKind.MODERATION:
            raise ValueError("score thresholds apply to kind: moderation only; list categories")
        if isinstance(self.categories, dict) and any(
            not 0 <= v <= 1 for v in self.categories.values()
        ):
            raise ValueError("category thresholds are scores from 0 to 1")
        if self.first_segment_chars > self.max_segment_chars:
            raise ValueError("first_segment_chars must not exceed max_segment_chars")
        return self


class DetectorRef(BaseModel):
    """``detector: {name: phone, regions: [US]}``; options are checked by the detector."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


_MATCH_KINDS = ("regex", "keywords", "detector", "classifier")


class Match(_Strict):
    """Exactly one of ``regex``, ``keywords``, ``detector``, ``classifier``."""

    regex: str | None = Field(None, description="A pattern in Python `regex` syntax.")
    keywords: list[str] | None = Field(None, description="Literal phrases.")
    detector: str | DetectorRef | None = Field(None, description="A built-in detector.")
    classifier: ClassifierSpec | None = Field(
        None, description="A moderation endpoint, guard, judge or local model."
    )
    ignore_case: bool = False
    whole_words: bool = Field(False, description="keywords only: match whole words only.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Match:
        kinds = [k for k in _MATCH_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            got = ", ".join(kinds) if kinds else "none"
            raise ValueError(
                f"match needs exactly one of regex, keywords, detector, classifier (got {got})"
            )
        if self.whole_words and self.keywords is None:
            raise ValueError("whole_words applies to keywords only")
        if self.ignore_case and (self.detector is not None or self.classifier is not None):
            raise ValueError("ignore_case does not apply to detectors and classifiers")
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
    def kind(self) -> Literal["regex", "keywords", "detector", "classifier"]:
        if self.regex is not None:
            return "regex"
        if self.keywords is not None:
            return "keywords"
        return "detector" if self.detector is not None else "classifier"


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
