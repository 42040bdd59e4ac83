"""Tests for the JSON view of tool-call arguments (docs/wire.md, "Tool-call arguments").

``JsonCodec`` is driven directly, with no adapter: raw JSON in, the logical text the
sluice sees out, and released pieces back to raw JSON. Pieces are written by hand where
one placement rule is under test, and come from a real sluice where any text and any
split are.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.adapters.json_view import Encoded, JsonCodec, escape
from gateway.sluice import Action, Matcher, Piece, Rule, SluiceConfig, Step
from tests.adapter_support import CFG, SECRET, split

#: Characters that make JSON text interesting: every escape's parts, structure, quotes.
JSONISH = st.text(alphabet='"\\ubnrtf/0123456789abcdefABCDEFxDd{}[]:, \n\té😀', max_size=60)
#: Text that no rule of ``CFG`` can start on (no "s" for sk-, no "n" for nightingale).
SAFE = st.text(alphabet='abcdefghijklmopqrtuvwxyz ,.!é😀\n"\\', max_size=40)
#: An escape cut short at the end of a piece: a backslash (after an even run of them),
#: optionally with ``u`` and up to three hex digits.
OPEN_ESCAPE = re.compile(r"(?<!\\)(\\\\)*\\(u[0-9a-fA-F]{0,3})?$")
DIGITS = Rule("digits", r"[0-9]{4,}", Action.REDACT, "[N]")
SECRETS_AND_DIGITS = dataclasses.replace(
    CFG, enforce=Matcher([*CFG.enforce.rules, DIGITS], 0.1), observe=Matcher([], 0.1)
)


# -- driving the codec -----------------------------------------------------------------


def decode(feeds: Sequence[str]) -> tuple[JsonCodec, str]:
    """A codec that has read ``feeds`` to the end, and the logical text it gave."""
    codec = JsonCodec()
    text = "".join(codec.decode(raw) for raw in feeds) + codec.close()
    return codec, text


def unchanged(start: int, text: str) -> tuple[Piece, ...]:
    return (Piece(start, start + len(text), text),) if text else ()


def redact(text: str, target: str, replacement: str = "[X]") -> tuple[Piece, ...]:
    """Pieces releasing all of ``text`` with its first ``target`` replaced."""
    start = text.index(target)
    end = start + len(target)
    return (
        *unchanged(0, text[:start]),
        Piece(start, end, replacement, redacted=True),
        *unchanged(end, text[end:]),
    )


def round_trip(raw: str) -> str:
    """Decode ``raw`` whole and release every character unchanged."""
    codec, text = decode([raw])
    encoded = codec.encode(unchanged(0, text), final=True)
    assert encoded.cut_at is None
    return encoded.raw


def release_as_read(feeds: Sequence[str]) -> list[str]:
    """Raw JSON sent when everything decoded is released at once, feed by feed."""
    codec, out, start = JsonCodec(), [], 0
    for raw in feeds:
        text = codec.decode(raw)
        out.append(codec.encode(unchanged(start, text), final=False).raw)
        start += len(text)
    out.append(codec.encode(unchanged(start, codec.close()), final=True).raw)
    return out


@dataclasses.dataclass
class Sent:
    """What a JSON channel sends: raw JSON per sluice step, and where it was cut."""

    deltas: list[str] = dataclasses.field(default_factory=list)
    cut_at: int | None = None
    cut: bool = False

    @property
    def raw(self) -> str:
        return "".join(self.deltas)


def through_sluice(feeds: Sequence[str], config: SluiceConfig = CFG) -> Sent:
    """The loop a JSON channel runs: decode, feed the sluice, encode what it released."""
    codec, sluice, sent = JsonCodec(), config.open(), Sent()

    def send(step: Step, final: bool) -> bool:
        encoded = codec.encode(step.pieces, final or step.cut)
        sent.deltas.append(encoded.raw)
        sent.cut_at = encoded.cut_at
        sent.cut = step.cut or encoded.cut_at is not None
        return sent.cut

    for raw in feeds:
        if send(sluice.feed(codec.decode(raw)), final=False):
            return sent
    if not send(sluice.feed(codec.close()), final=False):
        send(sluice.finish(), final=True)
    return sent


# -- the logical view --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "logical"),
    [
        (r'"\u0041"', '"A"'),
        (r'"caf\u00e9"', '"café"'),
        (r'"\ud83d\ude00"', '"😀"'),
        (r'"\"\\\/\b\f\n\r\t"', '""\\/\b\f\n\r\t"'),
    ],
)
def test_string_content_is_seen_decoded(raw: str, logical: str) -> None:
    assert logical[1:-1] == json.loads(raw), "premise: the JSON means this"
    assert decode([raw])[1] == logical


def test_only_string_content_is_decoded() -> None:
    raw = r'{"k\u0041": "sk-\u0041B12", "n": [1, true]}'
    assert decode([raw])[1] == '{"kA": "sk-AB12", "n": [1, true]}'


def test_a_surrogate_pair_is_one_logical_character() -> None:
    _, text = decode([r'"\ud83d\ude00"'])
    assert text == '"😀"'
    assert len(text) == 3


def test_structure_numbers_and_literals_are_seen_verbatim() -> None:
    raw = '{"n": -1.5e3, "ok": [true, false, null], "s": ""}\n'
    assert decode([raw])[1] == raw


@pytest.mark.parametrize("raw", [r'"\u0041"', r'"\ud83d\ude00"', r'"\n"'])
def test_an_escape_split_across_feeds_waits_whole(raw: str) -> None:
    """Until an escape ends, none of it is decoded; then it is one character at once."""
    whole = decode([raw])[1]
    for cut in range(2, len(raw) - 1):
        codec = JsonCodec()
        first = codec.decode(raw[:cut])
        assert first == '"', (cut, first)
        assert first + codec.decode(raw[cut:]) + codec.close() == whole


def test_a_high_surrogate_waits_to_see_whether_a_pair_follows() -> None:
    codec = JsonCodec()
    assert codec.decode(r'"\ud83d') == '"'
    assert codec.decode(r"\u") == ""
    assert codec.decode(r"0041") == "\ud83dA"  # no pair: a lone surrogate, then "A"


@pytest.mark.parametrize(
    ("raw", "logical"),
    [
        (r'"\q"', '"q"'),
        (r'"\u12G4"', '"u12G4"'),
        (r'"\ud83dx"', '"\ud83dx"'),
        (r'"\udc00"', '"\udc00"'),
        (r'"\ud83d\ud83d\ude00"', '"\ud83d😀"'),
        (r'"\ud83d\u0041"', '"\ud83dA"'),
        ('"\\', '"\\'),
        (r'"\u00', '"u00'),
        (r'"\ud83d\u', '"ud83du'),
        ('}{"a"::,]]"', '}{"a"::,]]"'),
        (r"tru\e", r"tru\e"),
    ],
)
def test_invalid_json_is_read_without_error(raw: str, logical: str) -> None:
    """Each invalid escape is one logical character, and still goes out as it came."""
    assert decode([raw])[1] == logical
    assert round_trip(raw) == raw


@given(raw=JSONISH, cuts=st.lists(st.integers(1, 60)))
def test_any_split_decodes_to_the_same_logical_text(raw: str, cuts: list[int]) -> None:
    assert decode(split(raw, cuts))[1] == decode([raw])[1]


@given(value=st.text(max_size=30), ascii_only=st.booleans(), cuts=st.lists(st.integers(1, 80)))
def test_a_string_decodes_to_what_the_json_means(
    value: str, ascii_only: bool, cuts: list[int]
) -> None:
    raw = json.dumps(value, ensure_ascii=ascii_only)
    assert decode(split(raw, cuts))[1] == f'"{value}"'


# -- releasing unchanged text ------------------------------------------------------------


@given(raw=JSONISH, cuts=st.lists(st.integers(1, 60)))
def test_any_split_re_encodes_to_the_same_bytes(raw: str, cuts: list[int]) -> None:
    assert "".join(release_as_read(split(raw, cuts))) == raw


@given(
    args=SAFE,
    cuts=st.lists(st.integers(1, 60)),
    piece_cuts=st.lists(st.integers(1, 60)),
)
def test_an_escape_is_never_split_in_output(
    args: str, cuts: list[int], piece_cuts: list[int]
) -> None:
    """However the raw text is fed and the logical text released, no delta ends inside
    an escape sequence, and together they are exactly upstream's text."""
    raw = json.dumps({"q": args + "é"}, ensure_ascii=True)
    codec, text = decode(split(raw, cuts))
    deltas, start = [], 0
    for part in split(text, piece_cuts):
        deltas.append(codec.encode(unchanged(start, part), final=False).raw)
        start += len(part)
    assert "".join(deltas) == raw
    for delta in deltas:
        assert not OPEN_ESCAPE.search(delta), delta


# -- where a redaction goes --------------------------------------------------------------


def test_a_redaction_inside_a_string_becomes_the_json_escaped_replacement() -> None:
    codec, text = decode([f'{{"key": "my {SECRET}!", "n": 1}}'])
    replacement = 'say "no" \\ now\n'
    out = codec.encode(redact(text, SECRET, replacement), final=True)
    assert out.cut_at is None
    assert json.loads(out.raw) == {"key": f"my {replacement}!", "n": 1}


def test_a_redaction_replaces_whole_escapes() -> None:
    codec, text = decode([r'{"k": "sk-\u0041B12\u0043D34EF"}'])
    assert SECRET in text
    out = codec.encode(redact(text, SECRET, "[REDACTED]"), final=True)
    assert out == Encoded('{"k": "[REDACTED]"}')


@pytest.mark.parametrize(
    ("raw", "target", "expected"),
    [
        ('{"card": 4111111111111111, "n": 2}', "4111111111111111", '{"card": "[X]", "n": 2}'),
        ("[4111, 2]", "41", '["[X]11", 2]'),
        ('{"ok": true}', "true", '{"ok": "[X]"}'),
        ("5551234567", "5551234567", '"[X]"'),
    ],
)
def test_a_redaction_in_a_number_or_literal_becomes_a_string(
    raw: str, target: str, expected: str
) -> None:
    codec, text = decode([raw])
    out = codec.encode(redact(text, target), final=True)
    assert out == Encoded(expected)
    json.loads(out.raw)


def test_the_string_opened_in_a_number_closes_where_the_number_ends() -> None:
    """The number's rest goes inside the string as it arrives; the quote closes once the
    number is known to have ended, not before."""
    codec = JsonCodec()
    assert codec.decode("[41") == "[41"
    assert codec.encode((Piece(0, 1, "["), Piece(1, 3, "[X]", True)), False).raw == '["[X]'
    assert codec.decode("11") == "11"
    assert codec.encode(unchanged(3, "11"), False).raw == "11"
    assert codec.decode(", 2]") == ", 2]"
    assert codec.encode(unchanged(5, ", 2]"), False).raw == '", 2]'


def test_the_string_opened_in_a_number_closes_at_the_end_of_the_input() -> None:
    codec = JsonCodec()
    codec.decode("[4111")
    assert codec.encode((Piece(0, 1, "["), Piece(1, 5, "[X]", True)), False).raw == '["[X]'
    assert codec.close() == ""
    assert codec.encode((), final=True).raw == '"'


@pytest.mark.parametrize(
    ("raw", "target"),
    [
        ('{"k": ["a", "b"]}', 'a", "b'),  # across quotes
        ('{"k": "v"}', 'v"'),  # the string's closing quote
        ("[1, 2]", "1, 2"),  # across tokens
        ("[12, 34]", "2, 3"),  # across tokens, starting inside a number
        ('{"n": 7}', '"n"'),  # the quotes themselves
    ],
)
def test_a_redaction_with_no_valid_place_is_a_cut(raw: str, target: str) -> None:
    codec, text = decode([raw])
    at = text.index(target)
    assert codec.encode(redact(text, target), final=False) == Encoded(raw[:at], cut_at=at)


def test_a_redaction_in_a_number_partly_sent_is_a_cut() -> None:
    codec, _ = decode(["[4111]"])
    assert codec.encode(unchanged(0, "[41"), final=False).raw == "[41"
    assert codec.encode((Piece(3, 5, "[X]", True),), final=False) == Encoded("", cut_at=3)


def test_a_cut_closes_the_string_a_number_was_turned_into() -> None:
    codec, _ = decode(["[4111, 2]"])
    pieces = (
        Piece(0, 1, "["),
        Piece(1, 3, "[X]", True),
        Piece(3, 4, "1"),
        Piece(4, 7, "[Y]", True),  # "1, " crosses into the structure
    )
    assert codec.encode(pieces, final=False) == Encoded('["[X]1"', cut_at=4)


# -- through a real sluice ---------------------------------------------------------------


@given(cuts=st.lists(st.integers(1, 40)))
def test_a_secret_written_with_escapes_is_still_found(cuts: list[int]) -> None:
    raw = r'{"k": "sk-\u0041B12\u0043D34EF", "n": 5}'
    sent = through_sluice(split(raw, cuts))
    assert sent.raw == '{"k": "[REDACTED]", "n": 5}'
    for delta in sent.deltas:  # nothing of the key went out before it was decided
        assert "\\u0041" not in delta and "B12" not in delta


def test_a_number_a_rule_matches_becomes_a_string_whatever_the_split() -> None:
    card = dataclasses.replace(
        CFG, enforce=Matcher([Rule("card", r"4111[0-9]{12}", Action.REDACT, "[CARD]")], 0.1)
    )
    raw = '{"card": 4111111111111111, "n": 2}'
    for cuts in ([], [3, 12, 17, 20], list(range(1, len(raw)))):
        sent = through_sluice(split(raw, cuts), card)
        assert not sent.cut
        assert json.loads(sent.raw) == {"card": "[CARD]", "n": 2}


def test_a_rule_across_json_structure_cuts_the_arguments() -> None:
    crossing = dataclasses.replace(
        CFG, enforce=Matcher([Rule("x", r'a", "b', Action.REDACT, "[X]")], 0.1)
    )
    sent = through_sluice(split('{"k": ["a", "b"]}', [4, 9]), crossing)
    assert (sent.raw, sent.cut_at) == ('{"k": ["', 8)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=0)
    | st.text(alphabet='ab "\\é😀\n\tsk-AB12CD34EF', max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(alphabet='ab"sk-\\1234', max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


def redacted(value: object) -> object:
    """What ``SECRETS_AND_DIGITS`` makes of a JSON value: numbers of four digits or more
    become the replacement as a string, strings get both rules applied."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return "[N]" if value >= 1000 else value
    if isinstance(value, str):
        return re.sub(r"[0-9]{4,}", "[N]", re.sub(r"sk-[A-Za-z0-9]{8,}", "[REDACTED]", value))
    if isinstance(value, list):
        return [redacted(v) for v in value]
    if isinstance(value, dict):
        return {redacted(k): redacted(v) for k, v in value.items()}
    raise TypeError(value)


@given(value=JSON_VALUES, cuts=st.lists(st.integers(1, 300)), ascii_only=st.booleans())
def test_any_json_stays_valid_after_redaction(
    value: object, cuts: list[int], ascii_only: bool
) -> None:
    raw = json.dumps({"v": value, "s": SECRET, "n": 4111111111}, ensure_ascii=ascii_only)
    sent = through_sluice(split(raw, cuts), SECRETS_AND_DIGITS)
    assert not sent.cut
    assert json.loads(sent.raw) == redacted({"v": value, "s": SECRET, "n": 4111111111})
    assert "AB12CD" not in sent.raw


# -- escape ------------------------------------------------------------------------------


def test_escape_writes_string_content_without_quotes() -> None:
    assert escape('a"b\\c\n\x01') == 'a\\"b\\\\c\\n\\u0001'
    assert escape("é😀") == "é😀"  # non-ASCII stays as it is


@given(text=st.text(max_size=30))
def test_escape_round_trips_through_a_json_parser(text: str) -> None:
    assert json.loads(f'"{escape(text)}"') == text
