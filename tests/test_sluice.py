"""Example tests for the sluice: actions, overlaps, boundaries, limits and failures.

Every case goes through ``tr`` (after h11's test helper): the text whole, one character
per feed, and split at every point, because a rule that works on whole text but not
across a chunk boundary is exactly the bug a streaming gateway must not have.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest

from gateway.detectors.registry import build_detector
from gateway.sluice import (
    ERROR_RULE,
    HOLD_LIMIT_RULE,
    Action,
    Hit,
    Matcher,
    Reason,
    Rule,
    SluiceConfig,
    Step,
    compile_rule,
    moderate,
)
from gateway.sluice.prefilter import context_literals

TIMEOUT = 1.0


def config(
    *rules: Rule,
    max_hold: int = 512,
    fail_closed: bool = True,
    notice: str = "",
    timeout: float = TIMEOUT,
) -> SluiceConfig:
    return SluiceConfig(
        enforce=Matcher([r for r in rules if r.action is not Action.FLAG], timeout),
        observe=Matcher([r for r in rules if r.action is Action.FLAG], timeout),
        max_hold=max_hold,
        fail_closed=fail_closed,
        cutoff_notice=notice,
    )


@dataclass(frozen=True)
class Outcome:
    text: str
    hits: tuple[tuple[str, Action, int, int, Reason], ...]
    cut: bool


def outcome(steps: Sequence[Step]) -> Outcome:
    hits = sorted((h.rule_id, h.action, h.start, h.end, h.reason) for s in steps for h in s.hits)
    return Outcome("".join(s.text for s in steps), tuple(hits), any(s.cut for s in steps))


def feed_all(cfg: SluiceConfig, chunks: Sequence[str]) -> list[Step]:
    sluice = cfg.open()
    steps = [sluice.feed(c) for c in chunks]
    steps.append(sluice.finish())
    return steps


def chunkings(text: str) -> Iterator[list[str]]:
    yield [text]
    yield list(text)
    for cut in range(1, len(text)):
        yield [text[:cut], text[cut:]]


def tr(cfg: SluiceConfig, text: str) -> Outcome:
    """The outcome of ``text``, asserting it is the same however the text is split."""
    whole = outcome([moderate(cfg, text)])
    for chunks in chunkings(text):
        assert outcome(feed_all(cfg, chunks)) == whole, f"split {chunks!r}"
    return whole


SECRET = Rule("secret.key", r"sk-[A-Za-z0-9]{8,}", Action.REDACT, "[KEY]")
BANNED = Rule("banned", r"(?<!\w)(?:project nightingale)(?!\w)", Action.BLOCK, ignore_case=True)


# -- actions ---------------------------------------------------------------------------


def test_redact_replaces_the_span_and_the_stream_goes_on() -> None:
    got = tr(config(SECRET), "key sk-abcdefgh123 and sk-zyxwvuts9 ok")
    assert got.text == "key [KEY] and [KEY] ok"
    assert got.hits == (
        ("secret.key", Action.REDACT, 4, 18, Reason.MATCH),
        ("secret.key", Action.REDACT, 23, 35, Reason.MATCH),
    )
    assert not got.cut


def test_redacted_piece_carries_input_offsets() -> None:
    step = moderate(config(SECRET), "a sk-abcdefgh1 b")
    assert [(p.start, p.end, p.text, p.redacted) for p in step.pieces] == [
        (0, 2, "a ", False),
        (2, 14, "[KEY]", True),
        (14, 16, " b", False),
    ]


def test_block_cuts_at_the_match_start() -> None:
    got = tr(
        config(BANNED, SECRET), "fine sk-abcdefgh1, then Project  Nightingale; PROJECT NIGHTINGALE!"
    )
    assert got.text == "fine [KEY], then Project  Nightingale; "
    assert got.cut
    assert ("banned", Action.BLOCK, 46, 65, Reason.MATCH) in got.hits


def test_flag_changes_nothing_and_never_holds() -> None:
    flag = Rule("flag.mail", r"[\w.+-]+@[\w-]+\.[\w.]+", Action.FLAG)
    cfg = config(flag)
    text = "write to bob@example.com today"
    got = tr(cfg, text)
    assert got.text == text
    assert got.hits == (("flag.mail", Action.FLAG, 9, 24, Reason.MATCH),)
    sluice = cfg.open()
    assert [sluice.feed(c).text for c in text] == list(text), "flag rules must not delay text"


def test_text_no_rule_touches_passes_unchanged_in_the_same_feed() -> None:
    sluice = config(SECRET, BANNED).open()
    for delta in ["Hello", ", ", "wörld 🙂", "\n", "", "1 + 1 = 2"]:
        step = sluice.feed(delta)
        assert (step.text, step.held, step.hits) == (delta, 0, ())


@pytest.mark.parametrize("text", ["foobar.", "foobar"])
def test_flag_rules_judge_the_text_as_cut(text: str) -> None:
    """After a cut the client saw "foo" and nothing more; a flag rule judges exactly that.

    Fails today: a flag rule that stopped matching once "b" arrived ("foob") is not
    re-asked after the cut truncates the text back to "foo", so the hit depends on
    whether the block was decided in the same feed that brought "foo" (whole text,
    "foobar.") or later ("foob" + "ar.", or "foobar" decided at finish).
    """
    cfg = config(Rule("banned", "bar", Action.BLOCK), Rule("word", r"\bfoo\b", Action.FLAG))
    got = tr(cfg, text)
    assert got.text == "foo"
    assert got.hits == (
        ("banned", Action.BLOCK, 3, 6, Reason.MATCH),
        ("word", Action.FLAG, 0, 3, Reason.MATCH),
    )


def test_shadow_rules_report_what_they_would_do() -> None:
    shadow = Rule("secret.key", SECRET.pattern, Action.FLAG, intended=Action.REDACT)
    text = "k sk-abcdefgh1 k"
    got = tr(config(shadow), text)
    assert got.text == text
    (hit,) = moderate(config(shadow), text).hits
    assert (hit.action, hit.intended, hit.start, hit.end) == (Action.FLAG, Action.REDACT, 2, 14)


# -- overlaps: leftmost, then longest, then strongest -------------------------------------


@pytest.mark.parametrize("reverse", [False, True], ids=["declared", "reversed"])
def test_leftmost_match_wins(reverse: bool) -> None:
    rules = [Rule("late", "bcd", Action.BLOCK), Rule("early", "abc", Action.REDACT, "<E>")]
    got = tr(config(*(reversed(rules) if reverse else rules)), "xabcd")
    assert (got.text, got.cut) == ("x<E>d", False)


@pytest.mark.parametrize("reverse", [False, True], ids=["declared", "reversed"])
def test_longest_match_wins_at_the_same_start(reverse: bool) -> None:
    rules = [Rule("short", "foo", Action.BLOCK), Rule("long", r"foo\w+", Action.REDACT, "<L>")]
    cfg = config(*(reversed(rules) if reverse else rules))
    assert tr(cfg, "a foobar b").text == "a <L> b"
    assert tr(cfg, "a foo b") == Outcome("a ", (("short", Action.BLOCK, 2, 5, Reason.MATCH),), True)


@pytest.mark.parametrize("reverse", [False, True], ids=["declared", "reversed"])
def test_stronger_action_wins_on_the_same_span(reverse: bool) -> None:
    rules = [
        Rule("flag", "secret", Action.FLAG),
        Rule("redact", "secret", Action.REDACT, "<R>"),
        Rule("block", "secret", Action.BLOCK),
    ]
    cfg = config(*(reversed(rules) if reverse else rules))
    got = tr(cfg, "my secret")
    assert got.text == "my "
    assert ("block", Action.BLOCK, 3, 9, Reason.MATCH) in got.hits
    assert not any(h[0] == "redact" for h in got.hits)


def test_shadow_overlaps_resolve_by_intended_action() -> None:
    """A shadow policy reports the hit its enforcing twin would act on."""
    weak = Rule("weak", "secret", Action.FLAG, intended=Action.REDACT)
    strong = Rule("strong", "secret", Action.FLAG, intended=Action.BLOCK)
    for rules in ([weak, strong], [strong, weak]):
        hits = moderate(config(*rules), "a secret").hits
        assert [(h.rule_id, h.intended) for h in hits] == [("strong", Action.BLOCK)]


def test_keyword_inside_a_longer_match_is_swallowed_by_it() -> None:
    kw = Rule("kw", "nightingale", Action.BLOCK)
    mail = Rule("mail", r"[\w.+-]+@[\w-]+\.[\w.]+", Action.REDACT, "[EMAIL]")
    got = tr(config(kw, mail), "to nightingale@example.com.")
    assert (got.text, got.cut) == ("to [EMAIL]", False)


def test_matches_straddling_the_hold_resolve_like_whole_text() -> None:
    """``a|abc`` prefers ``a``; the stream must not pick ``abc`` because it saw it grow."""
    rule = Rule("alt", "a|abc", Action.REDACT, "<A>")
    assert tr(config(rule), "xabc").text == "x<A>bc"


# -- boundaries at chunk edges --------------------------------------------------------------

CAT = Rule("cat", r"\bcat\b", Action.REDACT, "[CAT]")
KEYVAL = Rule("kv", r"(?<=key=)\w+", Action.REDACT, "***")
WHOLE = Rule("ww", r"(?<!\w)(?:foo bar|foo)(?!\w)", Action.REDACT, "[W]")


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("the cat sat", "the [CAT] sat"),
        ("concat", "concat"),
        ("cats", "cats"),
        ("cat", "[CAT]"),
        ("a cat.", "a [CAT]."),
        ("scat cat_ cat", "scat cat_ [CAT]"),
    ],
)
def test_word_boundary_across_chunks(text: str, want: str) -> None:
    assert tr(config(CAT), text).text == want


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("key=abc123 rest", "key=*** rest"),
        ("key= abc", "key= abc"),
        ("monkey=banana", "monkey=***"),
        ("ke y=abc", "ke y=abc"),
        ("key=", "key="),
    ],
)
def test_look_behind_across_chunks(text: str, want: str) -> None:
    assert tr(config(KEYVAL), text).text == want


def test_look_behind_sees_context_that_was_released_long_ago() -> None:
    """The look-behind's text left many feeds earlier; the kept context must cover it."""
    sluice = config(KEYVAL).open()
    released = sluice.feed("x" * 1000 + "key=").text
    released += sluice.feed("y" * 100).text + sluice.feed(" done").text + sluice.finish().text
    assert released == "x" * 1000 + "key=*** done"


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("foo", "[W]"),
        ("foobar", "foobar"),
        ("xfoo", "xfoo"),
        ("foo bar", "[W]"),
        ("foo barn", "[W] barn"),
        ("foo_", "foo_"),
        ("(foo)", "([W])"),
    ],
)
def test_whole_words_across_chunks(text: str, want: str) -> None:
    assert tr(config(WHOLE), text).text == want


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("see example.com now", "see example[TLD] now"),
        ("example.community", "example.community"),
        ("a .org", "a [TLD]"),
    ],
)
def test_word_boundary_after_punctuation_across_chunks(text: str, want: str) -> None:
    """``\\b`` after a non-word character turns true only when a word character follows.

    At the end of a buffer it is still undecided, so the text before it must be held.
    Fails today: ``regex``'s partial matching reports no partial match for a ``\\b``
    evaluated at the end of the string, so the probe releases ``example.`` and the
    ``.com`` that follows is never redacted (a leak).
    """
    rule = Rule("tld", r"[.]\b(?:com|org)\b", Action.REDACT, "[TLD]")
    assert tr(config(rule), text).text == want


def test_non_word_boundary_at_the_buffer_end_is_held() -> None:
    """``\\B`` at the end of a buffer has the same gap as ``\\b`` after punctuation."""
    rule = Rule("nb", r"foo\B", Action.REDACT, "<F>")
    assert tr(config(rule), "foox").text == "<F>x"


def test_rules_with_equal_group_names_can_share_a_scan() -> None:
    """Two rules may use the same group name; numbering must not shift for later rules.

    Fails today: ``regex`` gives equal names one group number, so the bank's group
    offsets overshoot and ``first_alternative`` raises IndexError on any hit of a later rule.
    """
    rules = [
        Rule("a", r"(?P<v>x)yz", Action.REDACT),
        Rule("b", r"(?P<v>a)b", Action.REDACT),
        Rule("c", "cd", Action.REDACT, "<C>"),
    ]
    assert tr(config(*rules), "cd xyz").text == "<C> [REDACTED]"


def test_ignore_case_applies_to_its_own_rule_only() -> None:
    loud = Rule("loud", "secret", Action.REDACT, "<S>", ignore_case=True)
    quiet = Rule("quiet", "token", Action.REDACT, "<T>")
    assert tr(config(loud, quiet), "SeCrEt TOKEN token").text == "<S> TOKEN <T>"


@pytest.mark.parametrize(
    ("keyword", "text"),
    [("secret", "a \u017fecret b"), ("secret", "a \u017fECRET b"), ("kelvin", "\u212aelvin")],
    ids=["long-s", "long-s-upper", "kelvin-sign"],
)
def test_ignore_case_follows_regex_case_folding(keyword: str, text: str) -> None:
    """Whatever the rule's regex matches under ignore-case, the sluice must act on.

    ``regex`` folds U+017F (long s) onto ``s`` and U+212A (Kelvin) onto ``k``, so a
    model can write either and the policy still applies. Fails today for long s: the
    trigram pre-filter keys ignore-case rules by ``str.lower()``, which leaves U+017F
    alone, so "ſecret" never asks the rule at all and passes unredacted.
    """
    rule = Rule("kw", keyword, Action.REDACT, "<K>", ignore_case=True)
    assert compile_rule(rule).search(text), "premise: the rule's own regex matches"
    assert "<K>" in tr(config(rule), text).text


def test_validator_rejects_a_candidate_which_is_then_released() -> None:
    even = Rule("num", r"\d{4}", Action.REDACT, "<N>", validate=lambda s: int(s) % 2 == 0)
    assert tr(config(even), "1234 1235").text == "<N> 1235"


# -- the hold limit -------------------------------------------------------------------------

MAIL = Rule("mail", r"[\w.+-]+@[\w-]+\.[\w.]+", Action.REDACT, "[EMAIL]")


def test_hold_is_no_longer_than_a_possible_match() -> None:
    sluice = config(SECRET).open()
    assert sluice.feed("my key is sk").text == "my key is "
    assert sluice.held == 2
    assert sluice.feed("-abc").held == 6
    step = sluice.feed("! ok")
    assert (step.text, step.held) == ("sk-abc! ok", 0)


def test_hold_limit_block_cuts_and_says_why() -> None:
    text = "hi " + "a" * 40 + " bye"
    got = tr(config(MAIL, max_hold=16, notice="[cut]"), text)
    assert got == Outcome(
        "hi [cut]", ((HOLD_LIMIT_RULE, Action.BLOCK, 3, 20, Reason.HOLD_LIMIT),), True
    )


def test_hold_limit_allow_releases_and_flags() -> None:
    text = "hi " + "a" * 40 + " bye"
    got = tr(config(MAIL, max_hold=16, fail_closed=False), text)
    assert got.text == text
    assert not got.cut
    assert got.hits[0] == (HOLD_LIMIT_RULE, Action.FLAG, 3, 20, Reason.HOLD_LIMIT)


def test_held_never_exceeds_max_hold() -> None:
    sluice = config(MAIL, max_hold=16, fail_closed=False).open()
    for char in "x" * 100:
        assert sluice.feed(char).held <= 16


def test_a_long_match_fed_whole_is_held_and_redacted() -> None:
    secret = "sk-" + "A" * 300
    got = tr(config(SECRET, max_hold=512), f"a {secret} b")
    assert got.text == "a [KEY] b"


# -- failures: catastrophic backtracking must not hang --------------------------------------

EXPONENTIAL = Rule("slow", "(a|a)+b", Action.REDACT)  # ``regex`` defuses (a+)+b, not this
SLOW_TEXT = "x " + "a" * 40 + "!"


def test_scan_timeout_fails_closed_by_default() -> None:
    cfg = config(EXPONENTIAL, timeout=0.02, notice="[stopped]")
    for chunks in ([SLOW_TEXT], list(SLOW_TEXT)):
        steps = feed_all(cfg, chunks)
        got = outcome(steps)
        assert got.cut
        assert got.text.endswith("[stopped]")
        assert "a" * 20 not in got.text
        errors = [h for s in steps for h in s.hits]
        assert [(h.rule_id, h.action, h.reason) for h in errors] == [
            (ERROR_RULE, Action.BLOCK, Reason.ERROR)
        ]


def test_scan_timeout_with_allow_releases_the_text() -> None:
    cfg = config(EXPONENTIAL, timeout=0.02, fail_closed=False)
    for chunks in ([SLOW_TEXT], list(SLOW_TEXT)):
        steps = feed_all(cfg, chunks)
        got = outcome(steps)
        assert (got.text, got.cut) == (SLOW_TEXT, False)
        hits = [h for s in steps for h in s.hits]
        assert hits
        assert all(
            (h.rule_id, h.action, h.reason) == (ERROR_RULE, Action.FLAG, Reason.ERROR) for h in hits
        )


# -- cut-off notice and the end of a stream -----------------------------------------------


def test_cutoff_notice_comes_once_on_the_cut_step() -> None:
    sluice = config(BANNED, notice=" [removed]").open()
    first = sluice.feed("ok so project night")
    assert (first.text, first.cut, first.notice) == ("ok so ", False, "")
    cut = sluice.feed("ingale is on")
    assert (cut.text, cut.cut, cut.notice, cut.held) == (" [removed]", True, " [removed]", 0)
    assert sluice.done
    assert sluice.feed("more text") == Step()
    assert sluice.finish() == Step()


def test_finish_after_cut_releases_nothing() -> None:
    sluice = config(BANNED).open()
    assert sluice.feed("Project Nightingale. And then").cut
    assert sluice.finish() == Step()


def test_finish_decides_a_match_still_growing() -> None:
    sluice = config(SECRET).open()
    assert sluice.feed("end sk-abcdefgh12").text == "end "
    last = sluice.finish()
    assert (last.text, last.held) == ("[KEY]", 0)
    assert last.hits == (Hit("secret.key", Action.REDACT, 4, 17),)


def test_feeding_after_finish_is_ignored() -> None:
    sluice = config(SECRET).open()
    sluice.feed("done")
    assert sluice.finish().text == ""
    assert sluice.done
    assert sluice.feed("sk-abcdefgh123") == Step()
    assert sluice.finish() == Step()


def test_moderate_equals_feed_then_finish() -> None:
    cfg = config(SECRET, BANNED, notice="!")
    text = "a sk-abcdefgh1 b project nightingale c"
    whole = moderate(cfg, text)
    assert (whole.text, whole.cut, whole.notice) == ("a [KEY] b !", True, "!")


def test_allow_gives_up_only_on_the_overlong_match() -> None:
    """One unclosed match that outgrows the hold must not switch the other rules off."""
    unclosed = Rule("ang", r"<<[^>]*>>", Action.REDACT, "[A]")
    key = Rule("key", r"sk-[a-z0-9]{8,}", Action.REDACT, "[K]")
    cfg = SluiceConfig(Matcher([unclosed, key], 0.1), Matcher([], 0.1), 32, fail_closed=False)
    got = tr(cfg, "see << sk-abcdefgh12 " + "x" * 40 + " done")
    assert got.text == "see << [K] " + "x" * 40 + " done"
    assert [h[0] for h in got.hits] == ["key", "sluice.hold_limit"]


@pytest.mark.parametrize(
    "text",
    ["secret = hunter2hunter2 ok", "Token:   hunter2hunter2", "ſECRET=hunter2hunter2 " * 2],
)
def test_look_behind_words_arm_a_rule_whenever_they_precede(text: str) -> None:
    """A rule that must follow certain words is skipped until one is in the buffer,
    however the words and the value are split across feeds."""
    pattern = r"(?<=(?i:secret|token)\s{0,3}[:=]\s{0,3})\w{8,}"
    assert context_literals(pattern) == {"secret", "token"}, "premise: the rule is armed by words"
    rule = Rule("pw", pattern, Action.REDACT, "<P>")
    got = tr(config(rule), text)
    assert "hunter2" not in got.text
    assert "<P>" in got.text


def test_context_words_cased_with_a_dotted_capital_i_still_arm_their_rule() -> None:
    # regex folds "İ" (U+0130) with "i", but "İ".casefold() is two characters, so a
    # casefolded search for the rule's context word would miss it and skip the rule.
    detector = build_detector("generic_secret")
    rule = Rule(
        "gs",
        detector.pattern,
        Action.REDACT,
        "<S>",
        ignore_case=detector.ignore_case,
        validate=detector.validate,
    )
    cfg = SluiceConfig(Matcher([rule], 1.0), Matcher([], 1.0), max_hold=512)
    for text in ("PRİVATE_KEY=a8F3kQ9zX2mP7vL1", "CREDENTİAL=a8F3kQ9zX2mP7vL1"):
        assert moderate(cfg, text).text.endswith("<S>"), text
