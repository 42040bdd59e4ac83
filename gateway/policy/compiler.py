"""Validated policy model to frozen, compiled sluice configurations.

Everything that can fail fails here, at load time, with a problem that names the file,
line and rule: a regex that does not compile, an empty-matching pattern, an unknown
detector. The result is immutable and shared by every request that uses the policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import regex

from gateway.detectors import DetectorError, build_detector
from gateway.policy.errors import Level, PolicyError, Problem
from gateway.policy.lint import pattern_errors, pattern_warnings
from gateway.policy.model import (
    ClassifierMode,
    ClassifierSpec,
    Direction,
    Match,
    Mode,
    OnError,
    Policy,
    PolicyRule,
    RuleAction,
    ToolArguments,
    UnknownText,
)
from gateway.policy.source import Source
from gateway.sluice import Action, Matcher, Rule, SluiceConfig, compile_rule
from gateway.sluice.verdicts import ClassifierRule, Segmenting

_ACTIONS = {
    RuleAction.FLAG: Action.FLAG,
    RuleAction.REDACT: Action.REDACT,
    RuleAction.BLOCK: Action.BLOCK,
}


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """A loaded policy: the model (for tests and listing) and one sluice config per direction."""

    policy: Policy
    file: str
    output: SluiceConfig
    input: SluiceConfig
    rules: dict[str, Rule]
    warnings: tuple[Problem, ...] = ()
    #: Where each classifier rule's verdicts come from, by rule id (``gateway.classifiers``).
    classifiers: dict[str, ClassifierSpec] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.policy.name

    def config(self, direction: Direction) -> SluiceConfig:
        return self.output if direction is Direction.OUTPUT else self.input


def keyword_pattern(match: Match) -> str:
    """Longest phrases first, so at one position the longest keyword wins."""
    phrases = sorted(set(match.keywords or ()), key=lambda k: (-len(k), k))
    body = "|".join(regex.escape(k) for k in phrases)
    return f"(?<!\\w)(?:{body})(?!\\w)" if match.whole_words else body


def compile_policy(policy: Policy, source: Source) -> CompiledPolicy:
    """Compile every rule or raise ``PolicyError`` with every problem found."""
    problems: list[Problem] = []
    warnings: list[Problem] = []
    rules: dict[str, Rule] = {}
    judged: dict[str, ClassifierRule] = {}
    scopes: dict[str, list[Direction]] = {}
    for index, spec in enumerate(policy.rules):
        path = ("rules", index)
        if spec.id in rules or spec.id in judged:
            first = policy.rules.index(next(r for r in policy.rules if r.id == spec.id))
            line, _ = source.locate(("rules", first))
            problems.append(
                source.problem((*path, "id"), f"duplicate rule id (first at line {line})")
            )
            continue
        if spec.match.classifier is not None:
            lane = _classifier_rule(
                spec, spec.match.classifier, policy.mode, source, path, problems
            )
            if lane is not None:
                judged[spec.id] = lane
                scopes[spec.id] = list(spec.scope)
            continue
        compiled = _compile_rule(spec, policy.mode, source, path, problems, warnings)
        if compiled is not None:
            rules[spec.id] = compiled
            scopes[spec.id] = list(spec.scope)
    configs = {}
    if not problems:
        timeout = policy.settings.scan_timeout_ms / 1000
        for direction in Direction:
            active = [r for rid, r in rules.items() if direction in scopes[rid]]
            try:
                configs[direction] = SluiceConfig(
                    enforce=Matcher([r for r in active if r.action is not Action.FLAG], timeout),
                    observe=Matcher([r for r in active if r.action is Action.FLAG], timeout),
                    max_hold=policy.settings.max_hold_chars,
                    fail_closed=policy.settings.on_error is OnError.BLOCK,
                    cutoff_notice=policy.settings.cutoff_notice,
                    whole_tool_calls=policy.settings.tool_arguments is ToolArguments.WHOLE,
                    drop_unknown=policy.settings.unknown is UnknownText.DROP,
                    classifiers=tuple(r for rid, r in judged.items() if direction in scopes[rid]),
                )
            except (regex.error, OverflowError, RecursionError) as exc:
                problems.append(source.problem(("rules",), f"rules do not combine: {exc}"))
    if problems:
        raise PolicyError(problems)
    return CompiledPolicy(
        policy=policy,
        file=source.file,
        output=configs[Direction.OUTPUT],
        input=configs[Direction.INPUT],
        rules=rules,
        warnings=tuple(warnings),
        classifiers={
            spec.id: spec.match.classifier
            for spec in policy.rules
            if spec.match.classifier is not None and spec.id in judged
        },
    )


def _classifier_rule(
    spec: PolicyRule,
    match: ClassifierSpec,
    mode: Mode,
    source: Source,
    path: tuple[str | int, ...],
    problems: list[Problem],
) -> ClassifierRule | None:
    """A classifier rule for the lane; what can only go wrong together fails here.

    Redacting a segment needs it held until its verdict, and a request field cannot be
    rewritten while it is already on its way upstream, so both are load errors.
    """
    where = (*path, "match", "classifier")
    held = match.mode is ClassifierMode.HOLD
    if spec.action is RuleAction.REDACT and not held:
        problems.append(source.problem((*where, "mode"), "action redact needs mode: hold"))
        return None
    if spec.action is RuleAction.REDACT and Direction.INPUT in spec.scope:
        problems.append(
            source.problem(
                (*path, "action"),
                "a classifier rule that redacts applies to output only; add scope: [output]",
            )
        )
        return None
    action = _ACTIONS[spec.action]
    segment = match.segment
    sentences = segment == "sentence"
    return ClassifierRule(
        id=spec.id,
        action=Action.FLAG if mode is Mode.SHADOW else action,
        intended=action,
        replacement=spec.rendered_replacement,
        # A shadow policy never changes what clients see, nor when they see it.
        hold=held and mode is not Mode.SHADOW,
        segmenting=Segmenting(
            sentences=sentences,
            chars=match.max_segment_chars if sentences else segment.chars,  # type: ignore[union-attr]
            first_chars=match.first_segment_chars,
            context=match.context_segments,
        ),
    )


def _compile_rule(
    spec: PolicyRule,
    mode: Mode,
    source: Source,
    path: tuple[str | int, ...],
    problems: list[Problem],
    warnings: list[Problem],
) -> Rule | None:
    match = spec.match
    validate = None
    ignore_case = match.ignore_case
    if match.kind == "detector":
        ref = match.detector
        name, options = (ref, {}) if isinstance(ref, str) else (ref.name, ref.options)  # type: ignore[union-attr]
        try:
            detector = build_detector(name, options)
        except DetectorError as exc:
            problems.append(source.problem((*path, "match", "detector"), str(exc)))
            return None
        pattern, validate, ignore_case = detector.pattern, detector.validate, detector.ignore_case
        where: tuple[str | int, ...] = (*path, "match", "detector")
    elif match.kind == "keywords":
        pattern, where = keyword_pattern(match), (*path, "match", "keywords")
    else:
        pattern, where = match.regex or "", (*path, "match", "regex")
    action = _ACTIONS[spec.action]
    rule = Rule(
        id=spec.id,
        pattern=pattern,
        action=Action.FLAG if mode is Mode.SHADOW else action,
        replacement=spec.rendered_replacement,
        ignore_case=ignore_case,
        validate=validate,
        intended=action,
    )
    try:
        compiled = compile_rule(rule)
    except (regex.error, RecursionError, OverflowError, ValueError) as exc:
        problems.append(source.problem(where, f"bad regex: {exc}"))
        return None
    errors = pattern_errors(pattern, compiled)
    problems.extend(source.problem(where, message) for message in errors)
    # Built-in detectors are reviewed and benchmarked here; lint the author's own patterns.
    for message in pattern_warnings(pattern) if match.kind == "regex" else ():
        problem = source.problem(where, message)
        warnings.append(
            Problem(problem.file, problem.line, problem.column, message, spec.id, Level.WARNING)
        )
    return None if errors else rule
