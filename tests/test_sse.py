"""Tests for gateway.sse: every case is decoded however the reads happen to split it."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai._streaming import SSEDecoder as SDKDecoder

from gateway.sse import SSEDecoder, SSEError, SSEEvent, encode_comment, encode_event

BOM = b"\xef\xbb\xbf"


def splits(raw: bytes) -> Iterator[list[bytes]]:
    """The ways tr() cuts a stream: whole, byte by byte, at random, and with empty reads."""
    yield [raw]
    yield [raw[i : i + 1] for i in range(len(raw))]
    for seed in range(5):
        rng = random.Random(seed)
        cuts = sorted(rng.sample(range(len(raw) + 1), min(len(raw) + 1, rng.randint(1, 8))))
        yield [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    yield [b"", *(piece for i in range(len(raw)) for piece in (raw[i : i + 1], b""))]


def feed_all(chunks: Sequence[bytes], max_event_bytes: int = 1 << 20) -> list[SSEEvent]:
    decoder = SSEDecoder(max_event_bytes)
    return [event for chunk in chunks for event in decoder.feed(chunk)]


def tr(raw: bytes, expected: list[SSEEvent], at_close: Sequence[SSEEvent] = ()) -> None:
    """h11's tr(): ``expected`` must come out of feed() and ``at_close`` out of close()."""
    for chunks in splits(raw):
        decoder = SSEDecoder()
        got = [event for chunk in chunks for event in decoder.feed(chunk)]
        assert got == expected, chunks
        assert decoder.close() == list(at_close), chunks


def tr_error(raw: bytes, match: str, max_event_bytes: int = 1 << 20) -> None:
    for chunks in splits(raw):
        decoder = SSEDecoder(max_event_bytes)
        with pytest.raises(SSEError, match=match):  # noqa: PT012 (any read may be the bad one)
            for chunk in chunks:
                decoder.feed(chunk)
            decoder.close()


def ev(data: str, event: str | None = None, id: str | None = None) -> SSEEvent:
    return SSEEvent(data, event, id)


# --- framing ---------------------------------------------------------------


def test_single_event() -> None:
    tr(b'data: {"a":1}\n\n', [ev('{"a":1}')])


def test_many_events_in_one_read() -> None:
    raw = b"".join(b"data: %d\n\n" % i for i in range(50))
    assert feed_all([raw]) == [ev(str(i)) for i in range(50)]
    tr(raw, [ev(str(i)) for i in range(50)])


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"])
def test_line_ends(eol: bytes) -> None:
    raw = b"event: e" + eol + b"data: a" + eol + b"data: b" + eol + eol + b"data: c" + eol + eol
    tr(raw, [ev("a\nb", "e"), ev("c")])


def test_mixed_line_ends() -> None:
    tr(b"data: a\rdata: b\r\ndata: c\n\r\ndata: d\r\r", [ev("a\nb\nc"), ev("d")])


def test_crlf_split_across_reads_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n") == []  # the LF completes the CRLF; it is not a blank line
    assert decoder.feed(b"data: b\r") == []
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\n\r") == [ev("a\nb")]
    assert decoder.feed(b"\n") == []
    assert decoder.close() == []


def test_cr_at_end_of_read_then_other_byte() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\r") == [ev("a")]
    assert decoder.feed(b"data: b\r\n\r\n") == [ev("b")]


def test_utf8_character_split_across_reads() -> None:
    raw = "data: é€😀\n\n".encode()
    euro = raw.index("€".encode())
    assert feed_all([raw[: euro + 1], raw[euro + 1 : euro + 2], raw[euro + 2 :]]) == [ev("é€😀")]
    tr(raw, [ev("é€😀")])


def test_comments_are_ignored() -> None:
    tr(b": keepalive\n\n:\n\n", [])
    tr(b": hi\ndata: a\n: there\ndata: b\n\n", [ev("a\nb")])


def test_multi_line_data() -> None:
    tr(b'data: {\ndata:   "x": 1\ndata: }\n\n', [ev('{\n  "x": 1\n}')])


@pytest.mark.parametrize(
    ("line", "data"),
    [
        (b"data: x", "x"),
        (b"data:x", "x"),
        (b"data:  x", " x"),  # only one space is stripped
        (b"data: x ", "x "),
        (b"data: a:b", "a:b"),
        (b"data:", ""),
        (b"data: ", ""),
        (b"data", ""),  # no colon: the whole line is the field name
        (b"data:\tx", "\tx"),
    ],
)
def test_field_value(line: bytes, data: str) -> None:
    tr(line + b"\n\n", [ev(data)])


def test_empty_data_lines_still_count() -> None:
    tr(b"data\ndata\n\n", [ev("\n")])


def test_event_type() -> None:
    tr(b"event: response.created\ndata: {}\n\n", [ev("{}", "response.created")])
    tr(b"event:\ndata: x\n\n", [ev("x")])  # WHATWG: an empty type is the default type
    tr(b"event: a\nevent: b\ndata: x\n\n", [ev("x", "b")])
    tr(b"event:  a\ndata: x\n\n", [ev("x", " a")])  # only one space is stripped


def test_event_type_resets_after_each_event() -> None:
    tr(b"event: a\ndata: 1\n\ndata: 2\n\n", [ev("1", "a"), ev("2")])


def test_event_without_data_is_dropped() -> None:
    # docs/wire.md, "SSE framing": `event: ping\n\n` crashes both SDKs, so it must never
    # become an event, and its type must not leak into the next one.
    tr(b"event: ping\n\ndata: x\n\n", [ev("x")])
    tr(b"id: 1\n\nretry: 5\n\n", [])


def test_unknown_fields_and_retry_are_ignored() -> None:
    tr(b"retry: 100\nfoo: bar\nDATA: no\ndata : no\n data: no\ndata: yes\n\n", [ev("yes")])


def test_id_persists_like_whatwg_last_event_id() -> None:
    tr(
        b"data: a\n\nid: 7\ndata: b\n\ndata: c\n\nid: 8\0\ndata: d\n\nid\ndata: e\n\n",
        [ev("a"), ev("b", id="7"), ev("c", id="7"), ev("d", id="7"), ev("e", id="")],
    )


def test_nul_and_other_unicode_in_data_are_kept() -> None:
    tr("data: a\0b\u2028c\x1cd\x85e\n\n".encode(), [ev("a\0b\u2028c\x1cd\x85e")])


# --- BOM and UTF-8 ----------------------------------------------------------


def test_leading_bom_is_stripped() -> None:
    tr(BOM + b"data: x\n\n", [ev("x")])
    tr(BOM + b"\n" + b"data: x\n\n", [ev("x")])


def test_only_one_bom_is_stripped() -> None:
    # The second BOM is part of the field name "\ufeffdata", an unknown field.
    tr(BOM + BOM + b"data: x\n\ndata: y\n\n", [ev("y")])


def test_bom_later_in_stream_is_data() -> None:
    tr(b"data: x\n\ndata: " + BOM + b"y\n\n", [ev("x"), ev("\ufeffy")])


def test_bom_lookalike_start_is_not_stripped() -> None:
    # EF BB 80 is valid UTF-8 (U+FEC0) sharing two bytes with the BOM.
    tr(b"\xef\xbb\x80: c\ndata: x\n\n", [ev("x")])
    tr("data: \ufec0\n\n".encode(), [ev("\ufec0")])


@pytest.mark.parametrize(
    "raw",
    [
        b"data: \xff\n\n",
        b"data: \xc3\n\n",  # truncated two-byte character
        b"data: \xed\xa0\x80\n\n",  # an encoded surrogate
        b"data: \xc0\xaf\n\n",  # overlong
        b": \xff comment\n\n",  # even in lines we ignore
        b"\xffdata: x\n\n",
        b"data: ok\n\ndata: \xe2\x82",  # truncated at end of stream
        b"\xef\xbb",  # half a BOM and nothing else
    ],
)
def test_invalid_utf8_is_an_error(raw: bytes) -> None:
    tr_error(raw, "invalid UTF-8")


# --- close() ------------------------------------------------------------------


def test_close_returns_unterminated_event() -> None:
    tr(b"data: a\n\ndata: b\n", [ev("a")], at_close=[ev("b")])
    tr(b"data: a\n\nevent: e\ndata: b\ndata: c\r\n", [ev("a")], at_close=[ev("b\nc", "e")])


def test_close_counts_incomplete_last_line() -> None:
    tr(b"data: a\n\ndata: b", [ev("a")], at_close=[ev("b")])
    tr(b"data: b\ndata: c", [], at_close=[ev("b\nc")])


def test_close_drops_unterminated_event_without_data() -> None:
    tr(b"data: a\n\nevent: e\n", [ev("a")])
    tr(b"data: a\n\n: trailing comment", [ev("a")])
    tr(b"", [])


def test_close_after_complete_stream_returns_nothing() -> None:
    tr(b"data: a\n\n", [ev("a")])
    tr(b"data: a\r", [], at_close=[ev("a")])


def test_decoder_is_unusable_after_close() -> None:
    decoder = SSEDecoder()
    assert decoder.close() == []
    with pytest.raises(RuntimeError, match="after close"):
        decoder.feed(b"data: x\n\n")
    with pytest.raises(RuntimeError, match="after close"):
        decoder.close()


def test_decoder_is_unusable_after_error() -> None:
    decoder = SSEDecoder()
    with pytest.raises(SSEError, match="invalid UTF-8"):
        decoder.feed(b"data: \xff\n\n")
    with pytest.raises(SSEError, match="already failed: invalid UTF-8"):
        decoder.feed(b"data: fine\n\n")
    with pytest.raises(SSEError, match="already failed"):
        decoder.close()


# --- size limit and DoS safety ---------------------------------------------------


def test_event_at_the_limit_passes() -> None:
    line = b"data: " + b"x" * 93  # 99 bytes plus one for the line end
    assert len(line) + 1 == 100
    for chunks in splits(line + b"\n\n"):
        assert feed_all(chunks, max_event_bytes=100) == [ev("x" * 93)]


def test_single_line_over_the_limit_fails_before_it_ends() -> None:
    decoder = SSEDecoder(max_event_bytes=100)
    decoder.feed(b"data: " + b"x" * 94)
    with pytest.raises(SSEError, match="exceeds 100 bytes"):
        decoder.feed(b"x")
    tr_error(b"data: " + b"x" * 200 + b"\n\n", "exceeds 100 bytes", max_event_bytes=100)


def test_many_lines_over_the_limit_fail() -> None:
    tr_error(b"data: 123456789\n" * 11 + b"\n", "exceeds 100 bytes", max_event_bytes=100)
    tr_error(b": 123456789\n" * 20 + b"\n", "exceeds 100 bytes", max_event_bytes=100)


def test_limit_applies_per_event_not_per_stream() -> None:
    raw = b"data: 123456789\n\n" * 100
    for chunks in splits(raw):
        assert feed_all(chunks, max_event_bytes=20) == [ev("123456789")] * 100


def test_limit_applies_to_unterminated_line_at_close() -> None:
    decoder = SSEDecoder(max_event_bytes=10)
    decoder.feed(b"data: 1234")
    with pytest.raises(SSEError, match="exceeds 10 bytes"):
        decoder.close()


def test_pending_bytes() -> None:
    decoder = SSEDecoder()
    assert decoder.pending_bytes == 0
    decoder.feed(b"data: ab")
    assert decoder.pending_bytes == 8
    decoder.feed(b"c\r\nevent: e\n")
    assert decoder.pending_bytes == 19  # the CRLF counts as one byte
    decoder.feed(b"\n")
    assert decoder.pending_bytes == 0


class CountingBuffer(bytearray):
    """Counts the bytes rfind() may look at, to catch a rescan of the whole buffer."""

    scanned = 0

    def rfind(self, sub: Any, start: Any = None, end: Any = None) -> int:
        self.scanned += len(self) - (start or 0)
        return super().rfind(sub, start, end)


def test_byte_at_a_time_scans_each_byte_a_bounded_number_of_times() -> None:
    decoder = SSEDecoder()
    decoder._buf = buf = CountingBuffer()
    line = b"data: " + b"x" * 100_000
    for i in range(len(line)):
        decoder.feed(line[i : i + 1])
    assert 0 < buf.scanned <= 2 * len(line)  # one rfind each for CR and LF
    assert decoder.feed(b"\n\n") == [ev("x" * 100_000)]


def test_one_megabyte_fed_byte_at_a_time_finishes() -> None:
    decoder = SSEDecoder(max_event_bytes=2 << 20)
    raw = b"data: " + b"y" * (1 << 20) + b"\n\n"
    events = [event for i in range(len(raw)) for event in decoder.feed(raw[i : i + 1])]
    assert events == [ev("y" * (1 << 20))]


# --- encoder -------------------------------------------------------------------


def test_encode_event() -> None:
    assert encode_event('{"a":1}') == b'data: {"a":1}\n\n'
    assert encode_event("[DONE]") == b"data: [DONE]\n\n"
    assert encode_event("{}", "response.created") == b"event: response.created\ndata: {}\n\n"
    assert encode_event("a\nb\n") == b"data: a\ndata: b\ndata: \n\n"
    assert encode_event("") == b"data: \n\n"
    assert encode_event(" x") == b"data:  x\n\n"
    assert encode_event("é") == "data: é\n\n".encode()


def test_encode_event_splits_cr_like_every_reader_would() -> None:
    assert encode_event("a\rb\r\nc\n\rd") == b"data: a\ndata: b\ndata: c\ndata: \ndata: d\n\n"


@pytest.mark.parametrize("name", ["", "a\nb", "a\rb", "x\r\ndata: injected"])
def test_encode_event_rejects_bad_names(name: str) -> None:
    with pytest.raises(ValueError, match="invalid SSE event name"):
        encode_event("x", name)


def test_encode_event_never_emits_invalid_utf8() -> None:
    with pytest.raises(UnicodeEncodeError):
        encode_event("\ud800")


def test_encode_comment() -> None:
    assert encode_comment("keepalive") == b": keepalive\n\n"
    assert encode_comment() == b":\n\n"
    for text in ("a\nb", "a\r"):
        with pytest.raises(ValueError, match="one line"):
            encode_comment(text)
    tr(encode_comment("keepalive") + encode_event("x") + encode_comment(), [ev("x")])


# --- properties ------------------------------------------------------------------

EOL = st.sampled_from([b"\n", b"\r", b"\r\n"])
# Text that fits on one line. Surrogates have no UTF-8 form, so no stream can carry them.
LINE_TEXT = st.characters(exclude_categories=["Cs"], exclude_characters="\r\n")
VALUE = st.text(LINE_TEXT, max_size=12)
FIELD_LINE = st.tuples(
    st.sampled_from(["data", "event", "id", "retry", "foo", "", "dat"]),
    st.sampled_from(["", ":", ": ", ":  "]),
    VALUE,
).map(lambda t: (t[0] + t[1] + t[2] if t[1] else t[0]).encode())
STREAM = st.tuples(
    st.booleans(), st.lists(st.tuples(st.one_of(FIELD_LINE, st.just(b"")), EOL), max_size=30)
).map(lambda t: (BOM if t[0] else b"") + b"".join(line + eol for line, eol in t[1]))


def cut(raw: bytes, points: list[int]) -> list[bytes]:
    cuts = sorted({p % (len(raw) + 1) for p in points})
    return [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]


def outcome(chunks: list[bytes], max_event_bytes: int) -> tuple[list[SSEEvent], list[SSEEvent]]:
    decoder = SSEDecoder(max_event_bytes)
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    return events, decoder.close()


@given(STREAM, st.one_of(st.just(b""), st.binary(max_size=3)), st.lists(st.integers(0, 10**6)))
def test_any_split_decodes_the_same(raw: bytes, tail: bytes, points: list[int]) -> None:
    raw += tail  # an unterminated or invalid end must be split-proof too
    try:
        expected = outcome([raw], 1 << 20)
    except SSEError:
        with pytest.raises(SSEError):
            outcome(cut(raw, points), 1 << 20)
        return
    assert outcome(cut(raw, points), 1 << 20) == expected


@given(st.binary(max_size=80), st.integers(0, 40), st.lists(st.integers(0, 10**6)))
def test_any_split_fails_the_same(raw: bytes, limit: int, points: list[int]) -> None:
    """Whether bytes are rejected (bad UTF-8, too big) must not depend on how they arrive."""
    try:
        expected = outcome([raw], limit)
    except SSEError:
        with pytest.raises(SSEError):
            outcome(cut(raw, points), limit)
        return
    assert outcome(cut(raw, points), limit) == expected


EVENT_NAME = st.none() | st.text(LINE_TEXT, min_size=1)


@given(
    st.lists(st.tuples(st.text(), EVENT_NAME, st.booleans()), max_size=10),
    st.lists(st.integers(0, 10**6)),
)
def test_encode_decode_round_trip(
    frames: list[tuple[str, str | None, bool]], points: list[int]
) -> None:
    raw = b"".join(
        (encode_comment("ping") if keepalive else b"") + encode_event(data, name)
        for data, name, keepalive in frames
    )
    expected = [
        ev(data.replace("\r\n", "\n").replace("\r", "\n"), name) for data, name, _ in frames
    ]
    assert outcome(cut(raw, points), 1 << 20) == (expected, [])


@given(
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r"), max_size=40),
    EVENT_NAME,
)
def test_round_trip_is_exact_without_cr(data: str, name: str | None) -> None:
    assert feed_all([encode_event(data, name)]) == [ev(data, name)]


# Blocks on which WHATWG and openai-python agree: each has data and no `id:` (after an
# id the SDK dispatches every blank line) and no BOM (the SDK loses the first event).
SDK_LINE = st.tuples(
    st.sampled_from(["data", "event", "retry", "foo", ""]), st.sampled_from([":", ": "]), VALUE
).map(lambda t: (t[0] + t[1] + t[2]).encode())
SDK_BLOCK = st.tuples(st.lists(SDK_LINE, max_size=4), VALUE, EOL).map(
    lambda t: b"".join(line + t[2] for line in [*t[0], b"data: " + t[1].encode()]) + t[2]
)


@given(st.lists(SDK_BLOCK | st.just(b": keepalive\n\n"), max_size=8), st.lists(st.integers()))
def test_agrees_with_openai_python_decoder(blocks: list[bytes], points: list[int]) -> None:
    raw = b"".join(blocks)
    chunks = cut(raw, points)
    sdk = [ev(e.data, e.event or None) for e in SDKDecoder().iter_bytes(iter(chunks))]
    assert feed_all(chunks) == sdk


# --- real OpenAI streams -----------------------------------------------------------

CHAT_STREAM = (
    b'data: {"id":"chatcmpl-B9","object":"chat.completion.chunk","created":1732500000,'
    b'"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_0b",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},'
    b'"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"x7Q"}\n\n'
    b'data: {"id":"chatcmpl-B9","object":"chat.completion.chunk","created":1732500000,'
    b'"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_0b",'
    b'"choices":[{"index":0,"delta":{"content":"Gr\xc3\xbc\xc3\x9fe \xf0\x9f\x91\x8b"},'
    b'"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"Lp"}\n\n'
    b'data: {"id":"chatcmpl-B9","object":"chat.completion.chunk","created":1732500000,'
    b'"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_0b",'
    b'"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],'
    b'"usage":null,"obfuscation":"k"}\n\n'
    b'data: {"id":"chatcmpl-B9","object":"chat.completion.chunk","created":1732500000,'
    b'"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_0b",'
    b'"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}\n\n'
    b"data: [DONE]\n\n"
)


def test_real_chat_completions_stream() -> None:
    for chunks in splits(CHAT_STREAM):
        events = feed_all(chunks)
        assert [e.event for e in events] == [None] * 5
        assert events[-1] == ev("[DONE]")
        chunks_json = [json.loads(e.data) for e in events[:-1]]
        assert [c["choices"][0]["delta"] for c in chunks_json[:3]] == [
            {"role": "assistant", "content": "", "refusal": None},
            {"content": "Grüße 👋"},
            {},
        ]
        assert chunks_json[3]["usage"]["total_tokens"] == 12


RESPONSES_STREAM = (
    b"event: response.created\n"
    b'data: {"type":"response.created","sequence_number":0,"response":{"id":"resp_1",'
    b'"object":"response","status":"in_progress","output":[]}}\n\n'
    b"event: response.output_text.delta\n"
    b'data: {"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_1",'
    b'"output_index":0,"content_index":0,"delta":"Hi","logprobs":[]}\n\n'
    b"event: response.incomplete\n"
    b'data: {"type":"response.incomplete","sequence_number":9,"response":{"id":"resp_1",'
    b'"status":"incomplete","incomplete_details":{"reason":"content_filter"},"output":[]}}\n\n'
)


def test_real_responses_stream() -> None:
    for chunks in splits(RESPONSES_STREAM):
        events = feed_all(chunks)
        assert [e.event for e in events] == [
            "response.created",
            "response.output_text.delta",
            "response.incomplete",
        ]
        payloads = [json.loads(e.data) for e in events]
        assert [p["type"] for p in payloads] == [e.event for e in events]
        assert payloads[1]["delta"] == "Hi"


def chat_chunk(content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
    }


@given(st.lists(st.text(), min_size=1, max_size=20), st.booleans(), st.lists(st.integers()))
def test_chat_chunks_survive_any_split(
    contents: list[str], ascii_only: bool, points: list[int]
) -> None:
    chunks = [chat_chunk(c) for c in contents]
    raw = b"".join(
        b"data: " + json.dumps(c, ensure_ascii=ascii_only).encode() + b"\n\n" for c in chunks
    )
    events = feed_all(cut(raw + b"data: [DONE]\n\n", points))
    assert events[-1] == ev("[DONE]")
    assert [json.loads(e.data) for e in events[:-1]] == chunks


@given(
    st.lists(st.tuples(st.sampled_from(["response.output_text.delta", "error"]), st.text())),
    st.lists(st.integers()),
)
def test_responses_frames_survive_any_split(
    frames: list[tuple[str, str]], points: list[int]
) -> None:
    payloads = [
        {"type": kind, "sequence_number": i, "delta": d} for i, (kind, d) in enumerate(frames)
    ]
    raw = b"".join(
        encode_event(json.dumps(p, ensure_ascii=False), str(p["type"])) for p in payloads
    )
    events = feed_all(cut(raw, points))
    assert [(e.event, json.loads(e.data)) for e in events] == [(p["type"], p) for p in payloads]
