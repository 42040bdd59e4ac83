"""Default deny for input text: every string the model could read is moderated or refused."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.adapters.base import ApiAdapter, JSONPath, TextField
from gateway.adapters.chat_completions import ADAPTER as CHAT
from gateway.adapters.completions import ADAPTER as COMPLETIONS
from gateway.adapters.inputs import InputVerdict, moderate_request
from gateway.adapters.request_text import MemberName, Unreadable
from gateway.adapters.responses import ADAPTER as RESPONSES
from gateway.proxy.retrieval import CONVERSATION_INPUT
from gateway.sluice import Action, Matcher, Rule, SluiceConfig
from tests.adapter_support import CFG, SECRET

#: Redacts every run of non-space characters: whatever survives it was not moderated.
EVERYTHING = dataclasses.replace(
    CFG, enforce=Matcher([Rule("all", r"\S+", Action.REDACT, "#")], 0.1)
)
FLAG_ONLY = dataclasses.replace(
    CFG, enforce=Matcher([], 0.1), observe=Matcher([Rule("secret", r"sk-\w{8,}", Action.FLAG)], 0.1)
)
NO_RULES = dataclasses.replace(CFG, enforce=Matcher([], 0.1))
DATA_URL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAW9"
    "JTJgAAAABJRU5ErkJggg=="
)


def check(adapter: ApiAdapter, body: dict[str, Any], config: SluiceConfig = CFG) -> InputVerdict:
    return moderate_request(adapter, body, config)


def sent(adapter: ApiAdapter, body: dict[str, Any], config: SluiceConfig = CFG) -> dict[str, Any]:
    """The body that would go upstream; fails if the request is refused."""
    verdict = check(adapter, body, config)
    assert verdict.blocked is None, verdict.blocked
    return verdict.body


def refused(adapter: ApiAdapter, body: dict[str, Any], config: SluiceConfig = CFG) -> InputVerdict:
    verdict = check(adapter, body, config)
    assert verdict.blocked is not None, "expected a refusal"
    return verdict


def tool(description: str = "Weather", /, **properties: Any) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": "weather",
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": ["city"]},
        },
    }


# -- chat ----------------------------------------------------------------------------------


def test_chat_tool_description_and_schema_text_are_redacted() -> None:
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [
            tool(
                f"key:{SECRET}",
                city={
                    "type": "string",
                    "title": f"t{SECRET}",
                    "description": SECRET,
                    "enum": ["Paris", SECRET],
                },
            )
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "answer",
                "schema": {"type": "object", "description": SECRET},
            },
        },
    }
    out = sent(CHAT, body)
    assert SECRET not in orjson.dumps(out).decode()
    function = out["tools"][0]["function"]
    assert function["description"] == "key:[REDACTED]"
    city = function["parameters"]["properties"]["city"]
    assert city == {
        "type": "string",
        "title": "t[REDACTED]",
        "description": "[REDACTED]",
        "enum": ["Paris", "[REDACTED]"],
    }
    assert out["response_format"]["json_schema"]["schema"]["description"] == "[REDACTED]"


def test_chat_banned_tool_description_blocks_naming_the_field() -> None:
    verdict = refused(CHAT, {"messages": [], "tools": [tool("about nightingale")]})
    assert verdict.code == "content_policy_violation"
    assert verdict.blocked is not None
    assert verdict.blocked.param == "tools[0].function.description"
    deep = refused(CHAT, {"messages": [], "tools": [tool(city={"description": "nightingale"})]})
    assert deep.blocked is not None
    assert deep.blocked.param == "tools[0].function.parameters.properties.city.description"


@pytest.mark.parametrize(
    ("message", "where"),
    [
        ({"role": "user", "name": f"bob{SECRET}", "content": "hi"}, ("name",)),
        ({"role": "assistant", "reasoning_content": SECRET}, ("reasoning_content",)),
        ({"role": "assistant", "reasoning": SECRET}, ("reasoning",)),
        ({"role": "user", "content": [SECRET]}, ("content", 0)),
        (
            {"role": "user", "content": [{"type": "text", "text": f"{SECRET}"}]},
            ("content", 0, "text"),
        ),
        (
            {"role": "user", "content": [{"type": "input_text", "text": f"{SECRET}"}]},
            ("content", 0, "text"),
        ),
        (
            {"role": "assistant", "content": [{"type": "thinking", "thinking": SECRET}]},
            ("content", 0, "thinking"),
        ),
        (
            {"role": "assistant", "content": [{"type": "future_part", "anything": SECRET}]},
            ("content", 0, "anything"),
        ),
        (
            {"role": "tool", "tool_call_id": "call_1", "content": SECRET},
            ("content",),
        ),
    ],
)
def test_chat_message_texts_are_redacted(message: dict[str, Any], where: JSONPath) -> None:
    out = sent(CHAT, {"model": "m", "messages": [message]})
    value: Any = out["messages"][0]
    for part in where:
        value = value[part]
    assert SECRET not in value and "[REDACTED]" in value


def test_chat_structural_values_pass_untouched() -> None:
    """Untouched when no rule fires; enums and bytes are not even scanned."""
    body: dict[str, Any] = {
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "messages": [
            {"role": "developer", "content": "x"},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": DATA_URL, "detail": "high"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png?x=1"}},
                    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                    {"type": "file", "file": {"file_id": "file-abc123"}},
                ],
            },
            {
                "role": "assistant",
                "tool_calls": [{"id": "call_Ab12", "type": "function", "function": {}}],
            },
            {"role": "tool", "tool_call_id": "call_Ab12", "content": "x"},
        ],
        "tool_choice": "auto",
        "reasoning_effort": "low",
        "service_tier": "flex",
        "modalities": ["text", "audio"],
        "audio": {"voice": "alloy", "format": "pcm16"},
        "response_format": {"type": "json_object"},
        "user": "user-42",
        "safety_identifier": "hash_9f8e",
        "prompt_cache_key": "cache:v1",
        "temperature": 0.2,
        "stream": True,
    }
    assert sent(CHAT, copy.deepcopy(body)) == body  # no rule fires on any of it
    # Enums and bytes are never scanned; ids, model names and URLs are, like text.
    scanned = [
        ("model",),
        ("messages", 0, "content"),
        ("messages", 1, "content", 1, "image_url", "url"),
        ("messages", 1, "content", 3, "file", "file_id"),
        ("messages", 2, "tool_calls", 0, "id"),
        ("messages", 3, "tool_call_id"),
        ("messages", 3, "content"),
        ("user",),
        ("safety_identifier",),
        ("prompt_cache_key",),
    ]
    assert sent(CHAT, copy.deepcopy(body), EVERYTHING) == replaced(body, scanned, "#")


def replaced(body: dict[str, Any], paths: list[JSONPath], value: str) -> dict[str, Any]:
    out = copy.deepcopy(body)
    for path in paths:
        target: Any = out
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
    return out


def test_id_shaped_secrets_in_id_slots_are_redacted() -> None:
    body = {
        "model": SECRET,
        "user": SECRET,
        "messages": [
            {"role": "tool", "tool_call_id": SECRET, "content": "x"},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": f"https://x.test/a.png?k={SECRET}"}}
                ],
            },
        ],
    }
    out = orjson.dumps(sent(CHAT, body)).decode()
    assert SECRET not in out and out.count("[REDACTED]") == 4


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": f"gpt {SECRET}", "messages": []}, "model"),
        ({"messages": [{"role": f"user {SECRET}", "content": ""}]}, "messages[0].role"),
        (
            {"messages": [{"role": "tool", "tool_call_id": f"c {SECRET}"}]},
            "messages[0].tool_call_id",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": f"see {SECRET}"}}],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": f"data:text/plain,{SECRET}"}}
                        ],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
        ),
        ({"messages": [], "tool_choice": f"use {SECRET}"}, "tool_choice"),
        ({"messages": [], "user": f"{SECRET}@example.com"}, "user"),
    ],
)
def test_a_structural_key_with_a_bad_shape_is_moderated(body: dict[str, Any], param: str) -> None:
    fields = {f.param: f.text for f in CHAT.request_fields(body)}
    assert SECRET in fields[param]
    assert SECRET not in orjson.dumps(sent(CHAT, body)).decode()


def test_structural_names_count_only_in_their_place() -> None:
    body = {
        "messages": [],
        "x_extension": {"model": SECRET, "id": [SECRET], "url": {"type": SECRET}},
    }
    assert [f.param for f in CHAT.request_fields(body) if f.text == SECRET] == [
        "x_extension.model",
        "x_extension.id[0]",
        "x_extension.url.type",
    ]
    assert SECRET not in orjson.dumps(sent(CHAT, body)).decode()


def test_stop_sequences_and_metadata_are_text() -> None:
    body = {"messages": [], "stop": [f"x{SECRET}", "END"], "metadata": {"note": f"n {SECRET}"}}
    out = sent(CHAT, body)
    assert out["stop"] == ["x[REDACTED]", "END"]
    assert out["metadata"] == {"note": "n [REDACTED]"}


def test_a_member_name_a_rule_would_redact_refuses_the_request() -> None:
    body = {"messages": [], "tools": [tool(**{f"key_{SECRET}": {"type": "string"}})]}
    verdict = refused(CHAT, body)
    assert verdict.code == "content_policy_violation"
    assert isinstance(verdict.blocked, MemberName)
    assert verdict.blocked.param == f"tools[0].function.parameters.properties.key_{SECRET}"
    # The audit channel never spells the matched name.
    assert [h.channel for h in verdict.hits] == ["input:tools[0].function.parameters.properties.*"]
    assert body["tools"][0]["function"]["parameters"]["properties"]  # nothing renamed
    blocked = refused(CHAT, {"messages": [], "metadata": {"nightingale": "x"}})
    assert blocked.blocked is not None and blocked.blocked.param == "metadata.nightingale"


def test_a_flagged_member_name_is_masked_in_every_channel_below_it() -> None:
    body = {"messages": [], "x": {f"k{SECRET}": {"note": f"v{SECRET}"}}}
    verdict = check(CHAT, body, FLAG_ONLY)
    assert verdict.blocked is None and not verdict.changed
    assert [h.channel for h in verdict.hits] == ["input:x.*", "input:x.*.note"]


def test_token_ids_in_chat_extensions_are_refused() -> None:
    verdict = refused(CHAT, {"messages": [], "prompt_token_ids": [1, 2]})
    assert verdict.code == "unreadable_input"
    assert verdict.blocked is not None and verdict.blocked.param == "prompt_token_ids"


def test_repeated_texts_are_all_rewritten() -> None:
    body = {"messages": [{"role": "user", "content": f"a {SECRET}"} for _ in range(3)]}
    assert [m["content"] for m in sent(CHAT, body)["messages"]] == ["a [REDACTED]"] * 3


def test_nesting_deeper_than_the_recursion_limit_is_walked() -> None:
    depth = 1022  # as deep as orjson parses: the walk keeps its own stack
    raw = '{"messages": [], "x": ' + "[" * depth + f'"x {SECRET}"' + "]" * depth + "}"
    value: Any = sent(CHAT, orjson.loads(raw))["x"]
    for _ in range(depth):
        (value,) = value
    assert value == "x [REDACTED]"


def test_an_adapter_listing_its_own_fields_still_works() -> None:
    def fields(body: dict[str, Any]) -> Iterator[TextField]:
        yield TextField(("a",), body["a"])
        yield MemberName(("b",), "b")
        yield Unreadable(("c",), "")

    adapter = dataclasses.replace(CHAT, request_fields=fields)
    verdict = check(adapter, {"a": f"x {SECRET}", "b": 1, "c": [1]})
    assert verdict.body["a"] == "x [REDACTED]"
    assert verdict.code == "unreadable_input" and verdict.blocked == Unreadable(("c",), "")


# -- responses -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (
            {"prompt": {"id": "pmpt_1", "variables": {"city": f"c {SECRET}"}}},
            ("prompt", "variables", "city"),
        ),
        (
            {
                "prompt": {
                    "id": "pmpt_1",
                    "variables": {"doc": {"type": "input_text", "text": SECRET}},
                }
            },
            ("prompt", "variables", "doc", "text"),
        ),
        ({"prompt": f"p {SECRET}"}, ("prompt",)),
        ({"instructions": [{"role": "system", "content": SECRET}]}, ("instructions", 0, "content")),
        (
            {
                "input": [
                    {"role": "assistant", "content": [{"type": "output_text", "text": SECRET}]}
                ]
            },
            ("input", 0, "content", 0, "text"),
        ),
        (
            {
                "input": [
                    {
                        "type": "reasoning",
                        "id": "rs_1",
                        "summary": [],
                        "content": [{"type": "reasoning_text", "text": SECRET}],
                    }
                ]
            },
            ("input", 0, "content", 0, "text"),
        ),
        (
            {
                "input": [
                    {
                        "type": "shell_call_output",
                        "call_id": "c1",
                        "output": [
                            {
                                "stdout": SECRET,
                                "stderr": "",
                                "outcome": {"type": "exit", "exit_code": 0},
                            }
                        ],
                    }
                ]
            },
            ("input", 0, "output", 0, "stdout"),
        ),
        (
            {
                "input": [
                    {
                        "type": "apply_patch_call",
                        "call_id": "c1",
                        "operation": {"type": "update_file", "path": "a.py", "diff": f"+{SECRET}"},
                    }
                ]
            },
            ("input", 0, "operation", "diff"),
        ),
        (
            {
                "input": [
                    {
                        "type": "function_call_output",
                        "call_id": "c1",
                        "output": [{"type": "input_text", "text": SECRET}],
                    }
                ]
            },
            ("input", 0, "output", 0, "text"),
        ),
        (
            {"tools": [{"type": "function", "name": "f", "description": SECRET, "parameters": {}}]},
            ("tools", 0, "description"),
        ),
        (
            {"text": {"format": {"type": "json_schema", "name": "a", "schema": {"title": SECRET}}}},
            ("text", "format", "schema", "title"),
        ),
    ],
)
def test_responses_texts_are_redacted(body: dict[str, Any], where: JSONPath) -> None:
    value: Any = sent(RESPONSES, {"model": "gpt-5", **body})
    for part in where:
        value = value[part]
    assert SECRET not in value and "[REDACTED]" in value


def test_responses_prompt_variable_name_is_text() -> None:
    verdict = refused(RESPONSES, {"prompt": {"id": "pmpt_1", "variables": {"nightingale": "x"}}})
    assert verdict.blocked is not None and verdict.blocked.param == "prompt.variables.nightingale"


def test_responses_structural_values_pass_untouched() -> None:
    body: dict[str, Any] = {
        "model": "gpt-5",
        "previous_response_id": "resp_68a1b2",
        "conversation": {"id": "conv_123"},
        "include": ["reasoning.encrypted_content", "message.output_text.logprobs"],
        "truncation": "auto",
        "prompt": {"id": "pmpt_abc", "version": "2"},
        "reasoning": {"effort": "high", "summary": "auto"},
        "text": {"verbosity": "low", "format": {"type": "text"}},
        "tool_choice": {"type": "function"},
        "input": [
            {
                "type": "reasoning",
                "id": "rs_1",
                "encrypted_content": "gAAAAABo-x_Y=",
                "summary": [],
            },
            {"type": "item_reference", "id": "msg_1"},
            {"type": "function_call_output", "call_id": "call_1", "status": "completed"},
            {
                "role": "user",
                "content": [
                    {"type": "input_image", "image_url": DATA_URL, "detail": "low"},
                    {"type": "input_file", "file_id": "file-1", "file_url": "https://x.test/a.pdf"},
                ],
            },
        ],
    }
    assert sent(RESPONSES, copy.deepcopy(body)) == body
    scanned = [
        ("model",),
        ("previous_response_id",),
        ("conversation", "id"),
        ("prompt", "id"),
        ("prompt", "version"),
        ("input", 0, "id"),
        ("input", 1, "id"),
        ("input", 2, "call_id"),
        ("input", 3, "content", 1, "file_id"),
        ("input", 3, "content", 1, "file_url"),
    ]
    assert sent(RESPONSES, copy.deepcopy(body), EVERYTHING) == replaced(body, scanned, "#")


def test_conversation_items_are_walked_like_responses_input() -> None:
    body = {"items": [{"role": "user", "content": f"hi {SECRET}"}]}
    assert sent(CONVERSATION_INPUT, body)["items"][0]["content"] == "hi [REDACTED]"
    named = refused(CONVERSATION_INPUT, {"items": [{"role": "user", f"x{SECRET}": "v"}]})
    assert isinstance(named.blocked, MemberName)
    assert named.blocked.param == f"items[0].x{SECRET}"


# -- completions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": [1, 2, 3]}, "prompt"),
        ({"prompt": [[1, 2], [3]]}, "prompt[0]"),
        ({"prompt": ["fine", [7]]}, "prompt[1]"),
        ({"prompt": 5}, "prompt"),
        ({"prompt": "text", "prompt_token_ids": [1]}, "prompt_token_ids"),
        ({"prompt": "text", "prompt_embeds": "AAAA"}, "prompt_embeds"),
    ],
)
def test_completions_token_ids_are_refused(body: dict[str, Any], param: str) -> None:
    verdict = refused(COMPLETIONS, {"model": "m", **body})
    assert verdict.code == "unreadable_input"
    assert "token ids" in verdict.message
    assert verdict.blocked is not None and verdict.blocked.param == param


@pytest.mark.parametrize("config", [FLAG_ONLY, NO_RULES], ids=["flag-only", "no-rules"])
def test_token_ids_pass_when_the_policy_enforces_nothing(config: SluiceConfig) -> None:
    assert check(COMPLETIONS, {"prompt": [1, 2]}, config).blocked is None


def test_completions_texts_are_redacted_and_structure_kept() -> None:
    body = {
        "model": "gpt-3.5-turbo-instruct",
        "prompt": [f"a {SECRET}", "b"],
        "suffix": SECRET,
        "stop": "\n",
        "logit_bias": {"50256": -100},
        "user": "u1",
    }
    assert sent(COMPLETIONS, body) == {
        **body,
        "prompt": ["a [REDACTED]", "b"],
        "suffix": "[REDACTED]",
    }


# -- the property: a planted secret never goes upstream ------------------------------------

TEXTS = st.text(st.characters(codec="utf-8", exclude_characters="¶"), max_size=8)
#: A text slot of the API's shape: the mark says "the model reads this", for raw plants.
SLOT = TEXTS.map(lambda s: "¶" + s)
VOCAB = [
    "model", "role", "type", "id", "call_id", "tool_call_id", "url", "image_url", "detail",
    "content", "text", "name", "description", "properties", "parameters", "function",
    "metadata", "prompt", "input", "output", "encrypted_content", "data", "user", "include",
]  # fmt: skip
KEYS = st.sampled_from(VOCAB) | TEXTS
SCALARS = st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-1, 1) | TEXTS
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=10,
)
EXTRAS = st.dictionaries(KEYS, VALUES, max_size=2)
ENUMS = st.sampled_from(["user", "assistant", "system", "tool", "text", "auto", "low"])
IDS = st.sampled_from(["call_1", "file-abc", "rs_9", "resp_1"])


@st.composite
def with_extras(draw: st.DrawFn, base: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    """An object of the API's shape with arbitrary members mixed in (and some replaced)."""
    return {**draw(base), **draw(EXTRAS)}


def _obj(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return with_extras(st.fixed_dictionaries({}, optional=fields))


SCHEMA = _obj(
    type=st.sampled_from(["object", "string"]),
    description=SLOT,
    properties=st.dictionaries(TEXTS, _obj(type=ENUMS, description=SLOT, enum=st.lists(SLOT))),
    required=st.lists(SLOT),
)
PARTS = st.lists(
    _obj(
        type=st.sampled_from(["text", "input_text", "output_text", "image_url", "thinking"]),
        text=SLOT,
        thinking=SLOT,
        image_url=st.just("https://example.com/a.png") | _obj(url=st.just(DATA_URL)),
        input_audio=_obj(data=st.just("UklGRg=="), format=st.just("wav")),
        file_id=IDS,
    ),
    max_size=3,
)
CONTENT = SLOT | PARTS
TOOLS = st.lists(
    _obj(
        type=st.just("function"),
        function=_obj(name=SLOT, description=SLOT, parameters=SCHEMA),
        name=SLOT,
        description=SLOT,
        parameters=SCHEMA,
    ),
    max_size=2,
)
COMMON: dict[str, st.SearchStrategy[Any]] = {
    "model": st.sampled_from(["gpt-4o", "org/model:7b"]),
    "user": IDS,
    "metadata": st.dictionaries(TEXTS, SLOT, max_size=2),
    "stop": SLOT | st.lists(SLOT, max_size=2),
    "tools": TOOLS,
}
CHAT_BODIES = with_extras(
    st.fixed_dictionaries(
        {
            "messages": st.lists(
                _obj(
                    role=ENUMS,
                    content=CONTENT,
                    name=SLOT,
                    tool_call_id=IDS,
                    reasoning_content=SLOT,
                    tool_calls=st.lists(_obj(id=IDS, function=_obj(name=SLOT, arguments=SLOT))),
                ),
                max_size=3,
            )
        },
        optional={
            **COMMON,
            "tool_choice": ENUMS,
            "response_format": _obj(type=ENUMS, json_schema=_obj(name=SLOT, schema=SCHEMA)),
        },
    )
)
ITEMS = st.lists(
    _obj(
        type=st.sampled_from(["message", "function_call_output", "reasoning", "shell_call_output"]),
        role=ENUMS,
        id=IDS,
        call_id=IDS,
        content=CONTENT,
        output=CONTENT | st.lists(_obj(stdout=SLOT, outcome=_obj(type=ENUMS))),
        summary=PARTS,
        encrypted_content=st.just("gAAAAB="),
        arguments=SLOT,
    ),
    max_size=3,
)
RESPONSES_BODIES = with_extras(
    st.fixed_dictionaries(
        {"input": SLOT | ITEMS},
        optional={
            **COMMON,
            "instructions": SLOT | ITEMS,
            "previous_response_id": IDS,
            "include": st.lists(ENUMS, max_size=2),
            "prompt": _obj(id=IDS, variables=st.dictionaries(TEXTS, SLOT | PARTS, max_size=2)),
            "text": _obj(format=_obj(type=ENUMS, schema=SCHEMA)),
        },
    )
)
COMPLETIONS_BODIES = with_extras(
    st.fixed_dictionaries(
        {"prompt": SLOT | st.lists(SLOT, max_size=3) | st.lists(st.integers(0, 9), max_size=3)},
        optional={**COMMON, "suffix": SLOT},
    )
)
APIS = {"chat": (CHAT, CHAT_BODIES), "responses": (RESPONSES, RESPONSES_BODIES)}
APIS["completions"] = (COMPLETIONS, COMPLETIONS_BODIES)
#: Where a raw secret goes under a new member: structural names mean nothing there.
FREE_PLANTS = [SECRET, [SECRET], {"model": SECRET}, {"id": [SECRET]}, {"url": {"type": SECRET}}]


def spots(value: Any, path: JSONPath = ()) -> Iterator[tuple[JSONPath, str]]:
    """Every string leaf (``"value"``), member name (``"name"``) and object (``"object"``)."""
    if isinstance(value, str):
        yield path, "value"
    elif isinstance(value, dict):
        yield path, "object"
        for key, item in value.items():
            yield (*path, key), "name"
            yield from spots(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from spots(item, (*path, i))


def plant(body: dict[str, Any], path: JSONPath, what: str, text: str, free: Any) -> None:
    parent: Any = body
    for part in path[:-1] if what != "object" else path:
        parent = parent[part]
    if what == "object":
        parent[f"x-{len(parent)}"] = copy.deepcopy(free)  # a member no API knows: all text below
    elif what == "name":
        renamed = {(text if k == path[-1] else k): v for k, v in parent.items()}
        parent.clear()
        parent.update(renamed)
    else:
        parent[path[-1]] = text


@pytest.mark.parametrize("api", sorted(APIS))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_planted_secret_never_reaches_upstream(api: str, data: st.DataObject) -> None:
    """Anywhere in any body: a string leaf or a member name (wrapped in spaces, so no
    structural shape can hold it), raw in a text slot of the API's shape, or raw at any
    depth under a member no API knows."""
    adapter, bodies = APIS[api]
    body = data.draw(bodies)
    found = [
        (p, "slot" if w == "value" and _at(body, p).startswith("¶") else w) for p, w in spots(body)
    ]
    kinds = sorted({w for _, w in found})
    what = data.draw(
        st.sampled_from(["slot"] * len(kinds) if "slot" in kinds else kinds)
        | st.sampled_from(kinds)
    )
    path = data.draw(st.sampled_from([p for p, w in found if w == what]))
    text = f"{data.draw(TEXTS)} {SECRET} {data.draw(TEXTS)}"
    if what == "slot":  # a text slot: moderated for what it is, not for its shape
        what, text = "value", SECRET
    plant(body, path, what, text, data.draw(st.sampled_from(FREE_PLANTS)))
    assert SECRET in orjson.dumps(body).decode()  # planted
    verdict = moderate_request(adapter, body, CFG)
    if verdict.blocked is None:
        assert SECRET not in orjson.dumps(verdict.body).decode()


@pytest.mark.parametrize("api", sorted(APIS))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_body_without_matches_goes_upstream_unchanged(api: str, data: st.DataObject) -> None:
    adapter, bodies = APIS[api]
    body = data.draw(bodies)
    clean = not any("sk-" in t or "nightingale" in t for t in _strings(body))
    before = orjson.dumps(body)
    verdict = moderate_request(adapter, body, CFG)
    if clean:
        assert orjson.dumps(verdict.body) == before
        assert verdict.blocked is None or verdict.code == "unreadable_input"


def _at(body: Any, path: JSONPath) -> Any:
    for part in path:
        body = body[part]
    return body


def _strings(value: Any) -> Iterator[str]:
    for path, what in spots(value):
        if what != "object":
            target: Any = value
            for part in path[:-1] if what == "name" else path:
                target = target[part]
            yield path[-1] if what == "name" else target  # type: ignore[misc]
