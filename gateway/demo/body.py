"""Typed, validated reads of a request's JSON body.

Route modules ask for ``n`` or ``stream`` and get an ``int`` or ``bool`` back, or the client
gets the 400 a real upstream would send, naming the parameter. The body was parsed once, when
the request was recorded, so this reads the record rather than the socket.
"""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp import web

from gateway.demo.app_keys import RECORD
from gateway.demo.errors import DemoError

T = TypeVar("T")


def json_body(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, or a 400 in OpenAI's words."""
    body = request[RECORD].body
    if not isinstance(body, dict):
        raise DemoError(
            400,
            "We could not parse the JSON body of your request. The body must be a JSON object.",
        )
    return body


def get_bool(body: dict[str, Any], key: str, default: bool = False) -> bool:
    return _get(body, key, bool, default)


def get_str(body: dict[str, Any], key: str, default: str) -> str:
    return _get(body, key, str, default)


def get_int(body: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    """An integer parameter within ``[low, high]``; ``bool`` is not an integer here."""
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _invalid(key, f"an integer from {low} to {high}")
    return value


def get_dict(body: dict[str, Any], key: str) -> dict[str, Any]:
    """An optional object parameter; absent or ``null`` reads as ``{}``."""
    return _get(body, key, dict, {})


def get_list(body: dict[str, Any], key: str) -> list[Any]:
    """An optional array parameter; absent or ``null`` reads as ``[]``."""
    return _get(body, key, list, [])


def text_of(content: object) -> str:
    """The plain text of a message ``content``: a string, or the ``text`` of its parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(text_of(part.get("text")) for part in content if isinstance(part, dict))
    return ""


def first_function_name(tools: list[Any]) -> str | None:
    """The name of the first function tool, in the chat (nested) or Responses (flat) shape."""
    for tool in tools:
        if isinstance(tool, dict) and tool.get("type") == "function":
            function = tool.get("function", tool)
            name = function.get("name") if isinstance(function, dict) else None
            if isinstance(name, str):
                return name
    return None


def _get(body: dict[str, Any], key: str, kind: type[T], default: T) -> T:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise _invalid(key, f"of type {kind.__name__}")
    return value


def _invalid(key: str, expected: str) -> DemoError:
    return DemoError(400, f"Invalid value for '{key}': expected {expected}.", param=key)
