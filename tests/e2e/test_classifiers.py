"""Classifier rules end to end: the real SDKs, the gateway, and the demo's classifiers.

The demo upstream answers the chat, Responses and completions calls and also serves the
moderation endpoint, guard and judge models the policies in ``classifier_policies/``
name, with latency and faults set through ``/demo/classifiers``. Every verdict here is
a real HTTP call from the gateway's classifier clients.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.conftest import Stack, e2e_settings, reply, run_stack

POLICIES = Path(__file__).parent / "classifier_policies"
BENIGN = "The weather is lovely today. We walked along the river. Then we had tea."
HARMFUL = "Here is the plan. I will attack the town at dawn. Nobody must know it."
BEFORE_CUT = "Here is the plan. "


@pytest.fixture(scope="module")
def cstack() -> Iterator[Stack]:
    yield from run_stack(
        lambda url: e2e_settings(url, policy=POLICIES, default_policy="harm", read_timeout=10)
    )


@pytest.fixture(autouse=True)
def calm(cstack: Stack) -> Iterator[None]:
    """Each test starts with fast, healthy classifiers and zeroed counters."""
    control({"latency_ms": 0, "fault": None, "reset": True}, cstack)
    yield
    control({"latency_ms": 0, "fault": None}, cstack)


def control(settings: dict[str, Any], stack: Stack) -> dict[str, Any]:
    url = stack.demo_url.removesuffix("/v1") + "/demo/classifiers"
    response = httpx.post(url, json=settings) if settings else httpx.get(url)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def policy(name: str) -> dict[str, str]:
    return {"X-Sluicegate-Policy": name}


def chat_stream(
    stack: Stack, text: str, name: str = "harm", fault: str | None = None, **more: Any
) -> tuple[str, Any]:
    faults = {"X-Demo-Fault": fault} if fault else {}
    stream = stack.client().chat.completions.create(
        model="demo",
        messages=[{"role": "user", "content": "tell me"}],
        stream=True,
        extra_headers={**reply(text), **policy(name), **faults},
        **more,
    )
    content, finish = "", None
    for chunk in stream:
        for choice in chunk.choices:
            content += choice.delta.content or ""
            finish = choice.finish_reason or finish
    return content, finish


# -- hold: streamed and whole, every API shape -----------------------------------------


def test_benign_text_arrives_unchanged(cstack: Stack) -> None:
    assert chat_stream(cstack, BENIGN) == (BENIGN, "stop")
    assert control({}, cstack)["calls"] >= 3  # one verdict per sentence


def test_flagged_sentence_is_cut_before_it_starts(cstack: Stack) -> None:
    content, finish = chat_stream(cstack, HARMFUL)
    assert (content, finish) == (BEFORE_CUT, "content_filter")


def test_chat_stream_helper_raises_on_the_cut(cstack: Stack) -> None:
    with (
        cstack.client().chat.completions.stream(
            model="demo",
            messages=[{"role": "user", "content": "tell me"}],
            extra_headers={**reply(HARMFUL), **policy("harm")},
        ) as stream,
        pytest.raises(openai.ContentFilterFinishReasonError),
    ):
        stream.get_final_completion()


def test_chat_whole_body_is_cut(cstack: Stack) -> None:
    completion = cstack.client().chat.completions.create(
        model="demo",
        messages=[{"role": "user", "content": "tell me"}],
        extra_headers={**reply(HARMFUL), **policy("harm")},
    )
    choice = completion.choices[0]
    assert (choice.message.content, choice.finish_reason) == (BEFORE_CUT, "content_filter")


def test_redaction_applies_before_the_classifier_sees_the_text(cstack: Stack) -> None:
    text = "My key is sk-ABCDEFGH12345 here. That is all."
    assert chat_stream(cstack, text) == ("My key is [REDACTED] here. That is all.", "stop")


def test_responses_stream_ends_incomplete(cstack: Stack) -> None:
    stream = cstack.client().responses.create(
        model="demo",
        input="tell me",
        stream=True,
        extra_headers={**reply(HARMFUL), **policy("harm")},
    )
    events = list(stream)
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == BEFORE_CUT
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "content_filter"
    assert events[-1].response.output_text == BEFORE_CUT


def test_responses_whole_body_is_incomplete(cstack: Stack) -> None:
    response = cstack.client().responses.create(
        model="demo", input="tell me", extra_headers={**reply(HARMFUL), **policy("harm")}
    )
    assert response.status == "incomplete"
    assert response.output_text == BEFORE_CUT


def test_responses_benign_stream_completes(cstack: Stack) -> None:
    with cstack.client().responses.stream(
        model="demo", input="tell me", extra_headers={**reply(BENIGN), **policy("harm")}
    ) as stream:
        final = stream.get_final_response()
    assert final.output_text == BENIGN


def test_legacy_completions_stream_is_cut(cstack: Stack) -> None:
    stream = cstack.client().completions.create(
        model="demo",
        prompt="tell me",
        stream=True,
        extra_headers={**reply(HARMFUL), **policy("harm")},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == BEFORE_CUT
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "content_filter"


def test_every_choice_is_judged_on_its_own(cstack: Stack) -> None:
    stream = cstack.client().chat.completions.create(
        model="demo",
        messages=[{"role": "user", "content": "tell me"}],
        stream=True,
        n=2,
        extra_headers={**reply([BENIGN, HARMFUL]), **policy("harm")},
    )
    texts: dict[int, str] = {0: "", 1: ""}
    ends: dict[int, str | None] = {}
    for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            ends[choice.index] = choice.finish_reason or ends.get(choice.index)
    assert texts == {0: BENIGN, 1: BEFORE_CUT}
    assert ends == {0: "stop", 1: "content_filter"}


# -- other kinds ---------------------------------------------------------------------


def test_guard_model_cuts(cstack: Stack) -> None:
    assert chat_stream(cstack, HARMFUL, "guard") == (BEFORE_CUT, "content_filter")
    assert chat_stream(cstack, BENIGN, "guard") == (BENIGN, "stop")
    assert control({}, cstack)["by_model"].get("demo-llama-guard", 0) >= 3


def test_judge_redacts_the_segment(cstack: Stack) -> None:
    content, finish = chat_stream(cstack, HARMFUL, "judge")
    assert content == "Here is the plan. [removed]Nobody must know it."
    assert finish == "stop"


# -- failures --------------------------------------------------------------------------


def test_classifier_error_fails_closed(cstack: Stack) -> None:
    control({"fault": "http-500", "retry_after_ms": 1}, cstack)
    fresh = "A sentence no verdict was cached for. Another one."  # the cache keeps verdicts
    assert chat_stream(cstack, fresh) == ("", "content_filter")
    assert 'result="http_5xx"' in cstack.metrics_text()


def test_classifier_timeout_fails_open_when_the_policy_allows(cstack: Stack) -> None:
    control({"fault": "timeout"}, cstack)
    fresh = "Timeouts are judged by on_error. So this passes."
    assert chat_stream(cstack, fresh, "harm-open") == (fresh, "stop")
    assert 'result="timeout"' in cstack.metrics_text()


@pytest.mark.parametrize("fault", ["reset", "truncate"])
def test_an_upstream_that_breaks_mid_sentence_fails_the_stream(cstack: Stack, fault: str) -> None:
    """The open sentence is judged as it stands, then the client learns the answer broke:
    never a silent, normal-looking end."""
    with pytest.raises(openai.APIError):
        chat_stream(cstack, "A first sentence is here. And a second one never ends", fault=fault)


def test_a_client_that_leaves_cancels_pending_verdicts(cstack: Stack) -> None:
    control({"latency_ms": 3000}, cstack)
    stream = cstack.client().chat.completions.create(
        model="demo",
        messages=[{"role": "user", "content": "tell me"}],
        stream=True,
        extra_headers={**reply("Slow verdicts ahead. The client will not wait."), **policy("harm")},
    )
    assert cstack.wait_for(lambda: control({}, cstack)["calls"] >= 1)
    stream.close()
    assert cstack.wait_for(lambda: control({}, cstack)["cancelled"] >= 1, timeout=2.5)


def test_keepalives_flow_while_a_verdict_is_slow() -> None:
    settings = {"policy": POLICIES, "default_policy": "harm", "keepalive_seconds": 0.05}
    for stack in run_stack(lambda url: e2e_settings(url, **settings)):
        control({"latency_ms": 400}, stack)
        with httpx.stream(
            "POST",
            stack.gateway_url + "/chat/completions",
            json={"model": "demo", "messages": [{"role": "user", "content": "x"}], "stream": True},
            headers={**reply("Keepalives flow. Another one."), "Authorization": "Bearer k"},
        ) as response:
            body = "".join(response.iter_text())
        assert ": keepalive" in body
        assert "Keepalive" in body


# -- async ---------------------------------------------------------------------------


def test_async_mode_streams_and_counts_the_leak(cstack: Stack) -> None:
    content, finish = chat_stream(cstack, HARMFUL, "harm-async")
    assert finish == "content_filter"
    assert content.startswith(BEFORE_CUT)
    assert HARMFUL.startswith(content)
    metrics = cstack.metrics_text()
    assert "sluicegate_classifier_leaked_chars_count" in metrics


# -- input -----------------------------------------------------------------------------


def test_input_rule_blocks_the_prompt_with_a_400(cstack: Stack) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        cstack.client().chat.completions.create(
            model="demo",
            messages=[{"role": "user", "content": "how do I attack my neighbour"}],
            extra_headers={**reply(BENIGN), **policy("harm-input")},
        )
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "content_policy_violation"
    assert error["param"] == "messages[0].content"


def test_input_rule_lets_a_safe_prompt_through(cstack: Stack) -> None:
    completion = cstack.client().chat.completions.create(
        model="demo",
        messages=[{"role": "user", "content": "what is the weather"}],
        extra_headers={**reply(BENIGN), **policy("harm-input")},
    )
    assert completion.choices[0].message.content == BENIGN


def test_metrics_count_verdicts(cstack: Stack) -> None:
    chat_stream(cstack, BENIGN)
    chat_stream(cstack, BENIGN)  # the same sentences again: answered from the cache
    chat_stream(cstack, HARMFUL)
    metrics = cstack.metrics_text()
    assert (
        'sluicegate_classifier_calls_total{policy="harm",result="allowed",rule="harm.moderation"}'
        in metrics
    )
    assert "sluicegate_classifier_seconds_bucket" in metrics
    hits = [
        line
        for line in metrics.splitlines()
        if line.startswith("sluicegate_classifier_cache_hits_total ")
    ]
    assert hits and float(hits[0].split()[-1]) >= 3
    flags = 'sluicegate_classifier_flags_total{category="violence",policy="harm",'
    flags += 'rule="harm.moderation"}'
    assert flags in metrics
