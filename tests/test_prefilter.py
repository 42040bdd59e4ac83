"""Tests for the prefilter: what a pattern's structure says about where its matches begin.

``first_class``, ``literal_prefixes`` and ``context_literals`` let the matcher skip rules
that cannot match the text that just arrived, so each must be a superset of the truth:
a class or prefix set too small skips a rule that would have matched, which is a leak.
Too large only costs speed. ``None`` ("not known") is always allowed.

The properties check the contract exactly as ``Matcher`` relies on it, against matches
(and partial matches at the end of the text) of the pattern compiled as a rule.
"""

from __future__ import annotations

import pytest
import regex
from hypothesis import assume, given
from hypothesis import strategies as st

from gateway.sluice import Action, Rule, compile_rule
from gateway.sluice.prefilter import GRAM, context_literals, first_class, literal_prefixes

# -- first_class ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "starts", "others"),
    [
        (r"sk-[a-z]+", "s", "kS-"),
        (r"\d{4}", "07٣", "a "),
        (r"(?:ab|cd)x", "ac", "bdx"),
        (r"a?b", "ab", "c"),
        (r"(?=x)y", "y", "x"),  # look-arounds only narrow: skipped
        (r"\bfoo", "f", "o"),
        (r"[a-c]z", "abc", "dz"),
        (r"(?>ab)c", "a", "bc"),
        (r"x{0}y", "xy", "z"),  # a superset is allowed
        (r"é+", "é", "eÉ"),
    ],
)
def test_first_class_holds_every_character_a_match_can_start_with(
    pattern: str, starts: str, others: str
) -> None:
    found = first_class(pattern, ignore_case=False)
    assert found is not None
    assert all(found.match(c) for c in starts)
    assert not any(found.match(c) for c in others)


@pytest.mark.parametrize("pattern", [r"(?i:sk)-x", r"(?i)sk", r"s(?i:k)"])
def test_first_class_folds_case_when_any_part_of_the_pattern_does(pattern: str) -> None:
    found = first_class(pattern, ignore_case=False)
    assert found is not None
    assert found.match("S") and found.match("ſ")  # long s: regex folds it with "s"


def test_first_class_folds_case_for_an_ignore_case_rule() -> None:
    found = first_class("sk", ignore_case=True)
    assert found is not None and found.match("S")
    plain = first_class("sk", ignore_case=False)
    assert plain is not None and not plain.match("S")


@pytest.mark.parametrize(
    "pattern",
    [
        r"a*",  # can match empty
        r"(?:a|)b?",
        r"[^a]x",  # negated class
        r".x",
        r"(a)|\1",
        r"\p{L}+",  # regex-only syntax
        r"[[:digit:]]+",  # a POSIX class to regex, a warning to re
        r"a{e<=1}",  # fuzzy matching to regex, literal text to re
        r"(",
    ],
)
def test_first_class_says_unknown_when_it_cannot_tell(pattern: str) -> None:
    assert first_class(pattern, ignore_case=False) is None


# -- literal_prefixes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "ignore_case", "prefixes", "folded"),
    [
        (r"sk-[a-z]+", False, {"sk-"}, False),
        (r"(?:ghp|gho)_\w+", False, {"ghp", "gho"}, False),
        (r"[ab]cd", False, {"acd", "bcd"}, False),
        (r"(?:ab|abc)d", False, {"abd", "abc"}, False),
        (r"(?>ab)c", False, {"abc"}, False),
        (r"\bfoo", False, {"foo"}, False),
        (r"(?x) s k - \w", False, {"sk-"}, False),
        (r"SK-\w+", True, {"sk-"}, True),
        (r"(?i:SK)-\w+", False, {"sk-"}, True),
    ],
)
def test_literal_prefixes_list_every_start_of_a_match(
    pattern: str, ignore_case: bool, prefixes: set[str], folded: bool
) -> None:
    assert literal_prefixes(pattern, ignore_case) == (frozenset(prefixes), folded)
    assert GRAM == 3, "the examples are written for trigrams"


@pytest.mark.parametrize(
    ("pattern", "ignore_case"),
    [
        (r"ab\d", False),  # only two literal characters
        (r"(?:a\d)bc", False),  # "bc" does not follow "a" directly
        (r"abc|de", False),  # one branch is too short
        (r"a?bc", False),
        (r"[a-c]bc", False),  # ranges are not expanded
        (r"[abcdefgh][abcdefgh][abcdefgh]", False),  # too many prefixes to index
        (r"éab", True),  # non-ASCII case folding is not indexed
        (r"\p{L}bc", False),
    ],
)
def test_literal_prefixes_say_unknown_when_no_trigram_is_pinned_down(
    pattern: str, ignore_case: bool
) -> None:
    assert literal_prefixes(pattern, ignore_case) is None


# -- context_literals -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "words"),
    [
        (r"(?<=(?i:secret|token)\s{0,3}[:=]\s{0,3})\w{8,}", {"secret", "token"}),
        (r"(?<=aws.{0,20}key\s*=\s*)[A-Za-z0-9/+]{40}", {"aws"}),
        (r"(?:(?<=key=)|(?<=token:))\w+", {"key=", "token:"}),
        (r"\b(?<=KEY=)x", {"key="}),
        (r"((?<=key=)x)", {"key="}),
        (r"(?<=secrets?)x", {"secret"}),
        (r"(?<=[Ss]ecret)x", {"ecret"}),
    ],
)
def test_context_literals_read_the_words_a_leading_look_behind_requires(
    pattern: str, words: set[str]
) -> None:
    assert context_literals(pattern) == frozenset(words)


@pytest.mark.parametrize(
    "pattern",
    [
        r"abc",
        r"(?<!abc)x",  # a negative look-behind requires nothing
        r"(?=abc)x",
        r"x(?<=abc)",  # not leading
        r"(?<=key=)x|y",  # one branch needs no word
        r"(?<=abc|de)x",
        r"(?<=ab(?:cd|ef))x",
        r"(?<=\w{3})x",
    ],
)
def test_context_literals_say_unknown_without_words_every_match_needs(pattern: str) -> None:
    assert context_literals(pattern) is None


# -- the contract, for generated patterns ------------------------------------------------------

LITERALS = st.sampled_from(["a", "b", "k", "s", "S", "-", "=", " ", "é", "1", "\\.", "_"])
CLASSES = st.sampled_from(
    ["[ab]", "[a-c]", "[^a]", r"\d", r"\w", r"\s", r"\W", ".", "[kK-]", "[é1]", "[sS]"]
)
ASSERTIONS = st.sampled_from([r"\b", r"\B", "(?=a)", "(?!b)", "(?<=a)", "(?<!s)"])
GROUPS = st.sampled_from(["(?:", "(", "(?i:", "(?>", "(?-i:"])
QUANTIFIERS = st.sampled_from(["", "", "", "?", "*", "+", "{2}", "{0,2}", "{1,3}", "*?", "?+"])


def alternation(atoms: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    branch = st.lists(atoms, min_size=1, max_size=4).map("".join)
    return st.lists(branch, min_size=1, max_size=3).map("|".join)


ATOMS = st.recursive(
    LITERALS | CLASSES,
    lambda inner: st.builds(lambda head, body: f"{head}{body})", GROUPS, alternation(inner)),
    max_leaves=6,
)
PIECES = st.builds(str.__add__, ATOMS, QUANTIFIERS) | ASSERTIONS
FLAGS = st.sampled_from(["", "", "(?i)"])
PATTERNS = st.builds(str.__add__, FLAGS, alternation(PIECES))
# Patterns most of whose matches begin with literal text, so that trigrams are known.
LITERAL_PIECES = LITERALS | st.sampled_from(["[ab]", "[kK]", "[sS-]", "(?:ab|ba)", "(?i:sk)"])
LITERAL_LED = st.builds(
    lambda flags, head, tail: f"{flags}{head}{tail}",
    FLAGS,
    alternation(st.lists(LITERAL_PIECES, min_size=3, max_size=4).map("".join)),
    st.lists(PIECES, max_size=2).map("".join),
)
# Non-ASCII that case folding pairs with ASCII (long s, Kelvin sign, dotted I) included.
TEXTS = st.text(alphabet="abkKsS-= é1._\nſ\u212aİÉ", max_size=30)


@st.composite
def pattern_and_text(
    draw: st.DrawFn, patterns: st.SearchStrategy[str] = PATTERNS
) -> tuple[str, str]:
    """A pattern, and text that mostly holds a match of it (random text alone seldom does)."""
    pattern = draw(patterns)
    text = draw(TEXTS)
    if draw(st.integers(0, 3)):
        recase = draw(st.sampled_from([str, str.swapcase, str.upper, odd_case]))
        text += recase(draw(st.from_regex(pattern, fullmatch=True))) + draw(TEXTS)
    return pattern, text


def odd_case(text: str) -> str:
    """Upper case, with the letters ``regex`` also folds with non-ASCII ones swapped in."""
    return text.upper().translate({ord("S"): "ſ", ord("K"): "\u212a", ord("I"): "İ"})


def compiled(pattern: str, ignore_case: bool) -> tuple[regex.Pattern[str], regex.Pattern[str]]:
    """The rule as the matcher compiles it, and its never-matching probe."""
    try:
        rule = compile_rule(Rule("r", pattern, Action.REDACT, ignore_case=ignore_case))
        probe = regex.compile(f"{rule.pattern}(?!)", rule.flags)
    except regex.error:
        assume(False)
        raise
    return rule, probe


def starts(
    rule: regex.Pattern[str], probe: regex.Pattern[str], text: str
) -> list[tuple[int, str, bool]]:
    """Where a match starts, the text it covers, and whether it is still in progress at
    the end of the text (then it covers the rest of the text): one row for each."""
    found: list[tuple[int, str, bool]] = []
    try:
        for m in rule.finditer(text, overlapped=True, timeout=1):
            found.append((m.start(), m.group(), False))
        for pos in range(len(text)):
            m = probe.search(text, pos, partial=True, timeout=1)
            if m is not None and m.partial and m.start() == pos:
                found.append((pos, text[pos:], True))
    except TimeoutError:
        assume(False)
    return found


@given(case=pattern_and_text(), ignore_case=st.booleans())
def test_first_class_is_a_superset_of_where_matches_start(
    case: tuple[str, str], ignore_case: bool
) -> None:
    pattern, text = case
    found = first_class(pattern, ignore_case)
    if found is None:
        return
    rule, probe = compiled(pattern, ignore_case)
    for start, covered, _ in starts(rule, probe, text):
        assert covered, f"a known class, yet an empty match at {start}"
        assert found.match(text[start]), (text[start], found.pattern)


@given(case=pattern_and_text(LITERAL_LED), ignore_case=st.booleans())
def test_literal_prefixes_are_a_superset_of_how_matches_begin(
    case: tuple[str, str], ignore_case: bool
) -> None:
    """Each match begins with a listed trigram; one still in progress at the end of the
    text with the start of one. Folded sets hold for ASCII text: for any other, the
    matcher keeps every folded rule (``_GramIndex.lookup``)."""
    pattern, text = case
    found = literal_prefixes(pattern, ignore_case)
    if found is None:
        return
    prefixes, folded = found
    assert all(len(p) == GRAM for p in prefixes)
    rule, probe = compiled(pattern, ignore_case)
    for _, covered, in_progress in starts(rule, probe, text):
        head = covered[:GRAM]
        if folded and not head.isascii():
            continue
        key = head.lower() if folded else head
        if in_progress:
            assert any(p.startswith(key) for p in prefixes), (covered, prefixes)
        else:
            assert key in prefixes, (covered, prefixes)


WORDS = st.sampled_from(["key", "KEY", "Secret", "ſecret", "token", "TOKEN", "aws"])
BEHIND = st.lists(
    WORDS.map(lambda w: f"(?i:{w})") | WORDS | st.sampled_from([r"\s?", "[:=]", "_?", "s"]),
    min_size=1,
    max_size=4,
).map("".join)
TAILS = st.sampled_from([r"\w{3,}", r"[a-z0-9]+", "x", r"\d+"])
# The same words in other cases, and other text. Not "İ": casefold() turns it into two
# characters, so the matcher asks every waiting rule on non-ASCII text (test_sluice.py).
CONTEXT_TEXTS = st.lists(
    st.sampled_from(["key", "Key", "KEY", "secret", "SECRET", "ſecret", "token", "aws"])
    | st.sampled_from(["=", ":", " ", "_", "s", "abc1", "x", "42", "K", "\u212aey"]),
    max_size=6,
).map("".join)


@st.composite
def context_case(draw: st.DrawFn) -> tuple[str, str]:
    """A rule led by a look-behind, and text that mostly satisfies it."""
    behind, tail = draw(BEHIND), draw(TAILS)
    text = draw(CONTEXT_TEXTS)
    if draw(st.integers(0, 3)):
        text += draw(st.from_regex(behind, fullmatch=True))
        text += draw(st.from_regex(tail, fullmatch=True)) + draw(CONTEXT_TEXTS)
    return f"(?<={behind}){tail}", text


@given(case=context_case())
def test_context_literals_are_in_the_text_of_every_match(case: tuple[str, str]) -> None:
    """``Matcher.candidates`` looks for the words in the casefolded buffer."""
    pattern, text = case
    words = context_literals(pattern)
    if words is None:
        return
    rule, _ = compiled(pattern, ignore_case=False)
    folded = text.casefold()
    for m in rule.finditer(text, overlapped=True):
        assert any(w in folded for w in words), (m.group(), words)
