"""Default deny on routes: every SDK route classified, and no path or method variant forwarded.

Three layers:

1. **The table is complete.** Every HTTP route the pinned ``openai`` package can call is read
   out of its source (``openai/resources/**``, sync classes: ``self._get/_post/_delete/
   _get_api_list`` calls and the WebSocket URLs of the connection managers) and must be in
   exactly one class of ``gateway.proxy.routes``, so a new SDK version fails here until its
   new routes are classified.
2. **Each class behaves as classed**, in process against the demo upstream: refused routes
   are refused and never reach it, text-free ones reach it unchanged, stored ones come back
   with a planted secret redacted.
3. **No variant slips through**: non-canonical paths, other methods and method overrides
   are refused before anything is forwarded, sent as raw bytes so no client library
   normalises them first.
"""

from __future__ import annotations

import ast
import asyncio
import json
import re
from pathlib import Path
from typing import Any, TypeAlias

import openai
import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from multidict import CIMultiDict, CIMultiDictProxy
from pytest_aiohttp import AiohttpClient, AiohttpServer
from yarl import URL

from gateway.adapters import ADAPTERS
from gateway.demo import DEMO_STATE, RecordedRequest, create_demo_app
from gateway.proxy.app import create_app
from gateway.proxy.headers import upstream_request_headers
from gateway.proxy.paths import path_problem
from gateway.proxy.routes import (
    MODERATED,
    PASSTHROUGH,
    REFUSED,
    ROUTES,
    STORED_MODERATED,
    TEXT_FREE,
    RouteClass,
)
from gateway.settings import Settings

Client: TypeAlias = TestClient[web.Request, web.Application]
Route: TypeAlias = tuple[str, str]

SECRET = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3i"
REDACTED = "[REDACTED:secret.openai-key]"
FRAGMENTS = ("Ab3dEf6h", "Op5qRs8t", "Ab7cDe0f")
CHAT_BODY = {"model": "demo-chat", "messages": [{"role": "user", "content": "hi"}]}

# -- 1. the table against the SDK --------------------------------------------------------

_RESOURCES = Path(openai.__file__).parent / "resources"
_VERBS = {"_get": "GET", "_post": "POST", "_delete": "DELETE", "_get_api_list": "GET"}
_VERBS |= {"_put": "PUT", "_patch": "PATCH"}


def _normal(path: str) -> str:
    """``/chat/completions/{completion_id}?beta=true`` -> ``/chat/completions/{param}``."""
    return re.sub(r"\{[^}]*\}", "{param}", path.split("?", 1)[0])


def _template(node: ast.expr | None) -> str | None:
    """The path of ``"/x"`` or ``path_template("/x/{id}", ...)``."""
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "path_template":
        node = node.args[0] if node.args else None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _http_routes(cls: ast.ClassDef, where: str) -> set[Route]:
    found: set[Route] = set()
    for node in ast.walk(cls):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "self"
            and node.func.attr in _VERBS
        ):
            continue
        method = _VERBS[node.func.attr]
        for keyword in node.keywords:
            if keyword.arg == "method" and isinstance(keyword.value, ast.Constant):
                method = str(keyword.value.value).upper()
        path = _template(node.args[0] if node.args else None)
        assert path is not None, f"{where}:{node.lineno}: a request path this test cannot read"
        found.add((method, _normal(path)))
    return found


def _websocket_routes(cls: ast.ClassDef) -> set[Route]:
    """The URL a connection manager builds: ``path.rstrip(b"/") + b"/realtime" + ...``."""
    found: set[Route] = set()
    for node in ast.walk(cls):
        if isinstance(node, ast.Assign) and any(
            getattr(target, "id", None) == "merge_raw_path" for target in node.targets
        ):
            for part in ast.walk(node.value):
                if isinstance(part, ast.Constant) and isinstance(part.value, bytes):
                    path = part.value.decode()
                elif isinstance(part, ast.Call):
                    path = _template(part) or ""
                else:
                    continue
                if path.startswith("/") and path != "/":
                    found.add(("GET", _normal(path)))
    return found


def sdk_routes() -> set[Route]:
    routes: set[Route] = set()
    for source in sorted(_RESOURCES.rglob("*.py")):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for cls in ast.walk(tree):
            if not isinstance(cls, ast.ClassDef) or cls.name.startswith("Async"):
                continue
            if any(getattr(base, "id", None) == "SyncAPIResource" for base in cls.bases):
                routes |= _http_routes(cls, str(source.relative_to(_RESOURCES)))
            routes |= _websocket_routes(cls)
    return routes


SDK_ROUTES = sdk_routes()
CLASSES: dict[str, set[Route]] = {
    "MODERATED": {(m, _normal(p)) for m, p in MODERATED},
    "STORED_MODERATED": {(m, _normal(p)) for m, p in STORED_MODERATED},
    "TEXT_FREE": {(m, _normal(p)) for m, p in TEXT_FREE},
    "REFUSED": {(m, _normal(p)) for m, p in REFUSED},
}
CLASSIFIED = set().union(*CLASSES.values())


def test_the_sdk_reading_finds_the_routes_it_must() -> None:
    """Guards the reader itself: an empty or partial reading would make the next test pass."""
    assert len(SDK_ROUTES) > 300
    for route in [
        ("POST", "/chat/completions"),
        ("POST", "/chat/completions/{param}"),  # update
        ("GET", "/conversations/{param}/items"),  # _get_api_list
        ("POST", "/vector_stores/{param}/search"),  # _get_api_list(method="post")
        ("GET", "/realtime"),  # WebSocket
        ("GET", "/responses"),  # the Responses WebSocket mode
        ("GET", "/live/sessions/{param}/attach"),  # WebSocket with a path parameter
    ]:
        assert route in SDK_ROUTES


def test_every_sdk_route_is_classified() -> None:
    missing = sorted(SDK_ROUTES - CLASSIFIED, key=lambda r: (r[1], r[0]))
    assert not missing, (
        f"openai {openai.__version__} has routes gateway/proxy/routes.py does not classify: "
        + ", ".join(f"{m} {p}" for m, p in missing)
    )


def test_the_table_has_no_route_the_sdk_lacks() -> None:
    stale = sorted(CLASSIFIED - SDK_ROUTES, key=lambda r: (r[1], r[0]))
    assert not stale, "routes the SDK no longer has: " + ", ".join(f"{m} {p}" for m, p in stale)


def test_each_route_is_in_exactly_one_class() -> None:
    keys = [(r.method, _normal(r.pattern)) for r in ROUTES]
    assert len(keys) == len(set(keys)), "a route is listed twice"
    assert sum(len(c) for c in CLASSES.values()) == len(CLASSIFIED)


def test_every_adapter_serves_a_moderated_route() -> None:
    for path in ADAPTERS:
        assert ("POST", path.removeprefix("/v1")) in MODERATED


def test_every_refusal_says_why() -> None:
    assert all(len(reason) > 20 for reason in REFUSED.values())


async def test_the_router_serves_each_route_with_the_handler_the_table_names() -> None:
    """The guard also checks this per request (and fails closed); here, for every route."""
    app = create_app(settings("http://127.0.0.1:9/v1"))
    for route in ROUTES:
        path = re.sub(r"\{[^}]*\}", "x1", route.path)
        match = await app.router.resolve(make_mocked_request(route.method, path, app=app))
        expected = (
            route.name
            if route.kind in (RouteClass.MODERATED, RouteClass.STORED_MODERATED)
            else PASSTHROUGH
        )
        assert match.route.name == expected, f"{route.method} {route.path}"


# -- 2. behaviour, per class --------------------------------------------------------------


def settings(upstream: str) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        upstream_url=upstream,
        policy_reload_seconds=0,
        keepalive_seconds=0,
    )


@pytest.fixture
async def demo(aiohttp_server: AiohttpServer) -> TestServer:
    return await aiohttp_server(create_demo_app(pace=0.0))


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, demo: TestServer) -> Client:
    return await aiohttp_client(create_app(settings(str(demo.make_url("/v1")))))


def upstream_saw(demo: TestServer) -> list[RecordedRequest]:
    return demo.app[DEMO_STATE].requests


def reply(text: str, chunking: str = "word", **more: str) -> dict[str, str]:
    return {"X-Demo-Reply": json.dumps(text), "X-Demo-Chunking": chunking, **more}


async def send(
    client: Client, method: str, target: str, body: Any = None, **headers: str
) -> ClientResponse:
    """``target`` (path and query) reaches the gateway byte for byte."""
    url = URL(str(client.make_url("/")).rstrip("/") + target, encoded=True)
    assert url.raw_path_qs == target, "premise: the client sends the path as written"
    data = None if body is None else json.dumps(body)
    if data is not None:
        headers.setdefault("Content-Type", "application/json")
    return await client.session.request(method, url, data=data, headers=headers)


async def error_of(response: ClientResponse, status: int, code: str) -> str:
    """The OpenAI-format error's message, checked for its status and code."""
    assert response.status == status, await response.text()
    body = await response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == code
    message: str = body["error"]["message"]
    return message


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/files/file-1/content"),
        ("GET", "/v1/containers/c1/files/f1/content"),
        ("GET", "/v1/vector_stores/vs1/files/f1/content"),
        ("GET", "/v1/evals/e1/runs/r1/output_items"),
        ("POST", "/v1/images/generations"),
        ("POST", "/v1/audio/transcriptions"),
        ("POST", "/v1/threads"),
        ("POST", "/v1/threads/t1/runs"),
        ("GET", "/v1/assistants"),
        ("GET", "/v1/agents/sessions/s1/items"),
        ("GET", "/v1/chatkit/threads/t1/items"),
        ("GET", "/v1/realtime"),
        ("POST", "/v1/realtime/client_secrets"),
        ("GET", "/v1/responses"),
        ("GET", "/v1/live/sessions/s1/content"),
    ],
)
async def test_a_refused_route_is_a_403_and_never_forwarded(
    client: Client, demo: TestServer, method: str, path: str
) -> None:
    response = await send(client, method, path, CHAT_BODY, **reply(f"k {SECRET}"))
    message = await error_of(response, 403, "route_not_moderated")
    assert "refused" in message and "model" in message
    assert upstream_saw(demo) == []


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/nowhere"), ("POST", "/v1/messages"), ("GET", "/v1/chat/completions~")],
)
async def test_an_unknown_route_is_a_404_and_never_forwarded(
    client: Client, demo: TestServer, method: str, path: str
) -> None:
    response = await send(client, method, path, CHAT_BODY, **reply(f"k {SECRET}"))
    await error_of(response, 404, "route_not_moderated")
    assert upstream_saw(demo) == []


@pytest.mark.parametrize(
    ("method", "target", "status"),
    [
        ("GET", "/v1/models", 200),
        ("GET", "/v1/models/ft:gpt-4o-mini:org::abc123", 404),
        ("HEAD", "/v1/models", 200),
        ("POST", "/v1/embeddings", 200),
        ("POST", "/v1/files?purpose=batch", 404),  # the demo has no files API: its 404 passes
        ("DELETE", "/v1/chat/completions/chatcmpl-1", 405),
        ("GET", "/v1/conversations/conv_1", 404),
        ("POST", "/v1/batches", 404),
        ("GET", "/v1/fine_tuning/jobs/ftjob-1/events", 404),
        ("OPTIONS", "/v1/chat/completions", 405),
    ],
)
async def test_a_text_free_route_is_forwarded_unchanged(
    client: Client, demo: TestServer, method: str, target: str, status: int
) -> None:
    body = {"model": "demo-embed", "input": "x"} if method == "POST" else None
    response = await send(client, method, target, body)
    assert response.status == status
    [seen] = upstream_saw(demo)
    assert (seen.method, seen.path) == (method, target.split("?")[0])
    assert seen.query_string == target.partition("?")[2]


@pytest.mark.parametrize(
    ("method", "target", "body"),
    [
        ("GET", "/v1/chat/completions", None),
        ("GET", "/v1/chat/completions/chatcmpl-1", None),
        ("POST", "/v1/chat/completions/chatcmpl-1", {"metadata": {"k": "v"}}),
        ("GET", "/v1/chat/completions/chatcmpl-1/messages", None),
        ("GET", "/v1/responses/resp_1", None),
        ("GET", "/v1/responses/resp_1?stream=true", None),
        ("POST", "/v1/responses/resp_1/cancel", None),
        ("GET", "/v1/responses/resp_1/input_items?limit=5", None),
        ("POST", "/v1/responses/compact", {"model": "demo-chat", "input": "hi"}),
        ("GET", "/v1/conversations/conv_1/items", None),
        ("POST", "/v1/conversations/conv_1/items", {"items": []}),
        ("GET", "/v1/conversations/conv_1/items/msg_1", None),
    ],
)
async def test_stored_output_comes_back_moderated(
    client: Client, demo: TestServer, method: str, target: str, body: Any
) -> None:
    headers = reply(f"the key {SECRET} ok", chunking="char")
    direct = await client.session.request(method, demo.make_url(target), json=body, headers=headers)
    assert SECRET in await direct.text(), "premise: upstream returns the secret"
    upstream_saw(demo).clear()
    response = await send(client, method, target, body, **headers)
    assert response.status == 200, await response.text()
    text = await response.text()
    assert REDACTED in text
    for fragment in FRAGMENTS:
        assert fragment not in text
    [seen] = upstream_saw(demo)
    assert (seen.method, seen.path) == (method, target.split("?")[0])
    assert seen.query_string == target.partition("?")[2]


async def test_stored_chat_messages_keep_their_ids_and_moderate_content_parts(
    client: Client,
) -> None:
    response = await send(
        client, "GET", "/v1/chat/completions/chatcmpl-7/messages", **reply(f"k {SECRET}")
    )
    [message] = (await response.json())["data"]
    assert message["id"] == "chatcmpl-7-0"
    assert message["content"] == f"k {REDACTED}"
    assert message["content_parts"] == [{"type": "text", "text": f"k {REDACTED}"}]


async def test_conversation_items_pass_the_input_rules_on_the_way_in(
    client: Client, demo: TestServer
) -> None:
    """Stored items become model input later: a secret in them never reaches upstream."""
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": ""}]}
    item["content"][0]["text"] = f"remember {SECRET}"
    for target in ("/v1/conversations", "/v1/conversations/conv_1/items"):
        response = await send(client, "POST", target, {"items": [item]}, **reply("ok"))
        assert response.status == 200, await response.text()
        sent = upstream_saw(demo)[-1].body
        assert sent["items"][0]["content"][0]["text"] == f"remember {REDACTED}"


# -- starting_after on a stored Responses stream ---------------------------------------------


def events_of(raw: str) -> list[dict[str, Any]]:
    frames = [f for f in raw.replace("\r\n", "\n").split("\n\n") if f.strip()]
    data = [line[6:] for f in frames for line in f.split("\n") if line.startswith("data: ")]
    return [json.loads(d) for d in data if d != "[DONE]"]


def shape(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What a resumed stream must repeat (ids and timestamps differ per demo request)."""
    return [(e["type"], e["sequence_number"], e.get("delta"), e.get("text")) for e in events]


async def test_a_resumed_stream_is_moderated_whole_and_cut_after_the_given_event(
    client: Client, demo: TestServer
) -> None:
    headers = reply(f"the key {SECRET} and more words after it", chunking="char")
    whole = events_of(
        await (await send(client, "GET", "/v1/responses/r1?stream=true", **headers)).text()
    )
    numbers = [e["sequence_number"] for e in whole]
    assert numbers == list(range(len(whole))), "premise: renumbered gaplessly from 0"
    redacted_at = next(e for e in whole if REDACTED in str(e.get("delta", "")))["sequence_number"]
    # Resume right inside where the key was: upstream's own numbering would start mid-key.
    for after in (redacted_at - 1, redacted_at, numbers[-2]):
        target = f"/v1/responses/r1?stream=true&starting_after={after}"
        response = await send(client, "GET", target, **headers)
        raw = await response.text()
        assert response.status == 200
        for fragment in FRAGMENTS:
            assert fragment not in raw
        assert shape(events_of(raw)) == shape(whole[after + 1 :])
        seen = upstream_saw(demo)[-1]
        assert seen.query_string == "stream=true", "starting_after never goes upstream"


async def test_a_resumed_stream_still_reports_an_upstream_failure(client: Client) -> None:
    headers = reply("some text", **{"X-Demo-Fault": "truncate"})
    target = "/v1/responses/r1?stream=true&starting_after=100000"
    events = events_of(await (await send(client, "GET", target, **headers)).text())
    assert [e["type"] for e in events] == ["error"]


@pytest.mark.parametrize("value", ["x", "1.5", "--1", "", "1&starting_after=2"])
async def test_a_bad_starting_after_is_a_400(client: Client, demo: TestServer, value: str) -> None:
    target = f"/v1/responses/r1?stream=true&starting_after={value}"
    response = await send(client, "GET", target, **reply("x"))
    assert response.status == 400
    assert upstream_saw(demo) == []


# -- 3. methods and method overrides ----------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses", "/v1/completions"])
async def test_another_method_on_a_moderated_path_is_a_405(
    client: Client, demo: TestServer, method: str, path: str
) -> None:
    response = await send(client, method, path, CHAT_BODY, **reply(f"k {SECRET}"))
    await error_of(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]
    assert upstream_saw(demo) == []


@pytest.mark.parametrize(
    "header", ["X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "x-http-method"]
)
@pytest.mark.parametrize(
    ("method", "path", "override"),
    [("POST", "/v1/models", "GET"), ("GET", "/v1/models", "POST"), ("POST", "/v1/files", "PUT")],
)
async def test_a_method_override_is_refused(
    client: Client, demo: TestServer, header: str, method: str, path: str, override: str
) -> None:
    body = CHAT_BODY if method == "POST" else None
    response = await send(client, method, path, body, **{header: override})
    await error_of(response, 400, "method_override_not_allowed")
    assert upstream_saw(demo) == []


def test_method_overrides_never_go_upstream() -> None:
    incoming = CIMultiDict(
        {"X-HTTP-Method-Override": "GET", "X-HTTP-Method": "GET", "X-Method-Override": "GET"}
    )
    assert dict(upstream_request_headers(CIMultiDictProxy(incoming), None)) == {
        "Accept-Encoding": "identity"
    }


# -- 3. path variants ---------------------------------------------------------------------------

VARIANTS = [
    "/v1/Chat/Completions",
    "/v1/CHAT/completions",
    "/V1/chat/completions",
    "/v1/chat/completions;x=1",
    "/v1/chat/completions%3Bx=1",
    "/v1/responses;x",
    "/v1/chat/completions.",
    "/v1/chat/completions..",
    "/v1/chat/completions%20",
    "/v1/chat/completions%00",
    "/v1/chat/completions%2F",
    "/v1/chat%2Fcompletions",
    "/v1/chat/compl%C3%A9tions",
    "/v1/x/%252e%252e/chat/completions",
    "/v1/x/%2e%2e/chat/completions",
    "/v1/x/../chat/completions",
    "/v1/chat/./completions",
    "/v1/chat/completions/",
    "/v1//chat/completions",
    "/v1/chat/completions\\",
    "/v1/chat/completions%5C",
    "/v1/models%2F..%2Fchat%2Fcompletions",
    "/%76%31/chat/completions",
    "/v1/responses/Compact",
    "/v1/Responses/resp_1/input_items",
]


@pytest.mark.parametrize("target", VARIANTS)
async def test_a_path_variant_is_a_400_and_never_forwarded(
    client: Client, demo: TestServer, target: str
) -> None:
    response = await send(client, "POST", target, CHAT_BODY, **reply(f"k {SECRET}"))
    await error_of(response, 400, "invalid_path")
    assert SECRET not in await response.text()
    assert upstream_saw(demo) == []


@pytest.mark.parametrize(
    "target",
    [b"/v1/chat/compl\xc3\xa9tions", b"/v1/chat/completions\x00", b"/v1/chat/completions\t"],
)
async def test_a_raw_byte_variant_is_refused_and_never_forwarded(
    client: Client, demo: TestServer, target: bytes
) -> None:
    """Bytes no client library would send: the HTTP parser or the path rule refuses them."""
    body = json.dumps(CHAT_BODY).encode()
    head = (
        b"POST " + target + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"X-Demo-Reply: " + json.dumps(f"k {SECRET}").encode() + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(head + body)
    answer = await reader.read()
    writer.close()
    status = int(answer.split(b" ", 2)[1])
    assert status == 400, answer
    assert SECRET.encode() not in answer
    assert upstream_saw(demo) == []


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/healthz",
        "/v1/chat/completions",
        "/v1/models/ft:gpt-4o-mini:org::abc123",
        "/v1/files/file-AbC_12.3~x",
    ],
)
def test_canonical_paths_are_accepted(path: str) -> None:
    assert path_problem(path) is None


@pytest.mark.parametrize("path", [*VARIANTS[3:23], "v1/models", "/v1/models?x", "/v1/mod els"])
def test_non_canonical_paths_are_named(path: str) -> None:
    assert path_problem(path) is not None
