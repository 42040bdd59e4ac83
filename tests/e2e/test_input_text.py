"""Default deny on input, through the real gateway and the openai SDK."""

from __future__ import annotations

import json

import openai
import pytest

from tests.e2e.conftest import Stack, reply

SECRET = "sk-Abc123Def456Ghi789"


def test_tool_description_and_message_name_reach_upstream_redacted(stack: Stack) -> None:
    stack.client().chat.completions.create(
        model="demo-chat",
        messages=[{"role": "user", "name": f"bob{SECRET}", "content": "look it up"}],
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "lookup",
                    "description": f"Use the key {SECRET} to search.",
                    "parameters": {
                        "type": "object",
                        "properties": {"q": {"type": "string", "description": f"not {SECRET}"}},
                    },
                },
            }
        ],
        extra_headers=reply("ok"),
    )
    sent = stack.demo_state.requests[-1].body
    assert SECRET not in json.dumps(sent)
    assert sent["messages"][0]["name"] == "bob[REDACTED]"
    function = sent["tools"][0]["function"]
    assert function["description"] == "Use the key [REDACTED] to search."
    assert function["parameters"]["properties"]["q"] == {
        "type": "string",
        "description": "not [REDACTED]",
    }
    assert function["name"] == "lookup"
    assert sent["model"] == "demo-chat"


@pytest.mark.parametrize("prompt", [[1, 2, 3], [[1, 2], [3]]])
def test_token_id_prompt_is_refused(stack: Stack, prompt: list[int] | list[list[int]]) -> None:
    before = len(stack.demo_state.requests)
    with pytest.raises(openai.BadRequestError) as info:
        stack.client().completions.create(model="demo-chat", prompt=prompt)
    assert info.value.code == "unreadable_input"
    assert info.value.param == ("prompt" if isinstance(prompt[0], int) else "prompt[0]")
    assert "token ids" in info.value.message
    assert len(stack.demo_state.requests) == before
