"""Property tests: classifier rules over random chunkings and random verdict arrival.

A fake classifier flags every segment containing ``BAD``. Through the real chat adapter
and ``ClassifiedStream`` (the pure parts the relay drives), whatever the chunking and
whatever order and time verdicts arrive in:

* ``hold``: no character of a flagged segment is ever released, the released text is
  always a prefix of the final text, and the final text equals the non-streamed result;
* benign text is released as soon as its verdicts allow it: once every verdict is in,
  everything before the first flagged segment is out;
* the text sent to the classifier has the policy's redactions applied;
* ``async``: text is not held, and a flag cuts the stream with the leak counted.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.adapters import chat_completions as chat
from gateway.adapters.base import Moderated
from gateway.adapters.classified import ClassifiedStream
from gateway.sluice import Action
from gateway.sluice.classify import Book
from gateway.sluice.segments import Segmenter
from gateway.sluice.verdicts import ClassifierRule, Segmenting, Verdict, VerdictRequest
from tests.adapter_support import CFG, SECRET, split

SENTENCES = (
    "Hello there, my friend. ",
    "Dr. Smith paid $3.50 for it. ",
    "This part is BAD news. ",
    "The key is " + SECRET + " ok. ",
    "See e.g. the docs! ",
    "Is it fine? ",
    "a long run of words with no end at all and then some more words ",
    "\n\n",
    "Totally BAD and wrong. ",
    "1. First item\n2. Second item\n",
)

HOLD = ClassifierRule(
    "harm", Action.BLOCK, Action.BLOCK, segmenting=Segmenting(first_chars=40, chars=90)
)
ASYNC = dataclasses.replace(HOLD, hold=False)


def judge(request: VerdictRequest) -> Verdict:
    return Verdict("BAD" in request.text)


def chunk_events(pieces: list[str]) -> list[str]:
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    events = []
    for i, piece in enumerate(pieces):
        delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
        events.append({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return [orjson.dumps(e).decode() for e in events] + ["[DONE]"]


def content(events: list[str]) -> tuple[str, str | None]:
    text, finish = "", None
    for data in events:
        if data == "[DONE]":
            continue
        for choice in orjson.loads(data)["choices"]:
            text += choice["delta"].get("content") or ""
            finish = choice.get("finish_reason") or finish
    return text, finish


class Run:
    """Drives one stream: events in, verdicts back in an order ``rng`` picks."""

    def __init__(self, rule: ClassifierRule, rng: random.Random) -> None:
        self.cfg = dataclasses.replace(CFG, classifiers=(rule,))
        self.book = Book(self.cfg.classifiers, fail_closed=True)
        self.mod = ClassifiedStream(lambda taps: chat.stream({}, self.cfg, taps), self.book)
        self.rng = rng
        self.pending: list[VerdictRequest] = []
        self.sent: list[str] = []
        self.judged: list[str] = []
        self.flagged: list[str] = []
        self.leaked = 0

    def take(self, moderated: Moderated) -> None:
        self.pending.extend(moderated.requests)
        self.pending = [r for r in self.pending if r.id not in moderated.cancelled]
        self.sent.extend(e.data for e in moderated.events)
        self.leaked += sum(n for _, n in moderated.leaked)

    def answer_some(self, share: float) -> None:
        while self.pending and self.rng.random() < share:
            request = self.pending.pop(self.rng.randrange(len(self.pending)))
            self.judged.append(request.text)
            if "BAD" in request.text:
                self.flagged.append(request.text)
            self.take(self.mod.on_verdict(request.id, judge(request)))

    def stream(self, pieces: list[str], share: float, check: Any = None) -> None:
        for data in chunk_events(pieces):
            self.take(self.mod.on_event(data, None))
            self.answer_some(share)
            if check is not None:
                check(self)
        while self.pending and not self.mod.finished:
            self.answer_some(1.0)


def whole(text: str, rule: ClassifierRule) -> tuple[str, str | None]:
    """The non-streamed reference: shadow pass, every verdict, gate pass."""
    cfg = dataclasses.replace(CFG, classifiers=(rule,))
    book = Book(cfg.classifiers, fail_closed=True)

    def body() -> dict[str, Any]:
        message = {"role": "assistant", "content": text}
        return {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}

    chat.moderate_response(body(), cfg, book.shadow())
    for request in book.take_requests():
        book.verdict(request.id, judge(request))
    out = chat.moderate_response(body(), cfg, book.gate()).body["choices"][0]
    return out["message"]["content"], out["finish_reason"]


texts = st.lists(st.sampled_from(SENTENCES), min_size=1, max_size=8).map("".join)
cuts = st.lists(st.integers(min_value=1, max_value=400), max_size=40)
orders = st.integers(min_value=0, max_value=2**32 - 1)
shares = st.sampled_from([0.0, 0.3, 0.7, 1.0])


@settings(max_examples=150, deadline=None)
@given(text=texts, cut=cuts, seed=orders, share=shares)
def test_hold_never_releases_a_flagged_segment(
    text: str, cut: list[int], seed: int, share: float
) -> None:
    run = Run(HOLD, random.Random(seed))
    expected, finish = whole(text, HOLD)

    def check(run: Run) -> None:
        released, _ = content(run.sent)
        assert expected.startswith(released)  # never more than the final text
        assert "BAD" not in released

    run.stream(split(text, cut), share, check)
    assert run.mod.finished
    assert content(run.sent) == (expected, finish)
    assert all(SECRET not in judged for judged in run.judged)  # redacted before judging
    assert run.leaked == 0
    if "BAD" in text:
        assert finish == "content_filter"
        assert run.sent[-1] == "[DONE]"
    else:
        assert (expected, finish) == (text.replace(SECRET, "[REDACTED]"), "stop")


@settings(max_examples=60, deadline=None)
@given(text=texts.filter(lambda t: SECRET not in t), cut=cuts)
def test_benign_text_leaves_as_soon_as_its_verdicts_are_in(text: str, cut: list[int]) -> None:
    """Answering every verdict as soon as it is asked: an event goes out once every
    segment its text touches is complete and allowed, not later and not earlier."""
    run = Run(HOLD, random.Random(0))
    plain = chat.stream({}, CFG)  # the same rules without the classifier: what it releases
    pieces = split(text, cut)
    seen, plain_out, reached = "", [], [0]
    for data, piece in zip(chunk_events(pieces), [*pieces, "", ""], strict=False):
        run.take(run.mod.on_event(data, None))
        run.answer_some(1.0)
        plain_out.extend(e.data for e in plain.on_event(data, None).events)
        reached.append(len(content(plain_out)[0]))
        seen += piece
        if run.mod.upstream_done:
            break
        segmenter = Segmenter(HOLD.segmenting)
        done = [s.text for s in segmenter.feed(seen)]
        if data.endswith('"finish_reason":"stop"}]}'):
            done += [s.text for s in segmenter.finish()]  # the choice's text is complete
        bad = next((i for i, s in enumerate(done) if "BAD" in s), len(done))
        judged = len("".join(done[:bad]))
        # Every event whose released text lies within the judged segments has gone out.
        due = max(r for r in reached if r <= judged)
        released, _ = content(run.sent)
        assert due <= len(released) <= judged
    expected, _ = whole(text, HOLD)
    assert content(run.sent)[0] == expected


@settings(max_examples=100, deadline=None)
@given(text=texts, cut=cuts, seed=orders, share=shares)
def test_async_streams_at_once_and_cuts_on_a_flag(
    text: str, cut: list[int], seed: int, share: float
) -> None:
    run = Run(ASYNC, random.Random(seed))
    pieces = split(text, cut)
    run.stream(pieces, share)
    released, finish = content(run.sent)
    redacted = text.replace(SECRET, "[REDACTED]")
    assert redacted.startswith(released)
    if "BAD" not in text:
        assert (released, finish) == (redacted, "stop")
        return
    assert finish == "content_filter"
    first_bad = redacted.index("BAD")
    segment_start = redacted.rfind(" ", 0, first_bad)  # the flagged segment starts before
    if share == 0.0:
        # No verdict before the end: everything streamed, and the cut comes at the end.
        assert run.leaked > 0 and len(released) >= segment_start


@settings(max_examples=100, deadline=None)
@given(text=st.text(min_size=0, max_size=300), cut=cuts)
def test_segments_do_not_depend_on_chunking(text: str, cut: list[int]) -> None:
    settings_ = Segmenting(first_chars=40, chars=90)
    whole_run = Segmenter(settings_)
    expected = whole_run.feed(text) + whole_run.finish()
    streamed = Segmenter(settings_)
    got = []
    for piece in split(text, cut):
        got += streamed.feed(piece)
    got += streamed.finish()
    assert got == expected
    assert "".join(s.text for s in got) == text
    assert all(len(s.text.rstrip()) <= (40 if s.index == 0 else 90) for s in got)


# -- stalls: text that stops growing must still be judged --------------------------------

BASE = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}


def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    entry = {"index": 0, "delta": delta, "finish_reason": finish}
    return orjson.dumps({**BASE, "choices": [entry]}).decode()


def drive(run: Run, events: list[str]) -> None:
    """As the relay does: answer what is asked, and unstall what waits on open text."""
    for data in events:
        run.take(run.mod.on_event(data, None))
        run.answer_some(1.0)
    while not run.mod.finished:
        if run.pending:
            run.answer_some(1.0)
        elif run.mod.stalled:
            run.take(run.mod.unstall())
        else:
            run.take(run.mod.on_eof())
            run.answer_some(1.0)
            if run.mod.stalled:
                run.take(run.mod.unstall())
            run.answer_some(1.0)
            break


def test_a_quiet_reasoning_channel_does_not_hold_the_answer() -> None:
    run = Run(HOLD, random.Random(0))
    events = [chunk({"role": "assistant", "reasoning_content": "Thinking about it"})]
    events += [chunk({"content": f"Sentence number {i} is here. "}) for i in range(6)]
    for data in events:
        run.take(run.mod.on_event(data, None))
        run.answer_some(1.0)
    assert content(run.sent)[0] == ""  # the open reasoning sentence holds everything
    assert run.mod.stalled
    run.take(run.mod.unstall())  # what the relay does after STALL_SECONDS
    run.answer_some(1.0)
    assert content(run.sent)[0].startswith("Sentence number 0 is here. ")


def test_an_upstream_error_mid_sentence_still_ends_the_stream_as_failed() -> None:
    run = Run(HOLD, random.Random(0))
    events = [chunk({"role": "assistant", "content": "Hello there my friend"})]
    events.append(orjson.dumps({**BASE, "error": {"message": "boom"}}).decode())
    drive(run, events)
    assert run.mod.finished
    assert "boom" in run.sent[-1]


def test_an_answer_cut_short_by_upstream_ends_with_an_error() -> None:
    run = Run(HOLD, random.Random(0))
    drive(run, [chunk({"role": "assistant", "content": "Hello there my friend and"})])
    assert run.mod.finished
    assert "upstream_incomplete" in run.sent[-1]
    assert "[DONE]" not in run.sent


def test_one_rules_cut_does_not_skip_another_rules_earlier_segment() -> None:
    """A windowed rule cuts at 20; a sentence rule's segment from 0 must still be judged
    (and here flags, so nothing at all is released, exactly as the whole body is cut)."""
    windows = dataclasses.replace(
        HOLD, id="windows", segmenting=Segmenting(sentences=False, chars=20, first_chars=20)
    )
    sentences = dataclasses.replace(HOLD, id="sentences")
    cfg = dataclasses.replace(CFG, classifiers=(windows, sentences))
    book = Book(cfg.classifiers, fail_closed=True)
    mod = ClassifiedStream(lambda taps: chat.stream({}, cfg, taps), book)

    def verdict(request: VerdictRequest) -> Verdict:
        return Verdict(
            "friend" in request.text if request.rule_id == "sentences" else "BAD" in request.text
        )

    text = "Hello friend, this is BAD stuff to say. And then more of it here. "
    pending: list[VerdictRequest] = []
    sent: list[str] = []
    for data in chunk_events([word + " " for word in text.split(" ")[:-1]]):
        moderated = mod.on_event(data, None)
        pending += moderated.requests
        sent += [e.data for e in moderated.events]
        for request in [r for r in pending if r.rule_id == "windows"]:
            pending.remove(request)
            sent += [e.data for e in mod.on_verdict(request.id, verdict(request)).events]
    while pending and not mod.finished:
        request = pending.pop(0)
        sent += [e.data for e in mod.on_verdict(request.id, verdict(request)).events]
    assert content(sent) == ("", "content_filter")
