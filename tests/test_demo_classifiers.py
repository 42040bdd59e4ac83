"""The demo's classifier endpoints, as a client sees them: exact formats, controls, counters.

The official SDK parses the moderation answer into its own ``ModerationCreateResponse``
and streams the guard answers, so the demo's shapes are checked by the same code a real
client runs; raw aiohttp is used where the SDK hides what matters (status, headers).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from gateway.demo import create_demo_app
from gateway.demo.classifiers import OPENAI_CATEGORIES

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


@pytest.fixture
async def server(aiohttp_server: ServerFactory) -> TestServer:
    return await aiohttp_server(create_demo_app())


@pytest.fixture
async def client(server: TestServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=str(server.make_url("/v1")), api_key="x", max_retries=0
    ) as sdk:
        yield sdk


async def post(server: TestServer, path: str, body: Any) -> tuple[int, CIMultiDict[str], Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(str(server.make_url(path)), json=body) as response,
    ):
        return response.status, CIMultiDict(response.headers), await response.json()


async def ask(
    client: openai.AsyncOpenAI, model: str, *messages: tuple[str, str], **more: Any
) -> str:
    completion = await client.chat.completions.create(
        model=model, messages=[{"role": r, "content": c} for r, c in messages], **more
    )
    return completion.choices[0].message.content or ""


# --- Moderations -------------------------------------------------------------------------


async def test_moderation_answers_in_openai_shape(client: openai.AsyncOpenAI) -> None:
    response = await client.moderations.create(
        model="omni-moderation-latest", input=["I will kill you.", "Nice weather, you moron."]
    )

    threat, insult = response.results
    assert response.id.startswith("modr-")
    assert response.model == "omni-moderation-latest"
    assert threat.flagged and threat.categories.violence
    assert not threat.categories.harassment
    assert threat.category_scores.violence == 0.9
    assert threat.category_scores.self_harm_intent == 0.01
    assert insult.categories.harassment and not insult.categories.violence
    assert set(threat.category_applied_input_types.to_dict()) == set(OPENAI_CATEGORIES)


async def test_mild_words_score_under_the_flag(client: openai.AsyncOpenAI) -> None:
    (result,) = (await client.moderations.create(input="They fight and punch.")).results

    assert not result.flagged
    assert result.category_scores.violence == 0.4


async def test_moderation_of_content_parts_is_one_result(client: openai.AsyncOpenAI) -> None:
    response = await client.moderations.create(
        input=[{"type": "text", "text": "hello"}, {"type": "text", "text": "bomb"}]
    )

    assert len(response.results) == 1
    assert response.results[0].categories.violence


async def test_moderation_rejects_a_bad_input(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="input must be"):
        await client.moderations.create(input=[])


# --- Guard and judge models --------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "answer", "unsafe", "safe"),
    [
        ("demo-llama-guard", "I will kill you, idiot.", "unsafe\nS1,S10", "safe"),
        ("demo-shieldgemma", "I will kill you.", "Yes", "No"),
        (
            "demo-granite-guardian",
            "I will kill you.",
            "Yes\n<confidence> High </confidence>",
            "No\n<confidence> High </confidence>",
        ),
        (
            "demo-qwen3guard",
            "I will kill you.",
            "Safety: Unsafe\nCategories: Violent\nRefusal: No",
            "Safety: Safe\nCategories: None\nRefusal: No",
        ),
    ],
)
async def test_guards_answer_in_their_family_format(
    client: openai.AsyncOpenAI, model: str, answer: str, unsafe: str, safe: str
) -> None:
    assert await ask(client, model, ("user", "hi"), ("assistant", answer)) == unsafe
    assert await ask(client, model, ("user", "kill"), ("assistant", "Hello!")) == safe


async def test_guards_judge_the_prompt_when_there_is_no_answer(
    client: openai.AsyncOpenAI,
) -> None:
    verdict = await ask(client, "demo-qwen3guard", ("user", "I feel hopeless."))

    assert verdict == "Safety: Controversial\nCategories: Suicide & Self-Harm"


async def test_guard_answers_stream_too(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="demo-llama-guard",
        messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "a bomb"}],
        stream=True,
    )

    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "unsafe\nS1"


@pytest.mark.parametrize(
    ("kwargs", "answer"),
    [
        ({"guideline": '"No Harassment": ...'}, "No"),
        ({"guideline": '"No Dangerous Content": ...'}, "Yes"),
    ],
)
async def test_shieldgemma_judges_the_guideline_it_is_given(
    client: openai.AsyncOpenAI, kwargs: dict[str, str], answer: str
) -> None:
    verdict = await ask(
        client,
        "demo-shieldgemma",
        ("user", "hi"),
        ("assistant", "I will shoot."),
        extra_body={"chat_template_kwargs": kwargs},
    )

    assert verdict == answer


async def test_granite_answers_like_3_3_when_asked_by_criteria_id(
    client: openai.AsyncOpenAI,
) -> None:
    config = {"guardian_config": {"criteria_id": "profanity"}}

    verdict = await ask(
        client,
        "demo-granite-guardian",
        ("user", "hi"),
        ("assistant", "You loser."),
        extra_body={"chat_template_kwargs": config},
    )

    assert verdict == "<score> yes </score>"


async def test_judge_answers_json_honouring_the_schema_enum(client: openai.AsyncOpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"categories": {"type": "array", "items": {"enum": ["harassment"]}}},
    }

    free = await ask(client, "demo-judge", ("user", "<text>\nkill, idiot\n</text>"))
    limited = await ask(
        client,
        "demo-judge",
        ("user", "kill, idiot"),
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "verdict", "schema": schema},
        },
    )

    assert json.loads(free) == {
        "flagged": True,
        "categories": ["violence", "harassment"],
        "reason": "mentions violence, harassment",
    }
    assert json.loads(limited)["categories"] == ["harassment"]


async def test_the_plain_judge_has_no_structured_output(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="json_schema is not supported"):
        await ask(
            client,
            "demo-judge-plain",
            ("user", "x"),
            response_format={"type": "json_schema", "json_schema": {"name": "v", "schema": {}}},
        )

    prose = await ask(client, "demo-judge-plain", ("user", "fine"))
    assert prose.startswith("Here is my verdict:\n```json\n{")


async def test_the_classifier_models_are_listed(client: openai.AsyncOpenAI) -> None:
    listed = [model.id async for model in client.models.list()]

    assert {"demo-llama-guard", "demo-judge", "demo-chat"} <= set(listed)


# --- Controls ----------------------------------------------------------------------------


async def test_controls_report_settings_and_counters(
    server: TestServer, client: openai.AsyncOpenAI
) -> None:
    await client.moderations.create(input="x")
    await ask(client, "demo-llama-guard", ("user", "x"))
    await ask(client, "demo-chat", ("user", "x"))  # not a classifier: not counted

    status, _, state = await post(server, "/demo/classifiers", {"latency_ms": 1})
    assert status == 200
    assert state == {
        "latency_ms": 1.0,
        "fault": None,
        "fault_count": None,
        "retry_after_ms": None,
        "calls": 2,
        "answered": 2,
        "cancelled": 0,
        "by_model": {"omni-moderation-latest": 1, "demo-llama-guard": 1},
    }
    _, _, reset = await post(server, "/demo/classifiers", {"reset": True, "latency_ms": 0})
    assert (reset["calls"], reset["by_model"], reset["latency_ms"]) == (0, {}, 0)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"fault": "explode"}, "fault must be null or one of http-500"),
        ({"latency_ms": -1}, "latency_ms must be a non-negative number"),
        ({"fault_count": 0}, "fault_count must be null or a positive integer"),
        ({"latencyms": 5}, "unknown field(s): latencyms"),
    ],
)
async def test_a_bad_control_is_a_400(server: TestServer, body: Any, problem: str) -> None:
    status, _, error = await post(server, "/demo/classifiers", body)

    assert status == 400
    assert problem in error["error"]["message"]
    assert error["error"]["code"] == "invalid_demo_control"


@pytest.mark.parametrize(
    ("fault", "status", "header"),
    [("http-429", 429, ("retry-after-ms", "7")), ("http-500", 500, ("retry-after-ms", "7"))],
)
async def test_http_faults_answer_with_the_retry_delay(
    server: TestServer, fault: str, status: int, header: tuple[str, str]
) -> None:
    await post(server, "/demo/classifiers", {"fault": fault, "retry_after_ms": 7, "fault_count": 1})

    got, headers, error = await post(server, "/v1/moderations", {"input": "x"})
    again, _, _ = await post(server, "/v1/moderations", {"input": "x"})

    assert got == status
    assert headers[header[0]] == header[1]
    assert "error" in error
    assert again == 200  # fault_count: 1


async def test_a_429_without_a_delay_says_retry_after_zero(server: TestServer) -> None:
    await post(server, "/demo/classifiers", {"fault": "http-429"})

    status, headers, _ = await post(server, "/v1/moderations", {"input": "x"})

    assert status == 429
    assert headers["retry-after"] == "0"
    assert "retry-after-ms" not in headers


async def test_the_app_factory_sets_the_starting_controls(aiohttp_server: ServerFactory) -> None:
    server = await aiohttp_server(
        create_demo_app(classifier_latency_ms=25, classifier_fault="garbage")
    )

    status, _, body = await post(server, "/v1/moderations", {"input": "kill"})

    assert status == 200
    assert "results" not in body
    with pytest.raises(ValueError, match="fault must be null or one of"):
        create_demo_app(classifier_fault="nope")
