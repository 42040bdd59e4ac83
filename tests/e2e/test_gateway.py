"""The gateway as operators see it: auth, headers, health, reload, keep-alives, failures."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator

import httpx
import openai
import pytest

from gateway.settings import Settings
from tests.e2e.conftest import POLICIES, Stack, reply, run_stack

SECRET = "sk-Abc123Def456Ghi789"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Client keys required, an upstream key of its own, live reload, fast keep-alives."""
    policies = tmp_path_factory.mktemp("policies")
    shutil.copy(POLICIES / "test.yaml", policies / "test.yaml")
    yield from run_stack(
        lambda upstream: Settings(
            _env_file=None,  # type: ignore[call-arg]
            upstream_url=upstream,
            upstream_api_key="sk-upstream-secret",
            api_keys="key-one, key-two",
            policy=policies,
            policy_reload_seconds=0.05,
            keepalive_seconds=0.05,
        )
    )


def _chat(stack: Stack, api_key: str, text: str, **headers: str) -> str:
    client = openai.OpenAI(base_url=stack.gateway_url, api_key=api_key, max_retries=0)
    out = client.chat.completions.create(
        model="demo-chat",
        messages=[{"role": "user", "content": "x"}],
        extra_headers={**reply(text), **headers},
    )
    return out.choices[0].message.content or ""


def test_client_key_required(guarded: Stack) -> None:
    with pytest.raises(openai.AuthenticationError) as info:
        _chat(guarded, "wrong", "hi")
    assert info.value.code == "invalid_api_key"
    assert _chat(guarded, "key-two", "hi") == "hi"


def test_upstream_key_replaces_client_credential(guarded: Stack) -> None:
    _chat(guarded, "key-one", "hi")
    sent = guarded.demo_state.requests[-1].headers
    assert sent["Authorization"] == "Bearer sk-upstream-secret"


def test_health_and_readiness_need_no_key(guarded: Stack) -> None:
    root = guarded.gateway_url.removesuffix("/v1")
    assert httpx.get(f"{root}/healthz").status_code == 200
    ready = httpx.get(f"{root}/readyz")
    assert ready.status_code == 200
    assert ready.json()["policies"] == ["test"]


def test_hop_by_hop_headers_are_not_forwarded(guarded: Stack) -> None:
    httpx.post(
        f"{guarded.gateway_url}/chat/completions",
        headers={
            "Authorization": "Bearer key-one",
            "Connection": "keep-alive, X-Private",
            "X-Private": "hop",
            "X-Custom": "end-to-end",
            **reply("hi"),
        },
        json={"model": "demo-chat", "messages": [{"role": "user", "content": "x"}]},
    )
    sent = guarded.demo_state.requests[-1].headers
    assert "X-Private" not in sent
    assert sent["X-Custom"] == "end-to-end"
    assert sent["Accept-Encoding"] == "identity"


def test_keepalive_comments_while_text_is_held(guarded: Stack) -> None:
    """A key arriving slowly is held; SSE comments keep the connection alive meanwhile."""
    with httpx.stream(
        "POST",
        f"{guarded.gateway_url}/chat/completions",
        headers={
            "Authorization": "Bearer key-one",
            **reply(f"k {SECRET} ok", "char", pace_ms="40"),
        },
        json={"model": "demo-chat", "stream": True, "messages": [{"role": "user", "content": "x"}]},
    ) as response:
        raw = b"".join(response.iter_raw())
    assert b": keepalive\n\n" in raw
    assert b"Abc123" not in raw


def test_policy_reload_keeps_last_good(guarded: Stack) -> None:
    target = guarded.settings.policy / "test.yaml"
    original = target.read_text()
    before = _chat(guarded, "key-one", "say hello world")
    assert before == "say hello world"
    target.write_text(
        original + "\n  - id: world\n    match: {keywords: [world]}\n    action: redact\n"
    )
    assert guarded.wait_for(lambda: _chat(guarded, "key-one", "hello world") == "hello [REDACTED]")
    target.write_text("version: 1\nname: test\nrules:\n  - id: broken\n    match: {regex: '('}\n")
    assert guarded.wait_for(
        lambda: 'sluicegate_policy_reloads_total{result="failure"}' in guarded.metrics_text()
    )
    assert _chat(guarded, "key-one", "hello world") == "hello [REDACTED]"


def test_unreachable_upstream_is_502() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    for stack in run_stack(
        lambda _upstream: Settings(
            _env_file=None,  # type: ignore[call-arg]
            upstream_url=f"http://127.0.0.1:{dead}/v1",
            policy=POLICIES,
            policy_reload_seconds=0,
        )
    ):
        with pytest.raises(openai.InternalServerError) as info:
            stack.client().chat.completions.create(
                model="m", messages=[{"role": "user", "content": "x"}]
            )
        assert info.value.status_code == 502
        assert info.value.code == "upstream_unavailable"


def test_malformed_request_is_a_clear_400(stack: Stack) -> None:
    response = httpx.post(
        f"{stack.gateway_url}/chat/completions",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    body = response.json()
    assert "not valid JSON" in body["error"]["message"]
    assert response.headers["x-sluicegate-request-id"]


def test_passthrough_streams_uploads_and_keeps_query(stack: Stack) -> None:
    payload = b"x" * (3 * 1024 * 1024)
    response = httpx.post(
        f"{stack.gateway_url}/files?purpose=batch",
        content=iter([payload[i : i + 65536] for i in range(0, len(payload), 65536)]),
        headers={"Content-Type": "application/octet-stream", "Authorization": "Bearer t"},
    )
    received = stack.demo_state.requests[-1]
    assert received.path == "/v1/files"
    assert received.query_string == "purpose=batch"
    assert received.raw_body == payload
    assert response.status_code == 404  # the demo has no files API; its answer passes back
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_no_secret_or_text_in_metrics(stack: Stack) -> None:
    stack.client().chat.completions.create(
        model="demo-chat",
        messages=[{"role": "user", "content": "x"}],
        extra_headers=reply(f"the key {SECRET}"),
    )
    text = stack.metrics_text()
    assert SECRET not in text
    assert "the key" not in text
    for line in text.splitlines():
        if line.startswith("sluicegate_rule_hits_total{"):
            labels = line.split("{", 1)[1].split("}", 1)[0]
            assert set(json.loads("{" + _quote_keys(labels) + "}")) == {
                "action",
                "direction",
                "policy",
                "rule",
            }


def _quote_keys(labels: str) -> str:
    return ",".join(f'"{k}":{v}' for k, v in (pair.split("=", 1) for pair in labels.split(",")))


def _raw_post(stack: Stack, target: str) -> tuple[int, bytes]:
    """One HTTP/1.1 request with the path exactly as given (clients would normalise it)."""
    host, port = stack.gateway_url.removeprefix("http://").split("/")[0].split(":")
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]}).encode()
    head = (
        f"POST {target} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"X-Demo-Reply: {json.dumps(f'k {SECRET}')}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(head + body)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data


@pytest.mark.parametrize(
    "target",
    [
        "/v1/chat%2Fcompletions",
        "/v1/x/../chat/completions",
        "/v1/x/%2e%2e/chat/completions",
        "/v1//chat/completions",
        "/v1/chat/completions/",
    ],
)
def test_non_canonical_paths_cannot_bypass_moderation(stack: Stack, target: str) -> None:
    before = len(stack.demo_state.requests)
    status, raw = _raw_post(stack, target)
    assert status == 400
    assert SECRET.encode() not in raw
    assert len(stack.demo_state.requests) == before


@pytest.mark.parametrize(
    "path",
    [
        "/chat/completions/chatcmpl-1",
        "/chat/completions",
        "/responses/resp_1",
        "/responses/resp_1?stream=true",
    ],
)
def test_stored_objects_are_moderated_when_read_back(stack: Stack, path: str) -> None:
    """Stored answers come back through the same rules (upstream returns them raw)."""
    headers = reply(f"k {SECRET} v")
    assert SECRET in httpx.get(f"{stack.demo_url}{path}", headers=headers).text
    response = httpx.get(f"{stack.gateway_url}{path}", headers=headers)
    assert response.status_code == 200
    assert SECRET not in response.text
    assert "[REDACTED]" in response.text


def test_policy_choice_can_be_restricted(tmp_path_factory: pytest.TempPathFactory) -> None:
    for restricted in run_stack(
        lambda upstream: Settings(
            _env_file=None,  # type: ignore[call-arg]
            upstream_url=upstream,
            policy=POLICIES,
            default_policy="test",
            selectable_policies="test",
            policy_reload_seconds=0,
        )
    ):
        with pytest.raises(openai.BadRequestError) as info:
            restricted.client().chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": "x"}],
                extra_headers={"X-Sluicegate-Policy": "notice"},
            )
        assert info.value.code == "unknown_policy"


def test_empty_api_keys_setting_is_rejected() -> None:
    with pytest.raises(ValueError, match="lists nothing"):
        Settings(_env_file=None, api_keys=" , ")  # type: ignore[call-arg]


def test_gateway_errors_use_the_openai_format(stack: Stack) -> None:
    root = stack.gateway_url.removesuffix("/v1")
    missing = httpx.get(f"{root}/nowhere")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    too_big = httpx.post(
        f"{stack.gateway_url}/chat/completions",
        content=b"x" * (stack.settings.max_request_bytes + 1),
        headers={"Content-Type": "application/json"},
    )
    assert too_big.status_code == 413
    assert too_big.json()["error"]["type"] == "invalid_request_error"


def test_passthrough_keeps_upload_length(stack: Stack) -> None:
    payload = b"y" * 200_000
    httpx.post(
        f"{stack.gateway_url}/files", content=payload, headers={"Content-Type": "text/plain"}
    )
    received = stack.demo_state.requests[-1]
    assert received.headers["Content-Length"] == str(len(payload))
    assert "Transfer-Encoding" not in received.headers
    assert received.raw_body == payload
