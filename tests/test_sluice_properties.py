"""Property tests: the sluice's invariants over generated texts, chunkings and rule sets.

The engine is compared against references that do not share its machinery:

* ``moderate(config, whole_text)``: the same engine fed everything at once. Streaming
  must give exactly this (chunking invariance), and nothing released at any step may
  disagree with it (no leak).
* a brute-force oracle for the hold: each rule compiled on its own with plain ``regex``
  and asked, with ``partial=True``, whether it can still match from a given position to
  the end of the text. It never touches the engine's probes, FIRST-set filter or
  active-rule bookkeeping, so a bug in any of them shows up as a disagreement here.
* a reference scan of the whole text (leftmost, then longest, then strongest), rule by
  rule and position by position, for the hits themselves.

Texts are built from fragments that matter to the rules (matches, near-misses such as
``sk-`` with too few characters, overlapping matches) mixed with benign prose, unicode
and random characters from an alphabet that rules care about.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import pytest
import regex
from hypothesis import assume, given, note
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from gateway.sluice import (
    ERROR_RULE,
    HOLD_LIMIT_RULE,
    Action,
    Hit,
    Matcher,
    Piece,
    Reason,
    Rule,
    SluiceConfig,
    Step,
    moderate,
)

TIMEOUT = 2.0  # generous: no rule below backtracks, and a timeout would break invariance


# -- rules ---------------------------------------------------------------------------


def keywords(words: Iterable[str], *, whole_words: bool = False) -> str:
    """Keyword list to pattern, longest first, as the policy compiler builds it."""
    body = "|".join(regex.escape(w) for w in sorted(set(words), key=lambda w: (-len(w), w)))
    return f"(?<!\\w)(?:{body})(?!\\w)" if whole_words else body


def even_digit_sum(text: str) -> bool:
    """A stand-in for Luhn: rejects about half the candidates, deterministically."""
    return sum(int(c) for c in text) % 2 == 0


KW = ("foo", "foobar", "bar baz", "secret")
EMAIL = r"[\w.+-]+@[\w-]+\.[\w.]+"

SECRET = Rule("secret.key", r"sk-[A-Za-z0-9]{8,}", Action.REDACT, "[KEY]")
AWS = Rule("secret.aws", r"AKIA[0-9A-Z]{16}", Action.REDACT, "[AWS]")
MAIL = Rule("pii.email", EMAIL, Action.REDACT, "[EMAIL]")
CAT = Rule("word.cat", r"\b(?:cat|category)\b", Action.REDACT, "[CAT]")
KEYVAL = Rule("secret.kv", r"(?<=key=)\w+", Action.REDACT, "***")
BANNED = Rule("banned.forbidden", keywords(["forbidden"], whole_words=True), Action.BLOCK)
KWRULE = Rule("kw.plain", keywords(KW), Action.REDACT, "[KW]")
KWWWIC = Rule("kw.words", keywords(KW, whole_words=True), Action.REDACT, "[KW]", ignore_case=True)
DIGITS = Rule("num.even", r"\d{4,8}", Action.REDACT, "[NUM]", validate=even_digit_sum)
# Overlaps: a keyword inside a longer match, and two rules at one start, different lengths.
ABC = Rule("ov.abc", "abc", Action.REDACT, "[ABC]")
XABC = Rule("ov.xabc", r"xabc\w*", Action.BLOCK)
FOO_SHORT = Rule("ov.foo", "foo", Action.BLOCK)
FOO_LONG = Rule("ov.foo-long", r"foo\w+", Action.REDACT, "[FOOW]")
FLAG_FOO = Rule("flag.foo", "foo", Action.FLAG)
FLAG_MAIL = Rule("flag.email", EMAIL, Action.FLAG)
FLAG_WORD = Rule("flag.word", r"\b(?:foo|cat)\b", Action.FLAG)
# Blocks mid-word, so a cut can end the text right after a word a flag rule is waiting
# on: in "foobar" the flag rule matches "foo" only once the cut has removed "bar".
FORBID = Rule("banned.forbid", "forbid", Action.BLOCK)
BAR = Rule("banned.bar", "bar", Action.BLOCK)
# ``\b`` right after a non-word character: it can turn true only when more text arrives.
DOT_TLD = Rule("dot.tld", r"[.]\b(?:com|org)\b", Action.REDACT, "[TLD]")
FOO_IN_WORD = Rule("foo.in-word", r"foo\B", Action.REDACT, "[FOO-]")


def shadow(rules: Iterable[Rule]) -> tuple[Rule, ...]:
    """What a ``mode: shadow`` policy compiles to: every action FLAG, the intent kept."""
    return tuple(
        Rule(r.id, r.pattern, Action.FLAG, r.replacement, r.ignore_case, r.validate, r.action)
        for r in rules
    )


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    max_hold: int = 64
    fail_closed: bool = True
    notice: str = ""
    #: characters that can start no match of any rule, in any context
    benign: str = " ,;!?\n()[]/"
    config: SluiceConfig = field(init=False, compare=False)

    def __post_init__(self) -> None:
        enforce = [r for r in self.rules if r.action is not Action.FLAG]
        observe = [r for r in self.rules if r.action is Action.FLAG]
        config = SluiceConfig(
            enforce=Matcher(enforce, TIMEOUT),
            observe=Matcher(observe, TIMEOUT),
            max_hold=self.max_hold,
            fail_closed=self.fail_closed,
            cutoff_notice=self.notice,
        )
        object.__setattr__(self, "config", config)

    @property
    def enforcing(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.action is not Action.FLAG)


RULESETS: dict[str, RuleSet] = {
    "keywords": RuleSet((KWRULE,), benign=" ,;!?\n0123456789acdeghijklmnpqrtuvwxyz"),
    "keywords-whole-words-ignore-case": RuleSet(
        (KWWWIC,), benign=" ,;!?\n0123456789acdeghijklmnpqrtuvwxyz"
    ),
    "prefix-secrets": RuleSet((SECRET, AWS), benign=" ,;!?\n.-_0123456789abcdefhijklmnopqrtuvwxyz"),
    "email": RuleSet((MAIL,)),
    "word-boundaries": RuleSet((CAT,), benign=" ,;!?\n.-abdefghijklmnopqrsuvwxyz"),
    "look-behind": RuleSet((KEYVAL,), benign=" ,;!?\n.-abcdefghijklmnopqrstuvwxyz"),
    "block": RuleSet((BANNED, SECRET), notice=" [cut off]"),
    "overlaps": RuleSet((ABC, XABC, FOO_SHORT, FOO_LONG, SECRET, MAIL)),
    "validated": RuleSet((DIGITS, SECRET)),
    "flags": RuleSet((FLAG_FOO, FLAG_MAIL, SECRET)),
    "flags-and-block": RuleSet((FLAG_WORD, FLAG_MAIL, FORBID, BAR, SECRET), notice="[cut]"),
    "shadow": RuleSet(shadow((SECRET, MAIL, BANNED, KWWWIC, FOO_SHORT, FOO_LONG, KEYVAL))),
    "everything": RuleSet(
        (SECRET, AWS, MAIL, CAT, KEYVAL, BANNED, KWRULE, DIGITS, ABC, XABC, FLAG_FOO),
        notice="[x]",
    ),
    "hold-limit-block": RuleSet((MAIL, SECRET, BANNED), max_hold=16, notice="[held too long]"),
    "hold-limit-allow": RuleSet((MAIL, SECRET, FLAG_MAIL), max_hold=16, fail_closed=False),
    "boundary-after-punctuation": RuleSet(
        (DOT_TLD, FOO_IN_WORD), benign=" ,;!?\nabdehijklnpqstuvwxyz"
    ),
}


# -- texts and chunkings ---------------------------------------------------------------

MATCHING = [
    "foo", "foobar", "bar baz", "FOO", "Bar Baz", "bar", "fo",
    "sk-abcdEFGH1234", "sk-", "sk-abc", "sk-abcdefg", "sk-abcdefgh", "sk-forbidden1",
    "AKIAABCDEFGHIJKLMNOP", "AKIA123", "bob@example.com", "a.b+c@mail-x.co.uk", "bob@",
    "bob@ex", "@x.y", "key=", "key=s3cr3t", "ke", "key", "cat", "category", "cats",
    "concat", "forbidden", "forbid", "xabc", "abc", "ab", "1234", "13579", "246801",
    ".com", "example.org", ".", "foo@bar.baz", "xabcfoo", "secret", "SECRET", "secre",
    # a letter ``regex`` folds onto ASCII under ignore-case (long s), but str.lower() keeps
    "\u017fecret", "\u017fECRET",
]  # fmt: skip
BENIGN = ["the", "a", "quick", "é", "🙂", "日本", " ", "  ", "\n", ", ", "!", "-", "_", "="]
NEAR = "abcfoksy-=@._ 0123AKI\n"

fragments = st.one_of(
    st.sampled_from(MATCHING),
    st.sampled_from(BENIGN),
    st.text(alphabet=NEAR, min_size=1, max_size=6),
)
texts = st.lists(fragments, max_size=24).map("".join)
long_texts = st.lists(fragments, min_size=60, max_size=160).map("".join)


@st.composite
def chunked(draw: st.DrawFn, text_strategy: st.SearchStrategy[str] = texts) -> list[str]:
    """A text split one of three ways: whole, one character per feed, or at random."""
    text = draw(text_strategy)
    how = draw(st.sampled_from(["whole", "chars", "random"]))
    if how == "whole":
        return [text]
    if how == "chars":
        return list(text)
    cuts = sorted(draw(st.sets(st.integers(0, len(text)), max_size=max(1, len(text) // 2))))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in pairwise(bounds)]


# -- running and oracles -----------------------------------------------------------------


@dataclass
class Trace:
    """Everything a stream did, feed by feed, for the checks below."""

    steps: list[Step] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)  # input so far after each step

    @property
    def pieces(self) -> list[Piece]:
        return [p for s in self.steps for p in s.pieces]

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.steps)

    @property
    def hits(self) -> list[Hit]:
        return sorted_hits(h for s in self.steps for h in s.hits)

    @property
    def cut(self) -> bool:
        return any(s.cut for s in self.steps)


def sorted_hits(hits: Iterable[Hit]) -> list[Hit]:
    return sorted(hits, key=lambda h: (h.start, h.end, h.rule_id, h.action, h.reason))


def stream(config: SluiceConfig, chunks: Sequence[str]) -> Trace:
    sluice = config.open()
    trace = Trace()
    so_far = ""
    for chunk in chunks:
        so_far += chunk
        trace.steps.append(sluice.feed(chunk))
        trace.inputs.append(so_far)
    trace.steps.append(sluice.finish())
    trace.inputs.append(so_far)
    return trace


_ORACLE: dict[Rule, regex.Pattern[str]] = {}
# ``regex``'s partial matching calls ``\b`` at the end of the string false after a
# non-word character, where more text could still make it true; the same assertion
# as look-arounds reads past the end and is reported as partial.
_BOUNDARY = regex.compile(r"(?<!\\)\\([bB])")
_SPELLED = {"b": r"(?:(?<=\w)(?!\w)|(?<!\w)(?=\w))", "B": r"(?:(?<=\w)(?=\w)|(?<!\w)(?!\w))"}


def oracle(rule: Rule) -> regex.Pattern[str]:
    """The rule alone, compiled without any of the engine's wrapping or filtering."""
    if rule not in _ORACLE:
        pattern = _BOUNDARY.sub(lambda m: _SPELLED[m.group(1)], rule.pattern)
        _ORACLE[rule] = regex.compile(pattern, regex.IGNORECASE if rule.ignore_case else 0)
    return _ORACLE[rule]


def can_reach_end(rules: Iterable[Rule], text: str, pos: int) -> bool:
    """Could some rule, starting at ``pos``, still be matching when the text runs out?

    The rule sees the text before ``pos`` too (``fullmatch(text, pos)``, not
    ``fullmatch(text[pos:])``): a look-behind or ``\\b`` decides on it, and slicing it
    off would make both the "held for a reason" and the "released safely" checks lie.
    """
    return any(oracle(r).fullmatch(text, pos, partial=True) is not None for r in rules)


def forbidden_spans(whole: Step) -> list[tuple[int, float]]:
    """Input spans the whole-text run did not let through verbatim."""
    spans: list[tuple[int, float]] = []
    for hit in whole.hits:
        if hit.action is Action.REDACT:
            spans.append((hit.start, hit.end))
        elif hit.action is Action.BLOCK:
            spans.append((hit.start, float("inf")))
    return spans


def failed_open(step: Step) -> bool:
    """A step where ``on_error: allow`` let unchecked text through (by design)."""
    return any(
        h.rule_id in (HOLD_LIMIT_RULE, ERROR_RULE) and h.action is Action.FLAG for h in step.hits
    )


def check_chunking_invariance(config: SluiceConfig, chunks: Sequence[str]) -> None:
    text = "".join(chunks)
    whole = moderate(config, text)
    trace = stream(config, chunks)
    assert trace.text == whole.text
    assert trace.hits == sorted_hits(whole.hits)
    assert trace.cut == whole.cut


def check_no_leak(config: SluiceConfig, chunks: Sequence[str]) -> None:
    text = "".join(chunks)
    whole = moderate(config, text)
    trace = stream(config, chunks)
    released = ""
    for step in trace.steps:
        released += step.text
        assert whole.text.startswith(released), f"released {released!r}, whole {whole.text!r}"
    spans = forbidden_spans(whole)
    for piece in trace.pieces:
        if piece.redacted:
            continue
        assert piece.text == text[piece.start : piece.end], "a plain piece must be input text"
        for start, end in spans:
            assert piece.end <= start or piece.start >= end, (
                f"piece {piece} overlaps a span the whole run removed: [{start}, {end})"
            )


def check_minimal_hold(config: SluiceConfig, chunks: Sequence[str]) -> None:
    trace = stream(config, chunks)
    rules = config.enforce.rules
    for step, so_far in zip(trace.steps[:-1], trace.inputs, strict=False):
        assert step.held <= config.max_hold
        if step.held:
            hold_pos = len(so_far) - step.held
            note(f"input so far {so_far!r}, held {so_far[hold_pos:]!r}")
            assert can_reach_end(rules, so_far, hold_pos), "held text no rule can still match"
        if step.cut or failed_open(step):
            continue
        for piece in step.pieces:
            if piece.redacted:
                continue
            for pos in range(piece.start, piece.end):
                assert not can_reach_end(rules, so_far, pos), (
                    f"released {so_far[pos:]!r} while a rule could still match it"
                )
    assert trace.steps[-1].held == 0


# -- the properties ------------------------------------------------------------------------

NAMES = sorted(RULESETS)


@pytest.mark.parametrize("name", NAMES)
@given(chunks=chunked())
def test_chunking_invariance(name: str, chunks: list[str]) -> None:
    check_chunking_invariance(RULESETS[name].config, chunks)


@pytest.mark.parametrize("name", NAMES)
@given(chunks=chunked())
def test_no_leak(name: str, chunks: list[str]) -> None:
    check_no_leak(RULESETS[name].config, chunks)


@pytest.mark.parametrize("name", NAMES)
@given(chunks=chunked())
def test_minimal_hold(name: str, chunks: list[str]) -> None:
    check_minimal_hold(RULESETS[name].config, chunks)


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_benign_text_leaves_in_the_feed_that_brought_it(name: str, data: st.DataObject) -> None:
    ruleset = RULESETS[name]
    benign = st.text(alphabet=ruleset.benign, max_size=80)
    chunks = data.draw(chunked(benign))
    sluice = ruleset.config.open()
    for chunk in chunks:
        step = sluice.feed(chunk)
        assert (step.text, step.held, step.hits) == (chunk, 0, ())
    assert sluice.finish() == Step()


@pytest.mark.parametrize("name", NAMES)
@given(text=texts, prefix=texts)
def test_released_text_is_final_whatever_follows(name: str, text: str, prefix: str) -> None:
    """What one feed releases is a prefix of the result of *every* continuation."""
    config = RULESETS[name].config
    sluice = config.open()
    released = sluice.feed(prefix).text
    assert moderate(config, prefix + text).text.startswith(released)


def reference_scan(rules: Sequence[Rule], text: str, *, stop_at_block: bool) -> list[Hit]:
    """Whole-text semantics, spelled out: leftmost, then longest, then strongest.

    Each rule is tried on its own at every position; nothing here shares code with the
    engine's combined alternation, its group bookkeeping or its probe.
    """
    hits: list[Hit] = []
    pos = 0
    while pos < len(text):
        best: tuple[int, Action, Rule] | None = None
        for r in rules:
            m = oracle(r).match(text, pos)
            if m is None or m.end() == pos or (r.validate and not r.validate(m.group())):
                continue
            if best is None or (m.end(), r.strength) > best[:2]:
                best = (m.end(), r.strength, r)
        if best is None:
            pos += 1
            continue
        end, strength, r = best
        # Flags say what they meant only where it differs (a shadow redact or block).
        intended = strength if r.action is Action.FLAG and strength is not Action.FLAG else None
        hits.append(Hit(r.id, r.action, pos, end, intended=intended))
        if stop_at_block and strength is Action.BLOCK:
            break
        pos = end
    return hits


@pytest.mark.parametrize("name", NAMES)
@given(text=texts)
def test_whole_text_hits_equal_a_reference_scan(name: str, text: str) -> None:
    ruleset = RULESETS[name]
    whole = moderate(ruleset.config, text)
    assume(all(h.reason is Reason.MATCH for h in whole.hits))
    enforce = reference_scan(ruleset.enforcing, text, stop_at_block=True)
    cut_at = enforce[-1].start if enforce and enforce[-1].action is Action.BLOCK else len(text)
    flags = [r for r in ruleset.rules if r.action is Action.FLAG]
    observe = reference_scan(flags, text[:cut_at], stop_at_block=False)
    assert sorted_hits(whole.hits) == sorted_hits(enforce + observe)


@pytest.mark.parametrize("name", NAMES)
@given(chunks=chunked(long_texts))
def test_long_streams_are_invariant_and_leak_nothing(name: str, chunks: list[str]) -> None:
    """Long enough that the engine trims its buffer and keeps only look-behind context."""
    check_chunking_invariance(RULESETS[name].config, chunks)
    check_no_leak(RULESETS[name].config, chunks)


@pytest.mark.parametrize("name", NAMES)
def test_the_fragments_fire_every_rule(name: str) -> None:
    """Guard against a silent generator: each rule fires on some fragment on its own."""
    for r in RULESETS[name].rules:
        alone = RuleSet((r,)).config
        assert any(moderate(alone, f" {f} ").hits for f in MATCHING), r.id


# -- stateful: random deltas, checked at every step ------------------------------------------


class SluiceMachine(RuleBasedStateMachine):
    """Feeds random deltas, sometimes finishes, and checks the invariants after each step."""

    def __init__(self) -> None:
        super().__init__()
        self.ruleset = RULESETS[NAMES[0]]
        self.sluice = self.ruleset.config.open()
        self.input = ""
        self.released = ""
        self.prefixes: list[str] = []
        self.hits: list[Hit] = []
        self.finished = False
        self.last = Step()

    @initialize(name=st.sampled_from(NAMES))
    def choose_rules(self, name: str) -> None:
        note(f"rule set {name}")
        self.ruleset = RULESETS[name]
        self.sluice = self.ruleset.config.open()

    @rule(delta=st.one_of(fragments, st.text(alphabet=NEAR, max_size=3)))
    def feed(self, delta: str) -> None:
        if not self.finished:
            self.input += delta
        self._record(self.sluice.feed, delta)

    @precondition(lambda self: not self.finished)
    @rule()
    def finish(self) -> None:
        self._record(self.sluice.finish)
        self.finished = True
        whole = moderate(self.ruleset.config, self.input)
        assert self.released == whole.text
        assert sorted_hits(self.hits) == sorted_hits(whole.hits)
        for prefix in self.prefixes:
            assert whole.text.startswith(prefix)

    def _record(self, call: Callable[..., Step], *args: str) -> None:
        was_done = self.sluice.done
        step = call(*args)
        if was_done:
            assert step == Step(), "nothing may come out of a finished or cut stream"
        self.last = step
        self.released += step.text
        self.prefixes.append(self.released)
        self.hits.extend(step.hits)

    @invariant()
    def released_is_a_prefix_of_the_whole_result(self) -> None:
        whole = moderate(self.ruleset.config, self.input)
        assert whole.text.startswith(self.released)

    @invariant()
    def hold_is_bounded_and_justified(self) -> None:
        held = self.sluice.held
        assert held == self.last.held
        assert held <= self.ruleset.max_hold
        if held:
            assert can_reach_end(self.ruleset.enforcing, self.input, len(self.input) - held)


TestSluiceMachine = SluiceMachine.TestCase


# -- the bundled policies, with the real detectors -------------------------------------------

PII = [
    "jane.doe@example.com", "jane@", "jane.doe@example", "4111 1111 1111 1111", "4111 1111",
    "4111-1111-1111-1112", "4111111111111111", "GB82 WEST 1234 5698 7654 32", "GB82 WEST",
    "536-22-1234", "536-22", "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3i", "sk-short",
    "sk-", "AKIAZ7QW3RT5YU8IO2PL", "AKIA", "ghp_Zq8Wm3Ns7Kd2Lp9Xv4Bc6Hf1Jr5Tg0Ya8Ue3I", "ghp_",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "eyJ", "192.168.10.24", "version 1.2.3.4",
    "+1 415 555 0100", "(020) 7946 0958", "password: hunter2hunter2", "Bearer abcdefghijkl",
    "-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBg\n-----END PRIVATE KEY-----", "-----BEGIN ",
    "Project Nightingale", "project ", "falcon budget", "OPS-1234", "SEC-", "db1.corp.example.com",
    "AcmeCloud", "Globex Hosting", "idiot", "dosage", "you should take", "xoxb-1234-abcdefgh",
    "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q", "sk_live_abcdefghijklmnop1234",
]  # fmt: skip
pii_texts = st.lists(
    st.one_of(st.sampled_from(PII), st.sampled_from(BENIGN), st.text(NEAR, max_size=4)),
    max_size=16,
).map("".join)


def bundled_configs() -> dict[str, SluiceConfig]:
    """Each bundled policy in each direction; empty if the policy layer is not ready."""
    from gateway.policy import Direction, load_paths
    from gateway.policy.loader import BUNDLED_DIR

    if not any(BUNDLED_DIR.glob("*.yaml")):
        return {}
    return {
        f"{name}-{direction}": compiled.config(direction)
        for name, compiled in load_paths([BUNDLED_DIR]).items()
        for direction in Direction
    }


BUNDLED = bundled_configs()
BUNDLED_NAMES: list[object] = [*sorted(BUNDLED)] or [
    pytest.param("none", marks=pytest.mark.skip(reason="no bundled policies"))
]


@pytest.mark.parametrize("name", BUNDLED_NAMES)
@given(chunks=chunked(pii_texts))
def test_bundled_policy_invariants(name: str, chunks: list[str]) -> None:
    config = BUNDLED[name]
    check_chunking_invariance(config, chunks)
    check_no_leak(config, chunks)
    check_minimal_hold(config, chunks)
