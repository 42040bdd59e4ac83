"""``sluicegate policy test``: a policy's own examples and cases, whole and re-chunked.

Every case runs once on the whole text, then again fed one character at a time and
split at every point, because a rule that works on whole text but not across a chunk
boundary is exactly the bug a streaming gateway must not have.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from gateway.policy.compiler import CompiledPolicy
from gateway.sluice import Matcher, SluiceConfig, Step, moderate

_MAX_SPLIT_LEN = (
    400  # every split point of a longer text would be slow; one char per feed still runs
)


@dataclass(frozen=True, slots=True)
class Failure:
    where: str
    case: str
    expected: str
    got: str

    def __str__(self) -> str:
        at = next(
            (i for i, (a, b) in enumerate(zip(self.expected, self.got, strict=False)) if a != b),
            min(len(self.expected), len(self.got)),
        )
        return (
            f"{self.where}: {self.case}\n"
            f"    expected: {self.expected}\n"
            f"    got:      {self.got}\n"
            f"              {' ' * at}^ first difference"
        )


def chunkings(text: str) -> Iterator[tuple[str, list[str]]]:
    """The adversarial splits every case is re-run with."""
    yield "one char per feed", list(text)
    if len(text) <= _MAX_SPLIT_LEN:
        for cut in range(1, len(text)):
            yield f"split at {cut}", [text[:cut], text[cut:]]


def stream(config: SluiceConfig, pieces: list[str]) -> Step:
    """Feed ``pieces`` one by one; the joined result, shaped like ``moderate``'s."""
    sluice = config.open()
    steps = [sluice.feed(p) for p in pieces]
    steps.append(sluice.finish())
    return Step(
        pieces=tuple(p for s in steps for p in s.pieces),
        hits=tuple(h for s in steps for h in s.hits),
        cut=any(s.cut for s in steps),
        notice="".join(s.notice for s in steps),
    )


def _outcome(step: Step) -> tuple[str, list[str]]:
    """Text and hit rule ids in text order (lanes decide at different feeds)."""
    hits = sorted(step.hits, key=lambda h: (h.start, h.end, h.rule_id))
    return step.text, [h.rule_id for h in hits]


Outcome = Callable[[SluiceConfig, str], Step]


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One example or test case: where it is written, what it checks, how it went."""

    where: str
    case: str
    failure: Failure | None

    @property
    def passed(self) -> bool:
        return self.failure is None


def run_policy_tests(
    compiled: CompiledPolicy, judge: Outcome | None = None
) -> tuple[int, list[Failure]]:
    """Run every example and case; return how many checks ran and what failed."""
    results = list(policy_cases(compiled, judge))
    return len(results), [r.failure for r in results if r.failure is not None]


def policy_cases(compiled: CompiledPolicy, judge: Outcome | None = None) -> Iterator[CaseResult]:
    """Every example and case, one result each, in the order the file lists them.

    ``judge`` moderates a text with classifier rules too (``classifiers.text.TextJudge``);
    without one, the examples of classifier rules and the cases of a direction that has
    them are not run (and not counted), since no pattern can stand in for a verdict.
    Verdicts come from models, so cases judged by one are not re-run in other chunkings
    (the engine's own tests prove chunking invariance for the lane).
    """
    policy = compiled.policy
    for spec in policy.rules:
        base = compiled.config(spec.scope[0])
        timeout = base.enforce.timeout
        judged = spec.id in compiled.classifiers
        if judged and judge is None:
            continue
        outcome = judge if judged and judge is not None else moderate
        rules = [] if judged else [compiled.rules[spec.id]]
        alone = SluiceConfig(
            enforce=Matcher(rules, timeout),
            observe=Matcher([], timeout),
            max_hold=base.max_hold,
            fail_closed=base.fail_closed,
            classifiers=tuple(r for r in base.classifiers if r.id == spec.id),
        )
        where = f"{compiled.file}: rule {spec.id!r}"
        for text, want in [(t, True) for t in spec.examples.match] + [
            (t, False) for t in spec.examples.no_match
        ]:
            verb = "fire on" if want else "not fire on"
            name = f"should {verb} {text!r}"
            whole = outcome(alone, text)
            fired = any(h.rule_id == spec.id for h in whole.hits)
            if fired != want:
                yield CaseResult(where, name, Failure(where, name, str(want), str(fired)))
                continue
            rechunked = None if judged else next(_rechunked(alone, text, whole, where), None)
            yield CaseResult(where, name, rechunked)
    for number, case in enumerate(policy.tests, 1):
        config = compiled.config(case.direction)
        if config.classifiers and judge is None:
            continue
        whole = (judge or moderate)(config, case.input)
        where = f"{compiled.file}: test {number}"
        name = f"input {case.input!r}"
        got_text, got_rules = _outcome(whole)
        if got_text != case.output:
            yield CaseResult(where, name, Failure(where, name, repr(case.output), repr(got_text)))
            continue
        if case.rules is not None and got_rules != case.rules:
            failure = Failure(where, "rules that hit", str(case.rules), str(got_rules))
            yield CaseResult(where, name, failure)
            continue
        rechunked = (
            None if config.classifiers else next(_rechunked(config, case.input, whole, where), None)
        )
        yield CaseResult(where, name, rechunked)


def _rechunked(config: SluiceConfig, text: str, whole: Step, where: str) -> Iterator[Failure]:
    expected = _outcome(whole)
    for name, pieces in chunkings(text):
        got = _outcome(stream(config, pieces))
        if got != expected:
            yield Failure(
                where, f"{text!r} {name} differs from whole text", repr(expected), repr(got)
            )
            return
