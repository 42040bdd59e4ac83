"""``POST /v1/embeddings``: small deterministic vectors, as floats or base64.

The Python SDK asks for ``encoding_format: "base64"`` unless told otherwise and decodes
little-endian float32, so the demo must speak both. Values are float32 from the start, so
the float list and the decoded base64 are bit-for-bit the same vector.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct

import orjson
from aiohttp import web

from gateway.demo.body import get_int, get_str, json_body
from gateway.demo.errors import DemoError
from gateway.demo.sending import send_json
from gateway.demo.tokens import count_tokens

DEFAULT_DIMENSIONS = 16
MAX_DIMENSIONS = 3072


async def handle(request: web.Request) -> web.StreamResponse:
    body = json_body(request)
    inputs = _inputs(body.get("input"))
    dimensions = get_int(body, "dimensions", DEFAULT_DIMENSIONS, 1, MAX_DIMENSIONS)
    encoding = get_str(body, "encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise DemoError(
            400, "encoding_format must be 'float' or 'base64'.", param="encoding_format"
        )
    vectors = [vector(item, dimensions) for item in inputs]
    tokens = sum(count_tokens(item) if isinstance(item, str) else len(item) for item in inputs)
    return await send_json(
        request,
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": index, "embedding": _encode(packed, encoding)}
                for index, packed in enumerate(vectors)
            ],
            "model": get_str(body, "model", "demo-embedding"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        },
    )


def vector(item: str | list[int], dimensions: int) -> bytes:
    """A unit vector derived from the input alone, packed as little-endian float32."""
    seed = orjson.dumps(item)
    raw = b"".join(
        hashlib.sha256(seed + counter.to_bytes(4, "little")).digest()
        for counter in range(-(-dimensions // 32))
    )
    values = [byte / 127.5 - 1 for byte in raw[:dimensions]]
    norm = math.sqrt(sum(value * value for value in values)) or 1.0
    return struct.pack(f"<{dimensions}f", *(value / norm for value in values))


def _encode(packed: bytes, encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(packed).decode()
    return list(struct.unpack(f"<{len(packed) // 4}f", packed))


def _inputs(given: object) -> list[str | list[int]]:
    """Normalise ``input``: a string, a token array, or a list of either."""
    if isinstance(given, str):
        return [given]
    if isinstance(given, list) and given and all(_is_token(token) for token in given):
        return [given]
    if isinstance(given, list) and given and all(_is_input(item) for item in given):
        return list(given)
    raise DemoError(
        400, "input must be a string, a token array, or a non-empty list of them.", param="input"
    )


def _is_token(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_input(value: object) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and all(map(_is_token, value)))
