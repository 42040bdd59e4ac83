"""Fuzzing the parsers that read bytes the gateway does not control.

Four readers take hostile input: the SSE decoder (upstream bytes), the JSON view (tool-call
arguments), the request-body path (client bytes to a moderated body) and the policy loader
(a file an operator, or a broken deploy, puts on disk). Each has one documented way to say
"no" (``SSEError``, a 400 before the body is read as a dict, ``PolicyError``); anything else
escaping would be a 500 mid-request or a reload that crashes instead of keeping the last good
policies. The inputs are arbitrary bytes plus the structured ones that break parsers in
practice: deep nesting, huge numbers, lone surrogates, NULs, BOMs, UTF-8 cut anywhere,
aliases that expand exponentially. Sizes are bounded so no example can take long; the
targeted cases with large inputs carry a generous wall-clock bound, since the failure they
guard against is a hang, not a slowness.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from gateway.adapters.base import ApiAdapter
from gateway.adapters.chat_completions import ADAPTER as CHAT
from gateway.adapters.completions import ADAPTER as COMPLETIONS
from gateway.adapters.inputs import moderate_request
from gateway.adapters.json_view import JsonCodec, escape
from gateway.adapters.responses import ADAPTER as RESPONSES
from gateway.policy.compiler import CompiledPolicy
from gateway.policy.errors import PolicyError
from gateway.policy.loader import load_file, load_text
from gateway.sluice import Action, Matcher, Piece, Rule, SluiceConfig
from gateway.sse import SSEDecoder, SSEError, SSEEvent
from tests.adapter_support import CFG, SECRET, split

#: Byte sequences that break decoders: BOMs, NULs, every line end, UTF-8 that is invalid
#: (a lone surrogate, an overlong form, past U+10FFFF, a cut character), SSE field heads.
HOSTILE_BYTES = st.sampled_from(
    [
        b"\xef\xbb\xbf",
        b"\xef\xbb",
        b"\x00",
        b"\r",
        b"\n",
        b"\r\n",
        b"\xed\xa0\x80",
        b"\xc0\xaf",
        b"\xf4\x90\x80\x80",
        b"\xe2\x82",
        b"\xff",
        "é😀".encode(),
        b"data: ",
        b"data:",
        b"event: ",
        b"id: \x00",
        b":",
        b"retry: 9999999999999999999999",
        b'data: {"a": [[[[[[[[',
    ]
)
STREAM_BYTES = st.lists(HOSTILE_BYTES | st.binary(max_size=12), max_size=40).map(b"".join)
CUTS = st.lists(st.integers(0, 600), max_size=12)
#: Every code point, lone surrogates and NUL included.
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=60)


def _bsplit(raw: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c for c in cuts if 0 < c < len(raw)})
    return [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]


def _decode(parts: list[bytes], limit: int) -> tuple[list[SSEEvent], str | None]:
    """Every event the decoder gives for ``parts`` and its error, if it raised one."""
    decoder, events = SSEDecoder(max_event_bytes=limit), []
    try:
        for part in parts:
            events += decoder.feed(part)
            assert decoder.pending_bytes <= limit
        events += decoder.close()
    except SSEError:
        with pytest.raises(SSEError):  # a failed decoder stays failed: no resynchronising
            decoder.feed(b"data: x\n\n")
        return events, "failed"
    return events, None


# -- SSE decoder -------------------------------------------------------------------------


@given(STREAM_BYTES, CUTS, st.sampled_from([16, 64, 1 << 20]))
def test_sse_decoder_raises_only_sse_error_and_every_event_is_clean_text(
    raw: bytes, cuts: list[int], limit: int
) -> None:
    """Arbitrary bytes cut anywhere: events or ``SSEError``, and the same either way; an
    event's data is valid text (it is re-encoded to a client) that never holds a CR."""
    whole = _decode([raw], limit)
    pieces = _decode(_bsplit(raw, cuts), limit)
    assert pieces[1] == whole[1]
    if whole[1] is None:
        assert pieces[0] == whole[0]
    for event in pieces[0]:
        event.data.encode("utf-8")  # no lone surrogate can come out of strict decoding
        assert "\r" not in event.data
        assert event.event is None or not {"\r", "\n"} & set(event.event)


@given(st.integers(1, 3), st.integers(0, 2))
def test_sse_decoder_bounds_an_event_that_never_ends(kilobytes: int, kind: int) -> None:
    """A line, or an event of many lines, or comments, growing past the limit: a clean
    error as soon as the limit is crossed, not memory growing with the stream."""
    line = [b"data: " + b"x" * 1000, b"data: x\n" * 125, b"data: x\n: c\n" * 80][kind]
    decoder = SSEDecoder(max_event_bytes=kilobytes * 1024)

    def feed_past_the_limit() -> None:
        for _ in range(kilobytes * 2 + 2):
            decoder.feed(line)

    with pytest.raises(SSEError):
        feed_past_the_limit()


def test_sse_comments_alone_never_fail_and_hold_nothing() -> None:
    """Keep-alive comments forever are not an error the decoder can see: it holds no
    memory for them (what bounds such a stream in time is the relay's business)."""
    decoder = SSEDecoder(max_event_bytes=1024)
    for _ in range(20_000):
        assert decoder.feed(b": keepalive\n\n") == []
    assert decoder.pending_bytes == 0


# -- JSON view ---------------------------------------------------------------------------


@st.composite
def released(draw: st.DrawFn, text: str) -> tuple[Piece, ...]:
    """Pieces releasing all of ``text``, some spans redacted with any replacement."""
    points = sorted(set(draw(st.lists(st.integers(1, max(1, len(text) - 1)), max_size=6))))
    bounds = [0, *(p for p in points if p < len(text)), len(text)]
    pieces = []
    for start, end in itertools.pairwise(bounds):
        if start == end:
            continue
        if draw(st.booleans()):
            pieces.append(Piece(start, end, draw(ANY_TEXT), redacted=True))
        else:
            pieces.append(Piece(start, end, text[start:end]))
    return tuple(pieces)


JSON_RAW = st.one_of(
    ANY_TEXT,
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
        max_leaves=12,
    ).map(lambda v: json.dumps(v, ensure_ascii=False)),
)


@given(JSON_RAW, CUTS, st.data())
def test_json_view_reads_any_text_and_writes_utf8(raw: str, cuts: list[int], data: Any) -> None:
    """Any text (lone surrogates, NULs, invalid JSON), cut anywhere, any redaction: the
    codec never raises, releasing it unchanged gives upstream's text back exactly, and
    what it writes is always encodable (it is framed into SSE, which raises on a lone
    surrogate) unless upstream's own text was not."""
    codec = JsonCodec()
    text = "".join(codec.decode(part) for part in split(raw, cuts)) + codec.close()
    pieces = data.draw(released(text))
    encoded = codec.encode(pieces, final=True)
    if not any(p.redacted for p in pieces):
        assert encoded.raw == raw
        assert encoded.cut_at is None
    elif _encodable(raw):
        encoded.raw.encode("utf-8")


@given(ANY_TEXT)
def test_escape_is_json_string_content_for_any_text(text: str) -> None:
    """A replacement is placed with ``escape``: it must read back as the same text, and
    be valid UTF-8 however odd the text (a lone surrogate becomes ``\\uXXXX``)."""
    out = escape(text)
    out.encode("utf-8")
    assert json.loads(f'"{out}"') == text


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# -- request bodies ----------------------------------------------------------------------

#: Redacts every run of non-space characters and blocks a word, so rewrites happen.
EVERYTHING = dataclasses.replace(
    CFG,
    enforce=Matcher(
        [Rule("ban", "nightingale", Action.BLOCK), Rule("all", r"\S+", Action.REDACT, "#")], 0.1
    ),
)
#: Member names and values a request of each API reads structurally.
KEYS = st.sampled_from(
    [
        "model", "messages", "input", "prompt", "role", "content", "type", "text", "n",
        "stream", "tools", "function", "parameters", "properties", "image_url", "url",
        "tool_calls", "arguments", "instructions", "stop", "logit_bias", "metadata",
        "stream_options", "include_usage", "previous_response_id", "conversation",
        "input_audio", "data", "file_data", "encrypted_content", "$ref", "required",
    ]
)  # fmt: skip
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**80), 2**80)
    | st.floats()
    | ANY_TEXT
    | st.sampled_from(["user", "system", "text", "function", SECRET, "nightingale", "data:,"])
)
JSON_VALUE = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(KEYS | ANY_TEXT, inner, max_size=5),
    max_leaves=30,
)


def _as_bytes(value: Any) -> bytes:
    """What a client could send for ``value``: JSON with its non-finite floats, huge
    integers and lone surrogates (``\\udXXX`` escapes) as they come."""
    return json.dumps(value).encode()


def _body_from_bytes(raw: bytes) -> dict[str, Any] | None:
    """The gateway's own first step (``proxy.moderated``): ``None`` is its 400."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


def _through_the_route(adapter: ApiAdapter, raw: bytes, config: SluiceConfig) -> None:
    """Every parse of a client body the route does before and after upstream."""
    body = _body_from_bytes(raw)
    if body is None:
        return
    verdict = moderate_request(adapter, body, config)
    try:
        orjson.dumps(verdict.body)  # it is what goes upstream
    except orjson.JSONEncodeError:
        return  # nested deeper than orjson writes: the route's 400 (tests/e2e/test_faults.py)
    if verdict.blocked is not None:
        assert verdict.blocked.param  # the 400 names a field
        return
    stream = adapter.stream(verdict.body, config)  # reads ``n``, ``tools``... of the request
    stream.on_eof()


ADAPTERS = [CHAT, RESPONSES, COMPLETIONS]
DEPTHS = [1, 100, 1023, 1024, 1025, 100_000]


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.route)
@given(st.dictionaries(KEYS, JSON_VALUE, max_size=6), st.sampled_from([CFG, EVERYTHING]))
def test_any_json_body_is_moderated_or_refused(
    adapter: ApiAdapter, value: dict[str, Any], config: SluiceConfig
) -> None:
    _through_the_route(adapter, _as_bytes(value), config)


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.route)
@given(STREAM_BYTES)
def test_any_bytes_as_a_body_are_refused_or_moderated(adapter: ApiAdapter, raw: bytes) -> None:
    _through_the_route(adapter, raw, EVERYTHING)


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.route)
@pytest.mark.parametrize("depth", DEPTHS)
def test_deep_nesting_is_refused_or_moderated_quickly(adapter: ApiAdapter, depth: int) -> None:
    """The walkers are iterative; orjson's own depth limit (1024) refuses the rest."""
    started = time.monotonic()
    for raw in (
        b'{"messages": ' + b"[" * depth + b"]" * depth + b"}",
        b'{"input": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}",
    ):
        _through_the_route(adapter, raw, EVERYTHING)
    assert time.monotonic() - started < 30


# -- policy files ------------------------------------------------------------------------


def _load(text: str) -> CompiledPolicy | None:
    """A compiled policy, or ``None`` for a ``PolicyError`` that says where and what."""
    try:
        return load_text(text, "fuzz.yaml")
    except PolicyError as exc:  # the error itself is what this property inspects
        assert exc.problems  # noqa: PT017
        for problem in exc.problems:
            assert problem.file == "fuzz.yaml"
            assert problem.line >= 1
            assert problem.column >= 1
            assert problem.message
        return None


RULE_VALUES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | ANY_TEXT
    | st.sampled_from(["redact", "block", "flag", "output", "input", "email", r"(a|aa)+c", "(?"])
    | st.lists(ANY_TEXT, max_size=3)
)
PATTERN = st.text("ab()|+*?[]{}\\^$.,0123456789", max_size=16) | ANY_TEXT


def mostly(valid: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]) -> Any:
    """Valid three times in four, so most examples get past the first check to the next."""
    return st.integers(0, 3).flatmap(lambda pick: hostile if pick == 0 else valid)


MATCH = st.one_of(
    st.fixed_dictionaries({"regex": PATTERN}, optional={"ignore_case": RULE_VALUES}),
    st.fixed_dictionaries(
        {"keywords": st.lists(ANY_TEXT, max_size=4)}, optional={"whole_words": RULE_VALUES}
    ),
    st.fixed_dictionaries({"detector": mostly(st.sampled_from(["email", "phone"]), ANY_TEXT)}),
    st.dictionaries(st.sampled_from(["regex", "keywords", "detector", "x"]), RULE_VALUES),
)
RULE = st.fixed_dictionaries(
    {
        "id": mostly(st.sampled_from(["r1", "r2"]), ANY_TEXT),
        "match": mostly(MATCH, RULE_VALUES),
        "action": mostly(st.sampled_from(["redact", "block", "flag"]), RULE_VALUES),
    },
    optional={
        "replacement": RULE_VALUES,
        "scope": mostly(st.lists(st.sampled_from(["input", "output"]), max_size=2), RULE_VALUES),
        "examples": st.fixed_dictionaries(
            {}, optional={"match": st.lists(ANY_TEXT, max_size=2), "no_match": RULE_VALUES}
        ),
    },
)
POLICY = st.fixed_dictionaries(
    {"version": mostly(st.just(1), RULE_VALUES), "name": mostly(st.just("fuzz"), ANY_TEXT)},
    optional={
        "rules": mostly(st.lists(RULE, max_size=3), RULE_VALUES),
        "settings": st.dictionaries(
            st.sampled_from(["max_hold_chars", "scan_timeout_ms", "on_error", "cutoff_notice"]),
            RULE_VALUES,
            max_size=2,
        ),
        "tests": st.lists(st.fixed_dictionaries({"input": ANY_TEXT, "output": ANY_TEXT})),
    },
)


@given(POLICY)
def test_any_policy_shaped_yaml_loads_or_says_why(policy: dict[str, Any]) -> None:
    _load(yaml.safe_dump(policy, allow_unicode=False))


@given(ANY_TEXT | STREAM_BYTES.map(lambda b: b.decode("utf-8", "surrogateescape")))
def test_any_text_as_a_policy_file_is_a_policy_error(text: str) -> None:
    assert _load(text) is None


@given(STREAM_BYTES)
def test_any_bytes_as_a_policy_file_is_a_policy_error(tmp_path_factory: Any, raw: bytes) -> None:
    path = Path(tmp_path_factory.mktemp("fuzz")) / "p.yaml"
    path.write_bytes(raw)
    with pytest.raises(PolicyError):
        load_file(path)


def _laughs(levels: int) -> str:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join(["version: 1", "name: laughs", *lines, ""])


@pytest.mark.parametrize(
    "text",
    [
        "[" * 5000 + "]" * 5000,
        "a:\n" + "".join(" " * i + "- \n" for i in range(1, 3000)),
        "{a: " * 3000 + "1" + "}" * 3000,
        "version: 1\nname: x\x00\n",
        "version: 1\nname: \ud800\n",
        "\ufeff\ufeffversion: 1\n",
        "version: 1\nname: x\nsettings: {max_hold_chars: " + "9" * 5000 + "}\n",
        "version: 1\nname: x\nsettings: {scan_timeout_ms: 1e999}\n",
        "version: 1\nname: x\nrules: [{id: a, match: {regex: '" + "(" * 5000 + "'}}]\n",
        _laughs(9),
    ],
    ids=[
        "deep-flow",
        "deep-block",
        "deep-mapping",
        "nul",
        "lone-surrogate",
        "two-boms",
        "huge-integer",
        "infinite-float",
        "deep-regex",
        "billion-laughs",
    ],
)
def test_hostile_policy_files_fail_cleanly_and_quickly(text: str) -> None:
    started = time.monotonic()
    assert _load(text) is None
    assert time.monotonic() - started < 30
