"""Typed application keys: all per-app state lives here, none in module globals."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from aiohttp import ClientResponse, ClientSession, web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from gateway.metrics import Metrics
from gateway.policy.store import PolicyStore
from gateway.proxy.audit import AuditLog
from gateway.proxy.drain import Drain
from gateway.proxy.headers import upstream_request_headers
from gateway.proxy.offload import Offload
from gateway.proxy.request_log import RequestFacts
from gateway.proxy.verdicts import Judges
from gateway.settings import Settings


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    """One request to send upstream, in the gateway's terms rather than aiohttp's."""

    method: str
    url: URL
    headers: CIMultiDict[str]
    body: bytes | None = None


class Upstream:
    """Where requests go: the shared session, the base URL (``/v1`` included), the key.

    The credential decision lives here, once: with an upstream key configured the
    client's own credential never leaves the gateway.
    """

    def __init__(self, session: ClientSession, base_url: str, api_key: str | None) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key

    def url(self, v1_tail: str, query: Mapping[str, str] | None = None) -> URL:
        """``/v1/chat/completions`` -> ``<base>/chat/completions`` (plus ``query``)."""
        url = URL(self.base_url + v1_tail.removeprefix("/v1"))
        return url.with_query(query) if query else url

    def raw_url(self, incoming: URL) -> URL:
        """The same, keeping the client's encoding and query byte for byte."""
        query = f"?{incoming.raw_query_string}" if incoming.raw_query_string else ""
        return URL(self.base_url + incoming.raw_path.removeprefix("/v1") + query, encoded=True)

    def headers(self, incoming: CIMultiDictProxy[str]) -> CIMultiDict[str]:
        """The client's headers as they may go upstream (see ``headers``)."""
        return upstream_request_headers(incoming, self._api_key)

    def send(self, call: UpstreamCall) -> AbstractAsyncContextManager[ClientResponse]:
        """Use as ``async with upstream.send(call) as response``."""
        return self.session.request(call.method, call.url, data=call.body, headers=call.headers)


class InFlight:
    """Moderated requests being served (``admission``); one event loop, so a plain int."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def try_enter(self) -> bool:
        if self.count >= self.limit:
            return False
        self.count += 1
        return True

    def leave(self) -> None:
        self.count -= 1


SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
POLICIES = web.AppKey("policies", PolicyStore)
UPSTREAM = web.AppKey("upstream", Upstream)
AUDIT = web.AppKey("audit", AuditLog)
DRAIN = web.AppKey("drain", Drain)
IN_FLIGHT = web.AppKey("in_flight", InFlight)
JUDGES = web.AppKey("judges", Judges)
OFFLOAD = web.AppKey("offload", Offload)
REQUEST_ID = web.RequestKey("sluicegate_request_id", str)
REQUEST_FACTS = web.RequestKey("sluicegate_request_facts", RequestFacts)
