"""The route-neutral answer: what each choice says, and how ``X-Demo-Reply`` spells it.

Keeping the answer apart from its rendering lets one ``X-Demo-Reply`` header, or one demo
script, drive Chat Completions, Responses and legacy Completions alike, so tests can compare
the same text across routes, streamed and not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway.demo.chunking import Chunking
from gateway.demo.tokens import count_tokens


@dataclass(frozen=True, slots=True)
class ToolCallSpec:
    """A function call; ``arguments`` is JSON text, streamed verbatim in pieces."""

    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer of one choice; any part may be absent."""

    content: str | None = None
    refusal: str | None = None
    tool_calls: tuple[ToolCallSpec, ...] = ()

    @property
    def finish_reason(self) -> Literal["stop", "tool_calls"]:
        return "tool_calls" if self.tool_calls else "stop"

    @property
    def tokens(self) -> int:
        texts = [self.content or "", self.refusal or "", *(c.arguments for c in self.tool_calls)]
        return sum(count_tokens(text) for text in texts)


ReplySpec = Reply | tuple[Reply, ...]
"""One reply for every choice, or one per choice index."""


def parse_reply_spec(value: object) -> ReplySpec:
    """Read the decoded ``X-Demo-Reply`` JSON; raises ``ValueError`` with a client message."""
    if isinstance(value, list):
        return tuple(_parse_reply(entry) for entry in value)
    return _parse_reply(value)


def replies_for(spec: ReplySpec, n: int) -> tuple[Reply, ...]:
    """The reply of each of ``n`` choices; a per-choice list must have exactly ``n``."""
    if isinstance(spec, Reply):
        return (spec,) * n
    if len(spec) != n:
        raise ValueError(f"has {len(spec)} replies for {n} choice(s)")
    return spec


def _parse_reply(value: object) -> Reply:
    if isinstance(value, str):
        return Reply(content=value)
    if not isinstance(value, dict):
        raise ValueError("a reply must be a string or an object")
    unknown = set(value) - {"content", "refusal", "tool_calls"}
    if unknown:
        raise ValueError(f"unknown reply field(s): {', '.join(sorted(unknown))}")
    return Reply(
        content=_optional_str(value, "content"),
        refusal=_optional_str(value, "refusal"),
        tool_calls=tuple(_parse_tool_call(call) for call in _list(value, "tool_calls")),
    )


def _parse_tool_call(value: object) -> ToolCallSpec:
    if not isinstance(value, dict):
        raise ValueError("a tool call must be an object")
    name, arguments = value.get("name"), value.get("arguments", "{}")
    if not isinstance(name, str) or not isinstance(arguments, str):
        raise ValueError('a tool call needs a string "name" and JSON text "arguments"')
    return ToolCallSpec(name=name, arguments=arguments)


def _optional_str(value: dict[str, object], key: str) -> str | None:
    item = value.get(key)
    if item is not None and not isinstance(item, str):
        raise ValueError(f'"{key}" must be a string')
    return item


def _list(value: dict[str, object], key: str) -> list[object]:
    item = value.get(key, [])
    if not isinstance(item, list):
        raise ValueError(f'"{key}" must be a list')
    return item


@dataclass(frozen=True, slots=True)
class Answer:
    """A whole answer, route-neutral, with everything that decides how a route renders it."""

    sequence: int
    """The request's number; every id in the answer derives from it, so ids are stable."""
    created: int
    model: str
    replies: tuple[Reply, ...]
    chunking: Chunking
    top_logprobs: int | None
    """How many alternatives each logprob lists; ``None`` when no logprobs were asked for."""
    include_usage: bool
    """Whether a stream ends with a usage chunk (Chat and legacy Completions only)."""
    prompt_tokens: int

    @property
    def completion_tokens(self) -> int:
        return sum(reply.tokens for reply in self.replies)
