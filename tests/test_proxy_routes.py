"""The gateway's routes over HTTP, in process: ``create_app`` with the built-in demo upstream.

This is the fast layer under tests/e2e/ (which drives the real SDKs against a gateway on
its own thread): one aiohttp test client per test, raw HTTP in and out, and nothing of
``gateway.proxy`` but ``create_app``, so the routes are tested as clients see them.
"""

from __future__ import annotations

import json
from typing import TypeAlias

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient
from yarl import URL

from gateway.proxy.app import create_app
from gateway.settings import Settings
from tests.e2e.conftest import POLICIES, reply

Client: TypeAlias = TestClient[web.Request, web.Application]
SECRET = "sk-Abc123Def456Ghi789"
CHAT = "/v1/chat/completions"
REQUEST_ID = "X-Sluicegate-Request-Id"


def settings(api_keys: str = "") -> Settings:
    """The demo upstream in process, the e2e policies, nothing running in the background."""
    return Settings(
        _env_file=None,
        upstream_url="demo",
        demo_pace=0.0,
        policy=POLICIES,
        default_policy="test",
        policy_reload_seconds=0,
        keepalive_seconds=0,
        api_keys=api_keys or (),  # unset: no key needed
    )


@pytest.fixture
async def client(aiohttp_client: AiohttpClient) -> Client:
    return await aiohttp_client(create_app(settings()))


@pytest.fixture
async def guarded(aiohttp_client: AiohttpClient) -> Client:
    """A gateway that wants one of its own API keys from every client."""
    return await aiohttp_client(create_app(settings(api_keys="key-one, key-two")))


def chat_body(content: str = "hi", **extra: object) -> dict[str, object]:
    return {"model": "demo-chat", "messages": [{"role": "user", "content": content}], **extra}


async def error_of(response: ClientResponse, status: int) -> dict[str, object]:
    """The OpenAI-format error of a response, checked for its status and shape."""
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body = await response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    return dict(error)


# -- health, readiness, metrics ----------------------------------------------------------


async def test_healthz_is_ok(client: Client) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_readyz_is_ready_with_the_loaded_policies(client: Client) -> None:
    response = await client.get("/readyz")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "ready"
    assert body["policies"] == ["notice", "test"]
    assert body["default_policy"] == "test"


async def test_metrics_count_the_requests_answered(client: Client) -> None:
    await client.get("/healthz")
    await client.get("/healthz")
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    text = await response.text()
    assert "# TYPE sluicegate_requests_total counter" in text
    assert 'sluicegate_requests_total{route="healthz",status="200"} 2.0' in text


# -- what every response carries ---------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/healthz", 200),
        ("GET", "/metrics", 200),
        ("GET", "/nowhere", 404),
        ("GET", "/v1/models", 200),
        ("POST", CHAT, 200),
        ("POST", "/v1/chat/completions/", 400),
    ],
)
async def test_every_response_has_a_request_id(
    client: Client, method: str, path: str, status: int
) -> None:
    ids = set()
    for _ in range(2):
        response = await client.request(method, path, json=chat_body(), headers=reply("hi"))
        assert response.status == status
        request_id = response.headers[REQUEST_ID]
        assert len(request_id) == 32 and int(request_id, 16) >= 0
        ids.add(request_id)
    assert len(ids) == 2, "one id per request"


async def test_a_streamed_response_has_a_request_id(client: Client) -> None:
    response = await client.post(CHAT, json=chat_body(stream=True), headers=reply("hi"))
    assert response.content_type == "text/event-stream"
    assert len(response.headers[REQUEST_ID]) == 32


# -- requests the gateway refuses ----------------------------------------------------------


async def test_an_unknown_policy_is_a_400_in_openai_format(client: Client) -> None:
    response = await client.post(
        CHAT, json=chat_body(), headers={**reply("hi"), "X-Sluicegate-Policy": "nope"}
    )
    error = await error_of(response, 400)
    assert error["code"] == "unknown_policy"
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "X-Sluicegate-Policy"
    assert "notice, test" in str(error["message"])


async def test_a_known_policy_can_be_chosen(client: Client) -> None:
    headers = {**reply("a nightingale sang"), "X-Sluicegate-Policy": "notice"}
    response = await client.post(CHAT, json=chat_body(), headers=headers)
    assert response.status == 200
    body = await response.json()
    assert body["choices"][0]["message"]["content"] == "a  [stopped]"
    assert body["choices"][0]["finish_reason"] == "content_filter"


@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff\xfe"])
async def test_a_body_that_is_not_json_is_a_400(client: Client, body: bytes) -> None:
    response = await client.post(CHAT, data=body, headers={"Content-Type": "application/json"})
    error = await error_of(response, 400)
    assert error["type"] == "invalid_request_error"
    assert "not valid JSON" in str(error["message"])


@pytest.mark.parametrize("body", [[1, 2], "text", 5, None])
async def test_a_json_body_that_is_not_an_object_is_a_400(client: Client, body: object) -> None:
    response = await client.post(CHAT, data=json.dumps(body), headers=reply("hi"))
    error = await error_of(response, 400)
    assert "JSON object" in str(error["message"])


@pytest.mark.parametrize(
    "path",
    [
        "/v1/chat%2Fcompletions",
        "/v1/x/../chat/completions",
        "/v1/chat/completions/",
        "/v1//chat/completions",
        "/v1/responses/",
    ],
)
async def test_a_non_canonical_path_is_a_400(client: Client, path: str) -> None:
    """Sent byte for byte (the test client would normalise ``..`` away)."""
    url = URL(f"{str(client.make_url('/')).rstrip('/')}{path}", encoded=True)
    assert url.raw_path == path, "premise: the path reaches the gateway as written"
    response = await client.session.post(url, json=chat_body(), headers=reply(f"k {SECRET}"))
    error = await error_of(response, 400)
    assert error["code"] == "invalid_path"
    assert SECRET not in await response.text()


async def test_an_input_block_is_a_400_naming_the_field(client: Client) -> None:
    body = {
        "model": "demo-chat",
        "messages": [
            {"role": "system", "content": "be nice"},
            {"role": "user", "content": [{"type": "text", "text": "a Forbidden Topic"}]},
        ],
    }
    response = await client.post(CHAT, json=body, headers=reply("never sent"))
    error = await error_of(response, 400)
    assert error["code"] == "content_policy_violation"
    assert error["param"] == "messages[1].content[0].text"
    assert "never sent" not in await response.text()


# -- client keys -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong", "Bearer key-one2", "Basic key-one", "key-one", "Bearer "],
)
async def test_a_missing_or_wrong_key_is_a_401(guarded: Client, authorization: str | None) -> None:
    headers = reply("hi")
    if authorization is not None:
        headers["Authorization"] = authorization
    response = await guarded.post(CHAT, json=chat_body(), headers=headers)
    error = await error_of(response, 401)
    assert error["code"] == "invalid_api_key"
    assert REQUEST_ID in response.headers


@pytest.mark.parametrize("key", ["key-one", "key-two"])
async def test_any_configured_key_passes(guarded: Client, key: str) -> None:
    headers = {**reply("hi"), "Authorization": f"Bearer {key}"}
    response = await guarded.post(CHAT, json=chat_body(), headers=headers)
    assert response.status == 200
    assert (await response.json())["choices"][0]["message"]["content"] == "hi"


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
async def test_health_routes_need_no_key(guarded: Client, path: str) -> None:
    assert (await guarded.get(path)).status == 200


async def test_pass_through_routes_need_a_key_too(guarded: Client) -> None:
    await error_of(await guarded.get("/v1/models"), 401)
    response = await guarded.get("/v1/models", headers={"Authorization": "Bearer key-one"})
    assert response.status == 200


# -- moderated answers -----------------------------------------------------------------------


async def test_a_whole_chat_completion_is_moderated(client: Client) -> None:
    response = await client.post(CHAT, json=chat_body(), headers=reply(f"key {SECRET} ok"))
    assert response.status == 200
    text = await response.text()
    assert SECRET not in text
    body = json.loads(text)
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "key [REDACTED] ok"


async def test_a_streamed_chat_completion_is_moderated_and_ends_with_done(client: Client) -> None:
    response = await client.post(
        CHAT, json=chat_body(stream=True), headers=reply(f"key {SECRET} ok", chunking="char")
    )
    assert response.status == 200
    raw = await response.text()
    assert SECRET not in raw and SECRET[3:9] not in raw
    frames = [f for f in raw.replace("\r\n", "\n").split("\n\n") if f.strip()]
    assert frames[-1] == "data: [DONE]"
    chunks = [json.loads(f.removeprefix("data: ")) for f in frames[:-1]]
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert content == "key [REDACTED] ok"


async def test_a_pass_through_route_is_forwarded(client: Client) -> None:
    response = await client.get("/v1/models")
    assert response.status == 200
    body = await response.json()
    assert body["object"] == "list"
    assert "demo-chat" in [m["id"] for m in body["data"]]


async def test_an_unknown_route_is_a_404_in_openai_format(client: Client) -> None:
    error = await error_of(await client.get("/nowhere"), 404)
    assert error["code"] == "not_found"
