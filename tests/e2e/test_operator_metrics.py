"""What the operator metrics count, request by request, through the real SDK and server.

The metrics are read from the gateway's own ``/metrics`` before and after each request
(the session's gateway is shared, so only differences count).
"""

from __future__ import annotations

from collections.abc import Callable

import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Stack, reply

MAX_HOLD = 256  # tests/e2e/policies/test.yaml


def _reader(stack: Stack) -> Callable[..., float]:
    def value(name: str, **labels: str) -> float:
        return sum(
            s.value
            for family in text_string_to_metric_families(stack.metrics_text())
            for s in family.samples
            if s.name == name and labels.items() <= s.labels.items()
        )

    return value


def _stream(stack: Stack, text: str | list[str], n: int = 1, chunking: str = "word") -> str:
    stream = stack.client().chat.completions.create(
        model="demo-chat",
        messages=[{"role": "user", "content": "x"}],
        stream=True,
        n=n,
        extra_headers=reply(text, chunking=chunking),
    )
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def test_a_stream_cut_in_two_choices_counts_one_cutoff(stack: Stack) -> None:
    value = _reader(stack)
    before = value("sluicegate_stream_cutoffs_total", policy="test", rule="ban")
    hits = value("sluicegate_rule_hits_total", rule="ban", action="block")
    _stream(stack, ["a nightingale sings", "another nightingale"], n=2)
    assert value("sluicegate_stream_cutoffs_total", policy="test", rule="ban") == before + 1
    assert value("sluicegate_rule_hits_total", rule="ban", action="block") == hits + 2


def test_an_overlong_hold_is_an_overflow_and_a_cutoff(stack: Stack) -> None:
    value = _reader(stack)
    overflows = value("sluicegate_hold_limit_overflows_total", policy="test", action="block")
    cuts = value("sluicegate_stream_cutoffs_total", rule="sluice.hold_limit")
    assert "AAAA" not in _stream(stack, "see sk-" + "A" * (MAX_HOLD * 2))
    assert value("sluicegate_hold_limit_overflows_total", policy="test", action="block") == (
        overflows + 1
    )
    assert value("sluicegate_stream_cutoffs_total", rule="sluice.hold_limit") == cuts + 1


def test_an_input_block_is_counted_under_its_rule(stack: Stack) -> None:
    value = _reader(stack)
    before = value("sluicegate_input_blocks_total", policy="test", rule="input.block")
    with pytest.raises(openai.BadRequestError):
        stack.client().chat.completions.create(
            model="demo-chat", messages=[{"role": "user", "content": "the forbidden topic"}]
        )
    assert value("sluicegate_input_blocks_total", policy="test", rule="input.block") == before + 1


def test_latencies_and_holds_of_a_redacted_stream(stack: Stack) -> None:
    """One character an event: the key is held until it ends, at most ``max_hold_chars``
    at once; every read that released text is one added-latency observation; upstream's
    first byte comes before the client's first token."""
    value = _reader(stack)
    names = (
        "sluicegate_added_latency_seconds_count",
        "sluicegate_held_chars_count",
        "sluicegate_held_chars_sum",
        "sluicegate_upstream_time_to_first_byte_seconds_sum",
        "sluicegate_time_to_first_token_seconds_sum",
        "sluicegate_upstream_time_to_first_byte_seconds_count",
    )
    before = {name: value(name) for name in names}
    text = "key sk-ABCDEFGH12345678 ok"
    assert _stream(stack, text, chunking="char") == "key [REDACTED] ok"
    after = {name: value(name) - before[name] for name in names}
    assert 1 <= after["sluicegate_added_latency_seconds_count"] <= len(text) + 1
    assert after["sluicegate_held_chars_count"] >= 1
    peak = after["sluicegate_held_chars_sum"] / after["sluicegate_held_chars_count"]
    assert 1 <= peak <= MAX_HOLD
    assert after["sluicegate_held_chars_sum"] >= len("sk-ABCDEFGH12345678")
    assert after["sluicegate_upstream_time_to_first_byte_seconds_count"] == 1
    ttfb = after["sluicegate_upstream_time_to_first_byte_seconds_sum"]
    assert 0 < ttfb <= after["sluicegate_time_to_first_token_seconds_sum"]


def test_a_whole_answer_has_an_upstream_first_byte_and_no_chunks(stack: Stack) -> None:
    value = _reader(stack)
    ttfb = value("sluicegate_upstream_time_to_first_byte_seconds_count")
    chunks = value("sluicegate_added_latency_seconds_count")
    stack.client().chat.completions.create(
        model="demo-chat", messages=[{"role": "user", "content": "x"}], extra_headers=reply("hi")
    )
    assert value("sluicegate_upstream_time_to_first_byte_seconds_count") == ttfb + 1
    assert value("sluicegate_added_latency_seconds_count") == chunks
