"""Default deny on output, end to end: a hostile upstream tries every way to leak a key.

The gateway runs in front of ``tests.hostile_upstream``, which answers with the raw
events each test scripts. Every test plants the key split across events where the
field streams, then checks the bytes the client receives (read raw with httpx, every
string and member name decoded, every field concatenated across events as a client
would), that the openai SDK parses the same answer, and that benign text in the same
field arrives unchanged.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import openai
import pytest
from aiohttp import web

from gateway.metrics import Metrics
from gateway.proxy.app import create_app
from gateway.settings import Settings
from tests.e2e.conftest import POLICIES
from tests.hostile_upstream import (
    HOSTILE_STATE,
    HostileState,
    Script,
    body,
    create_hostile_app,
    lines,
    sse,
)

SECRET = "sk-Abc123Def456Ghi789"
#: Every 8-character piece of the key: none may reach a client, in any field.
PIECES = tuple(SECRET[i : i + 8] for i in range(len(SECRET) - 7))
HEAD, TAIL = "Your key is sk-Abc12", "3Def456Ghi789, keep it safe."  # the key, split
REDACTED = "Your key is [REDACTED], keep it safe."
BENIGN = ("The weather in ", "Köln is mild — ", "bring a coat 🧥.")

# The SDK warns when it serialises the odd types a hostile upstream sends (an object as
# ``arguments``, a list as ``content``): that is the point here, not a failure.
pytestmark = pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")


# -- the stack ---------------------------------------------------------------------------


@dataclass
class HostileStack:
    """A hostile upstream and a gateway in front of it, on a background loop.

    The clients are made once: each builds an SSL context, which costs more than a request.
    """

    upstream_url: str
    gateway_url: str
    upstream: HostileState
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))
    _sdk: dict[str, openai.OpenAI] = field(default_factory=dict)

    def client(self) -> openai.OpenAI:
        return self._openai(self.gateway_url)

    def direct_client(self) -> openai.OpenAI:
        return self._openai(self.upstream_url)

    def _openai(self, url: str) -> openai.OpenAI:
        if url not in self._sdk:
            self._sdk[url] = openai.OpenAI(base_url=url, api_key="test-key", max_retries=0)
        return self._sdk[url]

    def raw(
        self, path: str, body: dict[str, Any], headers: dict[str, str], method: str = "POST"
    ) -> httpx.Response:
        """The gateway's answer as bytes, read to the end."""
        return self.http.request(
            method,
            self.gateway_url + path,
            json=body if method == "POST" else None,
            headers={"Authorization": "Bearer test-key", **headers},
        )

    def close(self) -> None:
        self.http.close()
        for client in self._sdk.values():
            client.close()


async def _start(metrics: Metrics) -> tuple[list[web.AppRunner], str, str, HostileState]:
    hostile_app = create_hostile_app()
    hostile = web.AppRunner(hostile_app, handler_cancellation=True)
    await hostile.setup()
    await web.TCPSite(hostile, "127.0.0.1", 0).start()
    upstream_url = f"http://127.0.0.1:{hostile.addresses[0][1]}/v1"
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        upstream_url=upstream_url,
        policy=POLICIES,
        default_policy="test",
        policy_reload_seconds=0,
        keepalive_seconds=0,
        read_timeout=5,
    )
    gateway = web.AppRunner(create_app(settings, metrics), handler_cancellation=True)
    await gateway.setup()
    await web.TCPSite(gateway, "127.0.0.1", 0).start()
    gateway_url = f"http://127.0.0.1:{gateway.addresses[0][1]}/v1"
    return [gateway, hostile], upstream_url, gateway_url, hostile_app[HOSTILE_STATE]


def run_hostile_stack() -> Iterator[HostileStack]:
    """``conftest.run_stack`` with the hostile upstream in place of the demo."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    started: Future[Any] = asyncio.run_coroutine_threadsafe(_start(Metrics()), loop)
    runners, upstream_url, gateway_url, state = started.result(timeout=30)
    stack = HostileStack(upstream_url, gateway_url, state)
    try:
        yield stack
    finally:
        stack.close()
        for runner in runners:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileStack]:
    yield from run_hostile_stack()


# -- what a client received ------------------------------------------------------------


def payloads(raw: bytes) -> list[Any]:
    """The JSON documents of an answer: each SSE event's data, or the whole body."""
    text = raw.decode()
    if not text.startswith(("data:", "event:", ":")):
        try:
            return [json.loads(text)]
        except json.JSONDecodeError:
            return []
    docs = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        data = [ln[5:].removeprefix(" ") for ln in block.split("\n") if ln.startswith("data:")]
        if data and data != ["[DONE]"]:
            docs.append(json.loads("\n".join(data)))
    return docs


def _walk(value: Any, path: tuple[Any, ...], texts: dict[tuple[Any, ...], list[str]]) -> None:
    if isinstance(value, str):
        texts.setdefault(path, []).append(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            texts.setdefault(("<name>",), []).append(f"{key}\n")  # names never concatenate
            _walk(item, (*path, key), texts)
    elif isinstance(value, list):
        for position, item in enumerate(value):
            _walk(item, (*path, position), texts)


def leaks(docs: list[Any], raw: bytes = b"") -> list[str]:
    """Every piece of the key a client could read: in the bytes, in a decoded string or
    member name, or in one field's strings concatenated across events (as SDKs and
    clients do with deltas; Responses events are grouped by ``type``)."""
    texts: dict[tuple[Any, ...], list[str]] = {}
    for doc in docs:
        kind = doc.get("type") if isinstance(doc, dict) else None
        _walk(doc, (kind if isinstance(kind, str) else None,), texts)
    readable = [raw.decode(errors="replace"), *("".join(parts) for parts in texts.values())]
    return sorted({piece for piece in PIECES if any(piece in text for text in readable)})


def at(doc: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        listed = isinstance(step, int) and isinstance(doc, list) and step < len(doc)
        if not (listed or (isinstance(step, str) and isinstance(doc, dict) and step in doc)):
            return None
        doc = doc[step]
    return doc


def concat(docs: list[Any], *path: str | int, kind: str | None = None) -> str:
    """A field's text as a client accumulates it: its strings over every event, in order
    (only events of type ``kind`` when given)."""
    return "".join(
        value
        for doc in docs
        if kind is None or (isinstance(doc, dict) and doc.get("type") == kind)
        if isinstance(value := at(doc, path), str)
    )


def last(docs: list[Any], *path: str | int, kind: str | None = None) -> str | None:
    """The field's value in the last event that has it (fields that do not stream)."""
    found = [
        value
        for doc in docs
        if kind is None or (isinstance(doc, dict) and doc.get("type") == kind)
        if isinstance(value := at(doc, path), str)
    ]
    return found[-1] if found else None


# -- scripted answers ----------------------------------------------------------------------

Api = Literal["chat", "responses", "completions"]
Pieces = Sequence[str]
MODEL = "hostile-1"


def chunk(*entries: dict[str, Any], **envelope: Any) -> str:
    head = {"id": "chatcmpl-h1", "object": "chat.completion.chunk", "created": 1, "model": MODEL}
    return json.dumps({**head, **envelope, "choices": list(entries)}, ensure_ascii=False)


def entry(delta: dict[str, Any], finish: str | None = None, **more: Any) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "finish_reason": finish, **more}


def chat(
    *deltas: dict[str, Any] | str,
    finish: str = "stop",
    first: dict[str, Any] | None = None,
    **envelope: Any,
) -> Script:
    """A chat stream: the role, one chunk per delta (a ``str`` is a raw chunk), the
    finish chunk, ``[DONE]``; ``envelope`` members go on every chunk."""
    opening = {"role": "assistant", "content": ""} if first is None else first
    return sse(
        chunk(entry(opening), **envelope),
        *(d if isinstance(d, str) else chunk(entry(d), **envelope) for d in deltas),
        chunk(entry({}, finish), **envelope),
        done=True,
    )


def completion(message: dict[str, Any], **more: Any) -> Script:
    """A non-streamed ``chat.completion``; ``more`` goes on the choice, or with a
    ``body_`` prefix on the body."""
    choice = {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": "stop"}
    choice |= {k: v for k, v in more.items() if not k.startswith("body_")}
    envelope = {k.removeprefix("body_"): v for k, v in more.items() if k.startswith("body_")}
    head = {"id": "chatcmpl-h1", "object": "chat.completion", "created": 1, "model": MODEL}
    return body({**head, **envelope, "choices": [choice]})


def tool_call(arguments: Any, name: str = "lookup", **more: Any) -> dict[str, Any]:
    call = {"id": "call_h1", "type": "function", "function": {"name": name, "arguments": arguments}}
    return {"index": 0, **call, **more}


def logprob(token: str, shown: str, top: str | None = None) -> dict[str, Any]:
    """An entry whose ``token`` is ``token`` but whose ``bytes`` spell ``shown``."""
    alternatives = [] if top is None else [{"token": top, "logprob": -3.0, "bytes": None}]
    return {
        "token": token,
        "logprob": -0.5,
        "bytes": list(shown.encode()),
        "top_logprobs": alternatives,
    }


_RESPONSE = {"id": "resp_h1", "object": "response", "created_at": 1, "model": MODEL}


def responses(*events: tuple[str, dict[str, Any]], output: list[Any]) -> Script:
    """``response.created``, the events, ``response.completed`` with ``output``."""
    sequence = [
        ("response.created", {"response": {**_RESPONSE, "status": "in_progress", "output": []}}),
        *events,
        (
            "response.completed",
            {"response": {**_RESPONSE, "status": "completed", "output": output}},
        ),
    ]
    return sse(
        *(
            (kind, json.dumps({"type": kind, "sequence_number": n, **fields}, ensure_ascii=False))
            for n, (kind, fields) in enumerate(sequence)
        )
    )


def one_item(
    added: dict[str, Any], done: dict[str, Any], *between: tuple[str, dict[str, Any]]
) -> Script:
    """A response of one output item: added, the events between, done, completed."""
    return responses(
        ("response.output_item.added", {"output_index": 0, "item": added}),
        *between,
        ("response.output_item.done", {"output_index": 0, "item": done}),
        output=[done],
    )


def response_body(*items: dict[str, Any]) -> Script:
    return body({**_RESPONSE, "status": "completed", "output": list(items)})


def shell_call(*commands: str, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "shell_call",
        "id": "sh_h1",
        "call_id": "call_h1",
        "action": {"commands": list(commands), "max_output_length": None, "timeout_ms": None},
        "status": status,
    }


def shell_output(stdout: str | None, status: str = "completed") -> dict[str, Any]:
    outcome = {"type": "exit", "exit_code": 0}
    return {
        "type": "shell_call_output",
        "id": "sho_h1",
        "call_id": "call_h1",
        "output": [] if stdout is None else [{"stdout": stdout, "stderr": "", "outcome": outcome}],
        "status": status,
    }


def apply_patch_call(diff: str, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "apply_patch_call",
        "id": "ap_h1",
        "call_id": "call_h1",
        "operation": {"type": "update_file", "path": "notes.md", "diff": diff},
        "status": status,
    }


def computer_call(text: str, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "computer_call",
        "id": "cu_h1",
        "call_id": "call_h1",
        "pending_safety_checks": [],
        "status": status,
        "action": {"type": "type", "text": text},
    }


def mcp_call(arguments: str, output: str | None, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "mcp_call",
        "id": "mcp_h1",
        "name": "lookup",
        "server_label": "docs",
        "arguments": arguments,
        "output": output,
        "status": status,
    }


def mcp_approval_request(arguments: str) -> dict[str, Any]:
    return {
        "type": "mcp_approval_request",
        "id": "mcpr_h1",
        "name": "lookup",
        "server_label": "docs",
        "arguments": arguments,
    }


def message(text: str, status: str = "completed") -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": []}] if text else []
    return {
        "type": "message",
        "id": "msg_h1",
        "role": "assistant",
        "status": status,
        "content": content,
    }


def q(text: str) -> str:
    """JSON arguments carrying ``text``."""
    return json.dumps({"q": text}, ensure_ascii=False)


def q_of(arguments: str | None) -> str | None:
    return json.loads(arguments)["q"] if arguments else None


def legacy_chunk(text: str, finish: str | None = None, **more: Any) -> str:
    head = {"id": "cmpl-h1", "object": "text_completion", "created": 1, "model": MODEL}
    choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None, **more}
    return json.dumps({**head, "choices": [choice]}, ensure_ascii=False)


def legacy_logprobs(token: str, offset: int, *, extra: Any) -> dict[str, Any]:
    return {
        "tokens": [token],
        "token_logprobs": [-0.5],
        "top_logprobs": [{token: -0.5, SECRET: -3.0}],
        "text_offset": [offset],
        **extra,
    }


def offsets(pieces: Pieces) -> list[int]:
    return [sum(len(p) for p in pieces[:i]) for i in range(len(pieces))]


def tokens(docs: list[Any], *path: str | int) -> str:
    """Every logprob entry's ``token`` at ``path`` (a list of entries), over the events."""
    return "".join(
        e["token"]
        for doc in docs
        if isinstance(entries := at(doc, path), list)
        for e in entries
        if isinstance(e, dict) and isinstance(e.get("token"), str)
    )


def json_pieces(pieces: Pieces) -> list[str]:
    """``q(text)`` as streamed JSON: the pieces escaped, the object around them."""
    escaped = [json.dumps(p, ensure_ascii=False)[1:-1] for p in pieces]
    return ['{"q": "' + escaped[0], *escaped[1:-1], escaped[-1] + '"}']


def dup_delta(first: str, second: str) -> str:
    """A chunk whose delta has ``content`` twice (JSON parsers keep the last)."""
    head = '{"id":"chatcmpl-h1","object":"chat.completion.chunk","created":1,"model":"hostile-1"'
    delta = f'{{"content":{json.dumps(first)},"content":{json.dumps(second)}}}'
    return f'{head},"choices":[{{"index":0,"delta":{delta},"finish_reason":null}}]}}'


def dup_choices(text: str) -> str:
    """A chunk whose ``choices`` carry ``text`` and then are ``null`` (a later key)."""
    choices = json.dumps([entry({"content": text})])
    head = '{"id":"chatcmpl-h1","object":"chat.completion.chunk"'
    return f'{head},"choices":{choices},"choices":null}}'


def filter_results(text: str) -> dict[str, Any]:
    """Azure-style per-choice results with a text member of its own."""
    return {
        "hate": {"filtered": False, "severity": "safe"},
        "protected_material_text": {"detected": False, "explanation": text},
    }


# -- the leak classes --------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One way to carry text: how upstream sends it, and where a client reads it back.

    ``build`` scripts the answer from the text's pieces, one event each where the field
    streams; ``fields`` reads every place the text shows up in what the client got (each
    must read the whole text: redacted for the key, unchanged for benign text).
    """

    id: str
    api: Api
    build: Callable[[Pieces], Script]
    fields: Callable[[list[Any]], list[str | None]]
    stream: bool = True
    secret: Pieces = (HEAD, TAIL)
    redacted: str | None = REDACTED  # what the fields read for the key; None: not pinned
    leak: str | None = None  # known leak: xfail reason for the no-leak test
    breaks: str | None = None  # known breakage: xfail reason for the transparency test


def _text(pieces: Pieces) -> str:
    return "".join(pieces)


STRUCTURAL_SPLIT = ("sk-Abc12", "3Def456Ghi789")  # each piece shaped like an id or enum
D = ("choices", 0, "delta")
M = ("choices", 0, "message")

CHAT_STREAM = [
    Case(
        "reasoning_details",
        "chat",
        lambda ps: chat(
            *(
                {"reasoning_details": [{"type": "reasoning.text", "text": p, "index": 0}]}
                for p in ps
            )
        ),
        lambda d: [concat(d, *D, "reasoning_details", 0, "text")],
    ),
    Case(
        "thinking_blocks",
        "chat",
        lambda ps: chat(
            *(
                {"thinking_blocks": [{"type": "thinking", "thinking": p, "signature": "c2ln"}]}
                for p in ps
            )
        ),
        lambda d: [concat(d, *D, "thinking_blocks", 0, "thinking")],
    ),
    Case(
        "content_parts",
        "chat",
        lambda ps: chat(*({"content": [{"type": "text", "text": p}]} for p in ps)),
        lambda d: [concat(d, *D, "content", 0, "text")],
    ),
    Case(
        "annotations",
        "chat",
        lambda ps: chat(
            {"content": "See the docs."},
            *(
                {
                    "annotations": [
                        {
                            "type": "url_citation",
                            "url_citation": {
                                "url": "https://example.test/a",
                                "title": p,
                                "start_index": 0,
                                "end_index": 3,
                            },
                        }
                    ]
                }
                for p in ps
            ),
        ),
        lambda d: [concat(d, *D, "annotations", 0, "url_citation", "title")],
    ),
    Case(
        "tool_arguments_object",
        "chat",
        lambda ps: chat(
            *({"tool_calls": [{"index": 0, "function": {"arguments": {"q": p}}}]} for p in ps),
            first={"role": "assistant", "content": None, "tool_calls": [tool_call("")]},
            finish="tool_calls",
        ),
        lambda d: [concat(d, *D, "tool_calls", 0, "function", "arguments", "q")],
    ),
    Case(
        "tool_call_unknown_member",
        "chat",
        lambda ps: chat(
            *({"tool_calls": [{"index": 0, "provider_note": p}]} for p in ps),
            first={"role": "assistant", "content": None, "tool_calls": [tool_call("{}")]},
            finish="tool_calls",
        ),
        lambda d: [concat(d, *D, "tool_calls", 0, "provider_note")],
    ),
    Case(
        "tool_call_name_split",
        "chat",
        lambda ps: chat(
            *({"tool_calls": [{"index": 0, "function": {"name": p}}]} for p in ps[1:]),
            first={
                "role": "assistant",
                "content": None,
                "tool_calls": [tool_call("{}", name=ps[0])],
            },
            finish="tool_calls",
        ),
        lambda d: [concat(d, *D, "tool_calls", 0, "function", "name")],
        secret=STRUCTURAL_SPLIT,
        redacted=None,
    ),
    Case(
        "role_split",
        "chat",
        lambda ps: chat(
            *({"role": p, "content": "."} for p in ps[1:]), first={"role": ps[0], "content": ""}
        ),
        lambda d: [concat(d, *D, "role")],
        secret=STRUCTURAL_SPLIT,
        redacted=None,
    ),
    Case(
        "reasoning_details_structural_split",
        "chat",
        lambda ps: chat(
            *(
                {"reasoning_details": [{"type": "reasoning.encrypted", "data": p, "index": 0}]}
                for p in ps
            )
        ),
        lambda d: [concat(d, *D, "reasoning_details", 0, "data")],
        secret=STRUCTURAL_SPLIT,
        redacted=None,
    ),
    Case(
        "chunk_unknown_member",
        "chat",
        lambda ps: chat({"content": "See [1]."}, citations=[_text(ps)]),
        lambda d: [last(d, "citations", 0)],
    ),
    Case(
        "choice_unknown_member",
        "chat",
        lambda ps: sse(
            chunk(entry({"role": "assistant", "content": ""})),
            chunk(entry({"content": "Hi."}, content_filter_results=filter_results(_text(ps)))),
            chunk(entry({}, "stop", content_filter_results=filter_results(_text(ps)))),
            done=True,
        ),
        lambda d: [
            last(
                d, "choices", 0, "content_filter_results", "protected_material_text", "explanation"
            )
        ],
    ),
    Case(
        "member_names",
        "chat",
        lambda ps: sse(
            chunk(entry({"role": "assistant", "content": ""}) | {SECRET: True}, **{SECRET: 1}),
            *(chunk(entry({"provider_metadata": {SECRET: 1, "note": p}})) for p in ps),
            chunk(entry({}, "stop")),
            done=True,
        ),
        lambda d: [concat(d, *D, "provider_metadata", "note")],
    ),
    Case(
        "duplicate_keys",
        "chat",
        lambda ps: chat(dup_choices(SECRET), *(dup_delta(SECRET, p) for p in ps)),
        lambda d: [concat(d, *D, "content")],
    ),
    Case(
        "logprob_token_not_bytes",
        "chat",
        lambda ps: chat(
            *(
                chunk(entry({"content": p}, logprobs={"content": [logprob(SECRET, p, top=SECRET)]}))
                for p in ps
            )
        ),
        lambda d: [concat(d, *D, "content"), tokens(d, "choices", 0, "logprobs", "content")],
    ),
]

CHAT_BODY = [
    Case(
        "message_reasoning_details",
        "chat",
        lambda ps: completion(
            {
                "content": "Hi.",
                "reasoning_details": [{"type": "reasoning.text", "text": _text(ps), "index": 0}],
            }
        ),
        lambda d: [last(d, *M, "reasoning_details", 0, "text")],
        stream=False,
    ),
    Case(
        "message_thinking_blocks",
        "chat",
        lambda ps: completion(
            {
                "content": "Hi.",
                "thinking_blocks": [{"type": "thinking", "thinking": _text(ps), "signature": "c2"}],
            }
        ),
        lambda d: [last(d, *M, "thinking_blocks", 0, "thinking")],
        stream=False,
    ),
    Case(
        "message_content_parts",
        "chat",
        lambda ps: completion({"content": [{"type": "text", "text": _text(ps)}]}),
        lambda d: [last(d, *M, "content", 0, "text")],
        stream=False,
    ),
    Case(
        "message_annotation_title",
        "chat",
        lambda ps: completion(
            {
                "content": "Hi.",
                "annotations": [
                    {
                        "type": "url_citation",
                        "url_citation": {
                            "url": "https://example.test/a",
                            "title": _text(ps),
                            "start_index": 0,
                            "end_index": 2,
                        },
                    }
                ],
            }
        ),
        lambda d: [last(d, *M, "annotations", 0, "url_citation", "title")],
        stream=False,
        redacted=None,  # an annotation whose title a rule fires on is dropped
    ),
    Case(
        "message_tool_arguments_object",
        "chat",
        lambda ps: completion(
            {"content": None, "tool_calls": [tool_call({"q": _text(ps)})]},
            finish_reason="tool_calls",
        ),
        lambda d: [last(d, *M, "tool_calls", 0, "function", "arguments", "q")],
        stream=False,
    ),
    Case(
        "message_member_names",
        "chat",
        lambda ps: completion(
            {"content": "Hi.", "provider_metadata": {SECRET: 1, "note": _text(ps)}},
            **{SECRET: 1, f"body_{SECRET}": 1},
        ),
        lambda d: [last(d, *M, "provider_metadata", "note")],
        stream=False,
    ),
    Case(
        "message_choice_and_body_members",
        "chat",
        lambda ps: completion(
            {"content": "Hi."},
            content_filter_results=filter_results(_text(ps)),
            body_citations=[_text(ps)],
        ),
        lambda d: [
            last(
                d, "choices", 0, "content_filter_results", "protected_material_text", "explanation"
            ),
            last(d, "citations", 0),
        ],
        stream=False,
    ),
    Case(
        "message_logprob_token_not_bytes",
        "chat",
        lambda ps: completion(
            {"content": _text(ps)},
            logprobs={"content": [logprob(SECRET, p, top=SECRET) for p in ps]},
        ),
        lambda d: [last(d, *M, "content"), tokens(d, "choices", 0, "logprobs", "content")],
        stream=False,
    ),
]


def _shell_stream(ps: Pieces) -> Script:
    text = _text(ps)
    at0 = {"output_index": 0, "command_index": 0}
    return one_item(
        shell_call(status="in_progress"),
        shell_call(text),
        ("response.shell_call_command.added", {**at0, "command": ""}),
        *(("response.shell_call_command.delta", {**at0, "delta": p}) for p in ps),
        ("response.shell_call_command.done", {**at0, "command": text}),
    )


def _shell_output_stream(ps: Pieces) -> Script:
    text = _text(ps)
    at0 = {"output_index": 0, "command_index": 0, "item_id": "sho_h1"}
    return one_item(
        shell_output(None, "in_progress"),
        shell_output(text),
        *(
            ("response.shell_call_output_content.delta", {**at0, "delta": {"stdout": p}})
            for p in ps
        ),
        (
            "response.shell_call_output_content.done",
            {**at0, "output": shell_output(text)["output"]},
        ),
    )


def _mcp_stream(ps: Pieces) -> Script:
    text = _text(ps)
    at0 = {"output_index": 0, "item_id": "mcp_h1"}
    return one_item(
        mcp_call("", None, "in_progress"),
        mcp_call(q(text), text),
        *(("response.mcp_call_arguments.delta", {**at0, "delta": p}) for p in json_pieces(ps)),
        ("response.mcp_call_arguments.done", {**at0, "arguments": q(text)}),
    )


def _no_index_stream(ps: Pieces) -> Script:
    """A message whose events name no integer ``output_index``: a string, or none."""
    text = _text(ps)
    part = {"content_index": 0, "item_id": "msg_h1"}
    return responses(
        ("response.output_item.added", {"output_index": "0", "item": message("", "in_progress")}),
        (
            "response.content_part.added",
            {**part, "output_index": "0", "part": {"type": "output_text", "text": ""}},
        ),
        *(("response.output_text.delta", {**part, "delta": p}) for p in ps),
        ("response.output_text.done", {**part, "text": text}),
        ("response.output_item.done", {"item": message(text)}),
        output=[message(text)],
    )


def _unknown_events(ps: Pieces) -> Script:
    text = _text(ps)
    return responses(
        *(("response.hostile_text.delta", {"output_index": 0, "delta": p}) for p in ps),
        ("response.hostile_text.done", {"output_index": 0, "text": text}),
        ("response.hostile.note", {"output_index": 0, "note": {"body": text}}),
        output=[],
    )


def _logprob_stream(ps: Pieces) -> Script:
    text = _text(ps)
    part = {"output_index": 0, "content_index": 0, "item_id": "msg_h1"}
    return one_item(
        message("", "in_progress"),
        message(text),
        (
            "response.content_part.added",
            {**part, "part": {"type": "output_text", "text": "", "annotations": []}},
        ),
        *(
            (
                "response.output_text.delta",
                {**part, "delta": p, "logprobs": [logprob(SECRET, p, top=SECRET)]},
            )
            for p in ps
        ),
        ("response.output_text.done", {**part, "text": text, "logprobs": []}),
        (
            "response.content_part.done",
            {**part, "part": {"type": "output_text", "text": text, "annotations": []}},
        ),
    )


ITEM_DONE = "response.output_item.done"
COMPLETED = "response.completed"
OUT0 = ("response", "output", 0)

RESPONSES_STREAM = [
    Case(
        "shell_call",
        "responses",
        _shell_stream,
        lambda d: [
            concat(d, "delta", kind="response.shell_call_command.delta"),
            last(d, "command", kind="response.shell_call_command.done"),
            last(d, "item", "action", "commands", 0, kind=ITEM_DONE),
            last(d, *OUT0, "action", "commands", 0, kind=COMPLETED),
        ],
    ),
    Case(
        "shell_call_output_content",
        "responses",
        _shell_output_stream,
        lambda d: [
            concat(d, "delta", "stdout", kind="response.shell_call_output_content.delta"),
            last(d, "output", 0, "stdout", kind="response.shell_call_output_content.done"),
            last(d, "item", "output", 0, "stdout", kind=ITEM_DONE),
            last(d, *OUT0, "output", 0, "stdout", kind=COMPLETED),
        ],
    ),
    Case(
        "apply_patch_call",
        "responses",
        lambda ps: one_item(apply_patch_call(ps[0], "in_progress"), apply_patch_call(_text(ps))),
        lambda d: [
            last(d, "item", "operation", "diff", kind=ITEM_DONE),
            last(d, *OUT0, "operation", "diff", kind=COMPLETED),
        ],
    ),
    Case(
        "computer_call",
        "responses",
        lambda ps: one_item(computer_call(ps[0], "in_progress"), computer_call(_text(ps))),
        lambda d: [
            last(d, "item", "action", "text", kind=ITEM_DONE),
            last(d, *OUT0, "action", "text", kind=COMPLETED),
        ],
    ),
    Case(
        "mcp_call",
        "responses",
        _mcp_stream,
        lambda d: [
            q_of(concat(d, "delta", kind="response.mcp_call_arguments.delta")),
            q_of(last(d, "arguments", kind="response.mcp_call_arguments.done")),
            q_of(last(d, "item", "arguments", kind=ITEM_DONE)),
            last(d, "item", "output", kind=ITEM_DONE),
            q_of(last(d, *OUT0, "arguments", kind=COMPLETED)),
            last(d, *OUT0, "output", kind=COMPLETED),
        ],
    ),
    Case(
        "mcp_approval_request",
        "responses",
        lambda ps: one_item(mcp_approval_request(q(ps[0])), mcp_approval_request(q(_text(ps)))),
        lambda d: [
            q_of(last(d, "item", "arguments", kind=ITEM_DONE)),
            q_of(last(d, *OUT0, "arguments", kind=COMPLETED)),
        ],
    ),
    Case(
        "no_integer_output_index",
        "responses",
        _no_index_stream,
        lambda d: [
            concat(d, "delta", kind="response.output_text.delta"),
            last(d, "text", kind="response.output_text.done"),
            last(d, "item", "content", 0, "text", kind=ITEM_DONE),
            last(d, *OUT0, "content", 0, "text", kind=COMPLETED),
        ],
    ),
    Case(
        "unknown_event_types",
        "responses",
        _unknown_events,
        lambda d: [
            concat(d, "delta", kind="response.hostile_text.delta"),
            last(d, "text", kind="response.hostile_text.done"),
            last(d, "note", "body", kind="response.hostile.note"),
        ],
    ),
    Case(
        "logprob_token_not_bytes",
        "responses",
        _logprob_stream,
        lambda d: [
            concat(d, "delta", kind="response.output_text.delta"),
            last(d, "text", kind="response.output_text.done"),
            last(d, "part", "text", kind="response.content_part.done"),
        ],
    ),
]


def _item_body(
    kind: str, make: Callable[[str], dict[str, Any]], read: Callable[[Any], Any]
) -> Case:
    """A non-streamed response whose only item carries the text where ``read`` finds it."""
    return Case(
        f"{kind}_body",
        "responses",
        lambda ps: response_body(make(_text(ps))),
        lambda d: [read(at(d[0], ("output", 0))) if d else None],
        stream=False,
    )


RESPONSES_BODY = [
    _item_body("shell_call", shell_call, lambda i: at(i, ("action", "commands", 0))),
    _item_body("shell_call_output", shell_output, lambda i: at(i, ("output", 0, "stdout"))),
    _item_body("apply_patch_call", apply_patch_call, lambda i: at(i, ("operation", "diff"))),
    _item_body("computer_call", computer_call, lambda i: at(i, ("action", "text"))),
    _item_body("mcp_call_output", lambda t: mcp_call("{}", t), lambda i: at(i, ("output",))),
    _item_body(
        "mcp_call_arguments", lambda t: mcp_call(q(t), None), lambda i: q_of(at(i, ("arguments",)))
    ),
    _item_body(
        "mcp_approval_request",
        lambda t: mcp_approval_request(q(t)),
        lambda i: q_of(at(i, ("arguments",))),
    ),
    _item_body(
        "unknown_item",
        lambda t: {"type": "hostile_item", "id": "hx_1", "body": t},
        lambda i: at(i, ("body",)),
    ),
]

COMPLETIONS = [
    Case(
        "choice_unknown_member",
        "completions",
        lambda ps: sse(
            *(legacy_chunk(p, safety={"note": _text(ps)}) for p in ps),
            legacy_chunk("", "stop", safety={"note": _text(ps)}),
            done=True,
        ),
        lambda d: [concat(d, "choices", 0, "text"), last(d, "choices", 0, "safety", "note")],
    ),
    Case(
        "choice_unknown_member_split",
        "completions",
        lambda ps: sse(
            *(legacy_chunk(".", reasoning=p) for p in ps), legacy_chunk("", "stop"), done=True
        ),
        lambda d: [concat(d, "choices", 0, "reasoning")],
    ),
    Case(
        "logprobs_extra_member",
        "completions",
        lambda ps: sse(
            *(
                legacy_chunk(
                    p, logprobs=legacy_logprobs(p, o, extra={"raw": [SECRET], "n": SECRET})
                )
                for p, o in zip(ps, offsets(ps), strict=True)
            ),
            legacy_chunk("", "stop"),
            done=True,
        ),
        lambda d: [concat(d, "choices", 0, "text"), tokens_legacy(d)],
    ),
    Case(
        "body_unknown_member_and_logprobs",
        "completions",
        lambda ps: body(
            {
                "id": "cmpl-h1",
                "object": "text_completion",
                "created": 1,
                "model": MODEL,
                "choices": [
                    {
                        "index": 0,
                        "text": _text(ps),
                        "finish_reason": "stop",
                        "safety": {"note": _text(ps)},
                        "logprobs": {
                            "tokens": list(ps),
                            "token_logprobs": [-0.5] * len(ps),
                            "top_logprobs": [{p: -0.5, SECRET: -3.0} for p in ps],
                            "text_offset": offsets(ps),
                            "raw": [SECRET],
                        },
                    }
                ],
            }
        ),
        lambda d: [
            last(d, "choices", 0, "text"),
            last(d, "choices", 0, "safety", "note"),
            tokens_legacy(d),
        ],
        stream=False,
    ),
]


def tokens_legacy(docs: list[Any]) -> str:
    return "".join(
        t
        for doc in docs
        if isinstance(ts := at(doc, ("choices", 0, "logprobs", "tokens")), list)
        for t in ts
        if isinstance(t, str)
    )


CASES = CHAT_STREAM + CHAT_BODY + RESPONSES_STREAM + RESPONSES_BODY + COMPLETIONS


# -- the client side -----------------------------------------------------------------------

PATHS: dict[Api, str] = {
    "chat": "/chat/completions",
    "responses": "/responses",
    "completions": "/completions",
}
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


def request_body(api: Api, stream: bool) -> dict[str, Any]:
    asked: dict[str, dict[str, Any]] = {
        "chat": {"messages": MESSAGES},
        "responses": {"input": "hi"},
    }
    return {"model": MODEL, "stream": stream, **asked.get(api, {"prompt": "hi"})}


def sdk_docs(client: openai.OpenAI, api: Api, stream: bool, headers: dict[str, str]) -> list[Any]:
    """What the SDK's plain ``create`` yields, every object as a dict (extras kept)."""
    if api == "chat":
        if stream:
            chunks = client.chat.completions.create(
                model=MODEL, messages=MESSAGES, stream=True, extra_headers=headers
            )
            return [c.to_dict(warnings=False) for c in chunks]
        made = client.chat.completions.create(model=MODEL, messages=MESSAGES, extra_headers=headers)
        return [made.to_dict(warnings=False)]
    if api == "responses":
        if stream:
            events = client.responses.create(
                model=MODEL, input="hi", stream=True, extra_headers=headers
            )
            return [e.to_dict(warnings=False) for e in events]
        return [
            client.responses.create(model=MODEL, input="hi", extra_headers=headers).to_dict(
                warnings=False
            )
        ]
    if stream:
        pieces = client.completions.create(
            model=MODEL, prompt="hi", stream=True, extra_headers=headers
        )
        return [c.to_dict(warnings=False) for c in pieces]
    return [
        client.completions.create(model=MODEL, prompt="hi", extra_headers=headers).to_dict(
            warnings=False
        )
    ]


def helper_run(
    client: openai.OpenAI, api: Api, headers: dict[str, str]
) -> tuple[str | None, list[Any]]:
    """The SDK's stream helper (``.stream(...)``): its events and final object as dicts,
    and the name of what it raised, if anything."""
    seen: list[Any] = []
    try:
        if api == "chat":
            with client.chat.completions.stream(
                model=MODEL, messages=MESSAGES, extra_headers=headers
            ) as chat_stream:
                seen.extend(e.to_dict(warnings=False) for e in chat_stream)
                seen.append(chat_stream.get_final_completion().to_dict(warnings=False))
        else:
            with client.responses.stream(model=MODEL, input="hi", extra_headers=headers) as stream:
                seen.extend(e.to_dict(warnings=False) for e in stream)
                seen.append(stream.get_final_response().to_dict(warnings=False))
    except Exception as exc:  # the outcome is what is compared
        return type(exc).__name__, seen
    return None, seen


def params(cases: list[Case], known: Literal["leak", "breaks"]) -> list[Any]:
    out = []
    for case in cases:
        reason = getattr(case, known)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        out.append(pytest.param(case, id=f"{case.api}-{case.id}", marks=marks))
    return out


@pytest.mark.parametrize("case", params(CASES, "leak"))
def test_the_key_never_reaches_the_client(hostile: HostileStack, case: Case) -> None:
    headers = hostile.upstream.script(case.build(case.secret))
    raw = hostile.raw(PATHS[case.api], request_body(case.api, case.stream), headers)
    assert raw.status_code == 200, raw.text
    docs = payloads(raw.content)
    assert docs
    assert leaks(docs, raw.content) == [], raw.text
    parsed = sdk_docs(hostile.client(), case.api, case.stream, headers)
    assert leaks(parsed) == []
    if case.stream and case.api != "completions":
        _, helped = helper_run(hostile.client(), case.api, headers)
        assert leaks(helped) == []
    if case.redacted is not None:
        assert case.fields(docs) == [case.redacted] * len(case.fields(docs)), raw.text
        assert case.fields(parsed) == case.fields(docs)


@pytest.mark.parametrize("case", params(CASES, "breaks"))
def test_benign_text_arrives_unchanged(hostile: HostileStack, case: Case) -> None:
    if case.id == "role_split":
        pytest.skip("a role that is no known role is dropped, whatever it says (by design)")
    headers = hostile.upstream.script(case.build(BENIGN))
    raw = hostile.raw(PATHS[case.api], request_body(case.api, case.stream), headers)
    assert raw.status_code == 200, raw.text
    docs = payloads(raw.content)
    text = _text(BENIGN)
    assert case.fields(docs) == [text] * len(case.fields(docs)), raw.text
    parsed = sdk_docs(hostile.client(), case.api, case.stream, headers)
    assert case.fields(parsed) == case.fields(docs)
    if case.stream and case.api != "completions":
        # The SDK helper copes with the gateway's answer wherever it copes with upstream's.
        direct, _ = helper_run(hostile.direct_client(), case.api, headers)
        via, _ = helper_run(hostile.client(), case.api, headers)
        assert via is None or via == direct


# -- ends, content types and statuses ---------------------------------------------------


def _error_beside_choices(message: str) -> Script:
    """OpenRouter's mid-stream error: ``error`` beside a choice that ends ``error``."""
    error = {"code": "server_error", "message": message}
    return sse(
        chunk(entry({"role": "assistant", "content": HEAD})),
        chunk(entry({"content": TAIL}, "error"), error=error, provider="hostile"),
    )


def _read_content(stream: openai.Stream[Any], into: list[str]) -> None:
    for piece in stream:
        into.extend(c.delta.content or "" for c in piece.choices)


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        (f"Provider disconnected: {SECRET}", "Provider disconnected: [REDACTED]"),
        ("Provider disconnected — try again", "Provider disconnected — try again"),
    ],
    ids=["key", "benign"],
)
def test_error_beside_choices_raises_with_a_moderated_message(
    hostile: HostileStack, message: str, shown: str
) -> None:
    headers = hostile.upstream.script(_error_beside_choices(message))
    raw = hostile.raw(PATHS["chat"], request_body("chat", True), headers)
    docs = payloads(raw.content)
    assert leaks(docs, raw.content) == []
    assert docs[-1]["error"]["message"] == shown
    assert b"[DONE]" not in raw.content
    # What was held when the error came was never checked whole: it is dropped.
    assert concat(docs, *D, "content") == "Your key is "

    text: list[str] = []
    stream = hostile.client().chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, extra_headers=headers
    )
    with pytest.raises(openai.APIError) as raised:
        _read_content(stream, text)
    assert raised.value.message == shown
    assert "".join(text) == "Your key is "
    with (
        pytest.raises(openai.APIError),
        hostile.client().chat.completions.stream(
            model=MODEL, messages=MESSAGES, extra_headers=headers
        ) as helper,
    ):
        helper.get_final_completion()


CHAT_JSON = {
    "id": "chatcmpl-h1",
    "object": "chat.completion",
    "created": 1,
    "model": MODEL,
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": f"Your key is {SECRET}."},
            "delta": {"content": SECRET},
            "finish_reason": "stop",
        }
    ],
}


@pytest.mark.parametrize(
    ("api", "script"),
    [
        ("chat", body(CHAT_JSON)),
        ("chat", body(chunk(entry({"content": SECRET})))),  # a chunk, as a JSON body
        ("responses", response_body(message(f"Your key is {SECRET}."))),
        ("chat", lines(chunk(entry({"content": HEAD})), chunk(entry({"content": TAIL})))),
        ("responses", lines(json.dumps({"type": "response.output_text.delta", "delta": SECRET}))),
        ("chat", lines(chunk(entry({"content": SECRET})), content_type="application/json")),
        ("chat", lines(chunk(entry({"content": SECRET})), content_type="text/plain")),
    ],
    ids=[
        "chat-json",
        "chat-chunk-as-json",
        "responses-json",
        "chat-ndjson",
        "responses-ndjson",
        "chat-json-lines-as-json",
        "chat-text-plain",
    ],
)
def test_stream_answered_without_an_event_stream(
    hostile: HostileStack, api: Api, script: Script
) -> None:
    """A stream request answered with something else: the gateway moderates a JSON
    body or refuses (502); it never relays deltas it did not read as events."""
    headers = hostile.upstream.script(script)
    raw = hostile.raw(PATHS[api], request_body(api, True), headers)
    assert leaks(payloads(raw.content), raw.content) == [], raw.text
    assert raw.status_code in (200, 502)
    assert raw.headers["content-type"].startswith("application/json")
    try:
        parsed = sdk_docs(hostile.client(), api, True, headers)
    except openai.InternalServerError as exc:
        assert raw.status_code == 502
        parsed = [exc.body]
    assert leaks(parsed) == []


def test_event_stream_answer_to_a_plain_request_is_refused(hostile: HostileStack) -> None:
    headers = hostile.upstream.script(chat({"content": HEAD}, {"content": TAIL}))
    raw = hostile.raw(PATHS["chat"], request_body("chat", False), headers)
    assert raw.status_code == 502
    assert leaks(payloads(raw.content), raw.content) == []
    with pytest.raises(openai.InternalServerError):
        sdk_docs(hostile.client(), "chat", False, headers)


@pytest.mark.parametrize(
    "script",
    [
        body(
            {"error": {"message": f"Invalid key {SECRET}", "type": "invalid_request_error"}},
            status=400,
        ),
        body(f"data: {chunk(entry({'content': SECRET}))}\n\n", "text/event-stream", status=500),
    ],
    ids=["json-400", "event-stream-500"],
)
def test_upstream_error_bodies_are_moderated(hostile: HostileStack, script: Script) -> None:
    headers = hostile.upstream.script(script)
    raw = hostile.raw(PATHS["chat"], request_body("chat", True), headers)
    assert raw.status_code == script.status
    assert leaks(payloads(raw.content), raw.content) == [], raw.text
    assert raw.json()["error"]["message"]  # still an OpenAI error the SDKs raise


# -- Responses: what the table cannot say -------------------------------------------------


def test_shell_call_second_command_streams(hostile: HostileStack) -> None:
    commands = [("echo ", "hi"), ("ls ", "-la")]
    events: list[tuple[str, dict[str, Any]]] = []
    for index, pieces in enumerate(commands):
        at_ = {"output_index": 0, "command_index": index}
        events.append(("response.shell_call_command.added", {**at_, "command": ""}))
        events.extend(("response.shell_call_command.delta", {**at_, "delta": p}) for p in pieces)
        events.append(("response.shell_call_command.done", {**at_, "command": _text(pieces)}))
    done = shell_call("echo hi", "ls -la")
    script = one_item(shell_call(status="in_progress"), done, *events)
    headers = hostile.upstream.script(script)
    docs = payloads(
        hostile.raw(PATHS["responses"], request_body("responses", True), headers).content
    )
    deltas = [d for d in docs if d["type"] == "response.shell_call_command.delta"]
    streamed = ["".join(d["delta"] for d in deltas if d["command_index"] == i) for i in (0, 1)]
    assert streamed == ["echo hi", "ls -la"]


def test_shell_call_command_added_starts_the_command(hostile: HostileStack) -> None:
    at0 = {"output_index": 0, "command_index": 0}
    script = one_item(
        shell_call(status="in_progress"),
        shell_call("echo [gone]"),
        ("response.shell_call_command.added", {**at0, "command": HEAD}),
        ("response.shell_call_command.delta", {**at0, "delta": TAIL}),
        ("response.shell_call_command.done", {**at0, "command": "echo [gone]"}),
    )
    headers = hostile.upstream.script(script)
    raw = hostile.raw(PATHS["responses"], request_body("responses", True), headers)
    docs = payloads(raw.content)
    command = last(docs, "command", kind="response.shell_call_command.added") or ""
    command += concat(docs, "delta", kind="response.shell_call_command.delta")
    assert leaks([command], raw.content) == [], raw.text


# -- stored routes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "script"),
    [
        (
            "/chat/completions/chatcmpl-h1",
            completion(
                {
                    "content": f"Your key is {SECRET}.",
                    "reasoning_details": [{"type": "reasoning.text", "text": SECRET, "index": 0}],
                    "provider_metadata": {SECRET: 1, "note": SECRET},
                },
                body_citations=[SECRET],
            ),
        ),
        ("/responses/resp_h1", response_body(shell_call(SECRET), mcp_call(q(SECRET), SECRET))),
        ("/responses/resp_h1?stream=true", _shell_stream((HEAD, TAIL))),
    ],
    ids=["chat-completion", "response", "response-stream"],
)
def test_stored_answers_are_moderated(hostile: HostileStack, path: str, script: Script) -> None:
    headers = hostile.upstream.script(script)
    raw = hostile.raw(path, {}, headers, method="GET")
    assert raw.status_code == 200, raw.text
    assert hostile.upstream.last().method == "GET"
    assert leaks(payloads(raw.content), raw.content) == [], raw.text


@pytest.mark.parametrize("case", [pytest.param(c, id=f"{c.api}-{c.id}") for c in CASES])
def test_upstream_does_send_the_key(hostile: HostileStack, case: Case) -> None:
    """Without the gateway the same script shows the key: the checks above are not vacuous."""
    headers = hostile.upstream.script(case.build(case.secret))
    raw = hostile.http.post(
        hostile.upstream_url + PATHS[case.api],
        json=request_body(case.api, case.stream),
        headers=headers,
    )
    assert leaks(payloads(raw.content), raw.content)
    assert hostile.upstream.last().json() == request_body(case.api, case.stream)
