"""Tests for logprob entries travelling with their text (docs/wire.md, "Logprobs").

``LogprobTrack`` is driven the way a channel drives it: text in (``add_text``), what the
sluice released (``release``), entries in (``add``) and out (``take``). Examples write the
released pieces by hand; the properties get them from a real sluice.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.adapters.logprobs import TOKEN_ENTRIES, WINDOW_CAP, LogprobTrack
from gateway.sluice import Piece, SluiceConfig, Step, moderate
from tests.adapter_support import CFG, SECRET, split

Entry = dict[str, object]

# No rule of ``CFG`` fires on these ("s" may begin a key, so it is held, but no "k").
CLEAN = st.text(alphabet="abs -.é😀ü中\n", max_size=40)


def entry(token: str, raw: bytes | None = None, with_bytes: bool = True) -> Entry:
    """A Chat-style entry; ``raw`` is its ``bytes`` when they are not the token's UTF-8."""
    data = list(raw if raw is not None else token.encode())
    out: Entry = {"token": token, "logprob": -0.25}
    if with_bytes:
        out["bytes"] = data
    out["top_logprobs"] = [{"token": token, "logprob": -0.25, "bytes": data}]
    return out


def synthetic(token: str) -> Entry:
    return {"token": token, "logprob": 0.0, "bytes": list(token.encode()), "top_logprobs": []}


def track_with(text: str, entries: Sequence[object]) -> LogprobTrack:
    """A track that has the text and the entries (whatever upstream sent as entries)."""
    track = LogprobTrack(TOKEN_ENTRIES)
    track.add_text(text)
    track.add(list(entries))
    return track


def tokens(taken: Sequence[tuple[int, object]]) -> list[object]:
    return [e["token"] for _, e in taken if isinstance(e, dict)]


# -- placing and travelling --------------------------------------------------------------


def test_an_entry_goes_out_with_the_last_character_it_touches() -> None:
    hello, world = entry("Hello"), entry(" world")
    track = track_with("Hello world", [hello, world])
    assert track.take(final=False) == []
    track.release([Piece(0, 7, "Hello w")])
    assert track.take(final=False) == [(0, hello)]
    track.release([Piece(7, 11, "orld")])
    assert track.take(final=False) == [(5, world)]


def test_an_entry_waits_for_its_text() -> None:
    hello = entry("Hello")
    track = track_with("He", [hello])
    track.release([Piece(0, 2, "He")])
    assert track.take(final=False) == []
    track.add_text("llo")
    track.release([Piece(2, 5, "llo")])
    assert track.take(final=False) == [(0, hello)]


def test_entries_arriving_before_their_text_are_placed_when_it_comes() -> None:
    track = LogprobTrack(TOKEN_ENTRIES)
    track.add([entry("my "), entry("key")])
    assert track.started
    assert track.take(final=False) == []
    track.add_text("my key")
    track.release([Piece(0, 6, "my key")])
    assert tokens(track.take(final=False)) == ["my ", "key"]


def test_entries_are_placed_by_their_bytes_when_they_have_them() -> None:
    """The ``bytes`` field wins over the token; without it, the token's UTF-8 counts."""
    odd = entry("<not the text>", "é".encode())
    plain = entry("!", with_bytes=False)
    track = track_with("é!", [odd, plain])
    track.release([Piece(0, 2, "é!")])
    assert track.take(final=False) == [(0, odd), (1, plain)]


def test_a_token_ending_inside_a_character_goes_out_with_the_next_one() -> None:
    """``é`` is two bytes; a token holding the first waits for the one holding the second."""
    first, second, bang = entry("\ufffd", b"\xc3"), entry("\ufffd", b"\xa9"), entry("!")
    track = track_with("é!", [first])
    track.release([Piece(0, 2, "é!")])
    assert track.take(final=False) == []
    track.add([second, bang])
    assert track.take(final=False) == [(0, first), (0, second), (1, bang)]


def test_a_token_shared_character_is_released_with_both_entries_at_the_end() -> None:
    first = entry("\ufffd", "😀".encode()[:3])
    track = track_with("😀", [first])
    track.release([Piece(0, 1, "😀")])
    assert track.take(final=False) == []
    assert track.take(final=True) == [(0, first)]


# -- redactions --------------------------------------------------------------------------


def test_a_redaction_merges_the_entries_it_touches_into_one_synthetic_entry() -> None:
    text = f"Hi my key {SECRET} is here"
    parts = ["Hi ", "my key sk", "-AB12", "CD34EF is", " here"]
    assert "".join(parts) == text
    entries = [entry(p) for p in parts]
    track = track_with(text, entries)
    start = text.index(SECRET)
    end = start + len(SECRET)
    track.release(
        [
            Piece(0, start, text[:start]),
            Piece(start, end, "[REDACTED]", redacted=True),
            Piece(end, len(text), text[end:]),
        ]
    )
    assert track.take(final=False) == [
        (0, entries[0]),
        (3, synthetic("my key [REDACTED] is")),
        (len(text) - 5, entries[4]),
    ]


def test_entries_and_redactions_merge_transitively() -> None:
    """One entry touching two redactions joins both, with every entry either touches."""
    track = track_with("abcdefghij", [entry("abc"), entry("def"), entry("ghij")])
    track.release(
        [
            Piece(0, 2, "ab"),
            Piece(2, 4, "[1]", redacted=True),
            Piece(4, 5, "e"),
            Piece(5, 7, "[2]", redacted=True),
            Piece(7, 10, "hij"),
        ]
    )
    assert track.take(final=False) == [(0, synthetic("ab[1]e[2]hij"))]


def test_a_merged_entry_waits_for_the_entries_covering_the_redaction() -> None:
    track = track_with("a sk-AB12CD34EF b", [entry("a sk")])
    track.release([Piece(0, 2, "a "), Piece(2, 15, "[R]", redacted=True), Piece(15, 17, " b")])
    assert track.take(final=False) == []
    track.add([entry("-AB12CD34EF"), entry(" b")])
    assert track.take(final=False) == [(0, synthetic("a [R]")), (15, entry(" b"))]


def test_synthetic_entries_have_bytes_only_where_upstream_entries_do() -> None:
    """Responses deltas carry no ``bytes``; a synthetic entry must not add them there."""
    track = track_with(
        "a sk-AB12CD34EF", [entry("a ", with_bytes=False), entry(SECRET, None, False)]
    )
    track.release([Piece(0, 2, "a "), Piece(2, 15, "[R]", redacted=True)])
    assert track.take(final=True) == [
        (0, entry("a ", with_bytes=False)),
        (2, {"token": "[R]", "logprob": 0.0, "top_logprobs": []}),
    ]


# -- cuts and the end --------------------------------------------------------------------


def test_a_cut_drops_later_entries_and_clips_the_entry_it_splits() -> None:
    good = entry("good")
    track = track_with("good bad rest", [good, entry(" ba"), entry("d rest")])
    track.release([Piece(0, 5, "good ")])
    assert track.take(final=False) == [(0, good)]
    track.cut(5)
    assert track.take(final=True) == [(4, synthetic(" "))]
    assert track.synthetic(" [cut off]") == synthetic(" [cut off]")


def test_entries_arriving_after_the_end_are_ignored() -> None:
    track = track_with("ok", [entry("ok")])
    track.release([Piece(0, 2, "ok")])
    assert tokens(track.take(final=True)) == ["ok"]
    track.add_text(" more")
    track.add([entry(" more")])
    track.release([Piece(2, 7, " more")])
    assert track.take(final=True) == []


def test_the_notice_gets_an_entry_only_once_entries_flow() -> None:
    track = LogprobTrack(TOKEN_ENTRIES)
    assert track.synthetic(" [cut off]") is None
    track.add([entry("x", with_bytes=False)])
    assert track.synthetic(" [cut off]") == {
        "token": " [cut off]",
        "logprob": 0.0,
        "top_logprobs": [],
    }


# -- entries that cannot be placed ---------------------------------------------------------


def test_entries_that_do_not_spell_the_text_stop_the_channel_logprobs() -> None:
    hello = entry("Hello")
    track = track_with("Hello there", [hello, entry(" other"), entry(" there")])
    track.add_text(" again")
    track.add([entry(" again")])
    track.release([Piece(0, 17, "Hello there again")])
    assert track.take(final=False) == [(0, hello)]  # placed before the mismatch: checked
    assert track.take(final=True) == []


@pytest.mark.parametrize(
    "bad",
    [
        "not an entry",
        {"token": 5, "logprob": -1.0},
        {"token": "x", "logprob": -1.0, "bytes": [300]},
        {"token": "x", "logprob": -1.0, "bytes": ["x"]},
    ],
)
def test_an_entry_with_no_usable_bytes_stops_the_channel_logprobs(bad: object) -> None:
    track = track_with("ab", [entry("a"), bad, entry("b")])
    track.release([Piece(0, 2, "ab")])
    assert tokens(track.take(final=True)) == ["a"]


def test_text_without_entries_is_not_kept_forever() -> None:
    """Past ``WINDOW_CAP`` characters with no entry to place, the channel gives them up."""
    track = LogprobTrack(TOKEN_ENTRIES)
    track.add_text("a" * WINDOW_CAP)
    track.add_text("a")
    track.add([entry("a")])
    track.release([Piece(0, WINDOW_CAP + 1, "a" * (WINDOW_CAP + 1))])
    assert track.take(final=True) == []


def test_text_just_within_the_window_still_gets_its_entries() -> None:
    track = LogprobTrack(TOKEN_ENTRIES)
    track.add_text("a" * WINDOW_CAP)
    track.add([entry("a" * WINDOW_CAP)])
    track.release([Piece(0, WINDOW_CAP, "a" * WINDOW_CAP)])
    assert len(track.take(final=True)) == 1


# -- alternatives --------------------------------------------------------------------------


def test_scrub_removes_only_the_alternatives_rejected() -> None:
    kept, with_banned = entry("Hello"), entry("Hello")
    alternatives = with_banned["top_logprobs"]
    assert isinstance(alternatives, list)
    alternatives.append({"token": " nightingale", "logprob": -3.0, "bytes": list(b" nightingale")})
    clean = TOKEN_ENTRIES.scrub(with_banned, lambda token: "nightingale" not in token)
    assert clean == kept
    assert len(alternatives) == 2, "the upstream entry itself is not changed"


def test_scrub_keeps_every_alternative_a_rule_accepts() -> None:
    kept = entry("Hello")
    assert TOKEN_ENTRIES.scrub(kept, lambda token: True) == entry("Hello")


# -- any chunking --------------------------------------------------------------------------


def token_entries(text: str, cuts: Sequence[int]) -> list[Entry]:
    """Entries for ``text`` split into tokens at byte offsets, inside characters too."""
    raw = text.encode()
    points = sorted({c for c in cuts if 0 < c < len(raw)})
    pieces = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
    return [entry(p.decode("utf-8", "replace"), p) for p in pieces if p]


def replay(
    deltas: Sequence[str],
    groups: Sequence[list[Entry]],
    order: Sequence[bool],
    config: SluiceConfig = CFG,
) -> tuple[str, bytes]:
    """Text and entries in the order ``order`` picks, as a channel gets them from upstream.

    Returns the released text and the bytes of the entries released with it; checks at
    every step that the entries never get ahead of the text.
    """
    track, sluice = LogprobTrack(TOKEN_ENTRIES), config.open()
    text_queue, entry_queue, picks = deque(deltas), deque(groups), iter(order)
    released: list[str] = []
    spelled: list[bytes] = []

    def apply(step: Step, final: bool) -> None:
        track.release(step.pieces)
        released.append(step.text)
        for _, e in track.take(final=final):
            assert isinstance(e, dict)
            spelled.append(bytes(e["bytes"]))
        assert "".join(released).encode().startswith(b"".join(spelled))

    while text_queue or entry_queue:
        text_next = next(picks, True) if text_queue and entry_queue else bool(text_queue)
        if text_next:
            delta = text_queue.popleft()
            track.add_text(delta)
            apply(sluice.feed(delta), final=False)
        else:
            track.add(entry_queue.popleft())
            apply(Step(), final=False)
    apply(sluice.finish(), final=True)
    return "".join(released), b"".join(spelled)


@given(
    text=CLEAN,
    delta_cuts=st.lists(st.integers(1, 40)),
    token_cuts=st.lists(st.integers(1, 40)),
    group_cuts=st.lists(st.integers(1, 40)),
    order=st.lists(st.booleans(), max_size=80),
)
def test_released_entries_spell_the_released_text_for_any_chunking(
    text: str,
    delta_cuts: list[int],
    token_cuts: list[int],
    group_cuts: list[int],
    order: list[bool],
) -> None:
    entries = token_entries(text, token_cuts)
    groups = [entries[a:b] for a, b in _bounds(len(entries), group_cuts)]
    released, spelled = replay(split(text, delta_cuts), groups, order)
    assert released == text
    assert spelled == text.encode()


@given(
    whole_tokens=st.lists(CLEAN.filter(bool), max_size=6),
    delta_cuts=st.lists(st.integers(1, 60)),
    order=st.lists(st.booleans(), max_size=80),
)
def test_released_tokens_concatenate_to_the_released_text(
    whole_tokens: list[str], delta_cuts: list[int], order: list[bool]
) -> None:
    text = "".join(whole_tokens)
    track, sluice = LogprobTrack(TOKEN_ENTRIES), CFG.open()
    track.add([entry(t) for t in whole_tokens])
    out: list[object] = []
    for delta in split(text, delta_cuts):
        track.add_text(delta)
        track.release(sluice.feed(delta).pieces)
        out += tokens(track.take(final=False))
    track.release(sluice.finish().pieces)
    out += tokens(track.take(final=True))
    assert out == whole_tokens


@given(
    pre=CLEAN,
    post=CLEAN,
    delta_cuts=st.lists(st.integers(1, 80)),
    token_cuts=st.lists(st.integers(1, 80)),
    group_cuts=st.lists(st.integers(1, 40)),
    order=st.lists(st.booleans(), max_size=80),
)
def test_entries_spell_the_text_with_redactions_too(
    pre: str,
    post: str,
    delta_cuts: list[int],
    token_cuts: list[int],
    group_cuts: list[int],
    order: list[bool],
) -> None:
    text = f"{pre}{SECRET}{post}"
    entries = token_entries(text, token_cuts)
    groups = [entries[a:b] for a, b in _bounds(len(entries), group_cuts)]
    released, spelled = replay(split(text, delta_cuts), groups, order)
    assert released == moderate(CFG, text).text
    assert spelled == released.encode()
    assert b"AB12" not in spelled


def _bounds(size: int, cuts: Sequence[int]) -> list[tuple[int, int]]:
    points = sorted({c for c in cuts if 0 < c < size})
    return list(zip([0, *points], [*points, size], strict=True)) if size else []
