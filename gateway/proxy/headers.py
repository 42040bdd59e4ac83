"""Which headers cross the proxy, each way (RFC 9110 §7.6.1 hop-by-hop rules)."""

from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
REQUEST_ID = "X-Sluicegate-Request-Id"
POLICY = "X-Sluicegate-Policy"
_OWN_PREFIX = "x-sluicegate-"
# Recomputed or owned by the client library on each hop, never copied. aiohttp's server
# decompresses a gzip request body, so its Content-Encoding no longer describes it. The
# method overrides are refused by the route guard; dropped here too, so no upstream ever
# serves a request as another method than the one it was checked as.
_REQUEST_DROP = frozenset(
    {
        "host",
        "content-length",
        "accept-encoding",
        "content-encoding",
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
    }
)
_REWRITTEN_DROP = frozenset({"content-length", "content-encoding", "etag", "content-md5"})
CLIENT_CREDENTIALS = frozenset(
    {"authorization", "api-key", "x-api-key", "x-goog-api-key", "cookie", "proxy-authorization"}
)
"""Every header a provider may take as the caller's credential (OpenAI, Azure's ``api-key``,
Anthropic-style ``x-api-key``, Google's ``x-goog-api-key``, session cookies). With an
upstream key configured none of them is sent: the gateway's key alone must decide whose
account a request runs on, and a client's own key must not reach a provider it was never
meant for."""


def _connection_listed(headers: CIMultiDictProxy[str]) -> set[str]:
    listed: set[str] = set()
    for value in headers.getall("connection", []):
        listed.update(token.strip().lower() for token in value.split(","))
    return listed


def upstream_request_headers(
    incoming: CIMultiDictProxy[str], upstream_key: str | None
) -> CIMultiDict[str]:
    """Client headers for upstream: hop-by-hop and our own removed, identity encoding.

    aiohttp (docs/wire.md, "Headers, compression and reads") decompresses but keeps
    ``Content-Encoding``; asking upstream for ``identity`` keeps the bytes we parse and the
    headers we copy consistent.
    """
    drop = HOP_BY_HOP | _REQUEST_DROP | _connection_listed(incoming)
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in incoming.items():
        lower = name.lower()
        if lower in drop or lower.startswith(_OWN_PREFIX):
            continue
        if upstream_key is not None and lower in CLIENT_CREDENTIALS:
            continue
        out.add(name, value)
    out["Accept-Encoding"] = "identity"
    if upstream_key is not None:
        out["Authorization"] = f"Bearer {upstream_key}"
    return out


def client_response_headers(
    upstream: CIMultiDictProxy[str], *, rewritten: bool
) -> CIMultiDict[str]:
    """Upstream headers for the client; a rewritten body loses its length and encoding.

    So does a body aiohttp decompressed (an upstream that ignored ``identity``): the
    bytes we relay are no longer the encoded ones the headers describe.
    """
    drop = HOP_BY_HOP | _connection_listed(upstream)
    if rewritten or "content-encoding" in upstream:
        drop = drop | _REWRITTEN_DROP
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in upstream.items():
        if name.lower() not in drop:
            out.add(name, value)
    return out
