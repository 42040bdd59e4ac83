"""Which client credentials go upstream, and how a presented bearer key is checked."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from pydantic import SecretStr

from gateway.proxy.bearer import presents_key
from gateway.proxy.headers import upstream_request_headers

CLIENT_CREDENTIALS = {
    "Authorization": "Bearer sk-client",
    "api-key": "azure-client",
    "x-api-key": "anthropic-client",
    "X-Goog-Api-Key": "google-client",
    "Cookie": "session=client",
    "Proxy-Authorization": "Basic Y2xpZW50",
}


def _headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


def test_an_upstream_key_replaces_every_client_credential() -> None:
    incoming = _headers(*CLIENT_CREDENTIALS.items(), ("X-Custom", "kept"))
    sent = upstream_request_headers(incoming, "sk-gateway")
    assert sent.getall("Authorization") == ["Bearer sk-gateway"]
    assert dict(sent) == {
        "X-Custom": "kept",
        "Accept-Encoding": "identity",
        "Authorization": "Bearer sk-gateway",
    }


def test_without_an_upstream_key_the_client_credentials_go_through() -> None:
    """The client's own key is the only one there is; only the hop-by-hop header stops."""
    sent = upstream_request_headers(_headers(*CLIENT_CREDENTIALS.items()), None)
    expected = {k: v for k, v in CLIENT_CREDENTIALS.items() if k != "Proxy-Authorization"}
    assert {k: sent[k] for k in expected} == expected
    assert "Proxy-Authorization" not in sent


KEYS = (SecretStr("key-one"), SecretStr("key-two"))


@pytest.mark.parametrize(
    ("pairs", "valid"),
    [
        ([("Authorization", "Bearer key-one")], True),
        ([("Authorization", "bearer key-two")], True),
        ([("Authorization", "Bearer  key-one ")], True),
        ([], False),
        ([("Authorization", "Bearer")], False),
        ([("Authorization", "Bearer ")], False),
        ([("Authorization", "Basic key-one")], False),
        ([("Authorization", "key-one")], False),
        ([("Authorization", "Bearer key-one"), ("Authorization", "Bearer key-one")], False),
        ([("Authorization", "Bearer key-on")], False),
        # aiohttp keeps bytes that are not UTF-8 as surrogates; they are a wrong key.
        ([("Authorization", "Bearer key-\udcff\udcfeone")], False),
        ([("Authorization", "Bearer ключ")], False),
    ],
)
def test_presents_key(pairs: list[tuple[str, str]], valid: bool) -> None:
    assert presents_key(_headers(*pairs), KEYS) is valid


def test_a_non_ascii_key_matches_its_utf8_bytes() -> None:
    raw = "Bearer ключ".encode().decode("utf-8", "surrogateescape")
    assert presents_key(_headers(("Authorization", raw)), (SecretStr("ключ"),))
