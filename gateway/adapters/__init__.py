"""One adapter per OpenAI wire format, keyed by the route the proxy serves it on."""

from gateway.adapters.base import ApiAdapter
from gateway.adapters.chat_completions import ADAPTER as CHAT_COMPLETIONS
from gateway.adapters.completions import ADAPTER as COMPLETIONS
from gateway.adapters.responses import ADAPTER as RESPONSES

ADAPTERS: dict[str, ApiAdapter] = {
    adapter.route: adapter for adapter in (CHAT_COMPLETIONS, COMPLETIONS, RESPONSES)
}

__all__ = ["ADAPTERS"]
