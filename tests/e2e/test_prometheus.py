"""The dashboard and the alert rules against a real Prometheus scraping a real gateway.

``sluicegate serve --workers 2`` runs as an operator runs it, in its own process, and
Debian's ``prometheus`` scrapes it every second with the alert rules of
``deploy/prometheus`` loaded. Traffic goes through the official ``openai`` SDK: streams
with redactions, cut-offs (a rule, the hold limit, a classifier), an input block, a
whole answer, upstream errors, classifier verdicts (hold and async rules), a stream
past a budget, a client that leaves, a body that never arrives, and a policy reload. Then
Prometheus's HTTP API must show that every dashboard expression parses and returns
numbers, that every metric an alert names has series, and that every alert rule is
loaded and healthy.

Traffic runs twice, a few scrapes apart: a series first seen at its first value has no
``rate`` yet, so the second round is what gives every ``rate`` and quantile a value.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import reply
from tests.e2e.test_workers import Server, _free_port, _launch, _sdk

ROOT = Path(__file__).parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "sluicegate.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
E2E = Path(__file__).parent
PROMETHEUS = shutil.which("prometheus")
#: Grafana's variables, as the dashboard is used: every job, a window of one minute
#: (the whole test fits in it, so every rate covers all the traffic).
VARIABLES = {"$__rate_interval": "1m", "$job": "sluicegate"}
METRIC = re.compile(r"\b(sluicegate_[a-z_]+|up)\b(?!\s*\()")

pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="the prometheus server is not installed (Debian package prometheus)"
)


class Prometheus:
    """A Prometheus server in its own process, and its query API."""

    def __init__(self, tmp: Path, target: int) -> None:
        self.port = _free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {"job_name": "sluicegate", "static_configs": [{"targets": [f"127.0.0.1:{target}"]}]}
            ],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        assert PROMETHEUS is not None
        self.log = (tmp / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.root = f"http://127.0.0.1:{self.port}"

    def api(self, path: str, **params: str) -> Any:
        response = httpx.get(f"{self.root}/api/v1/{path}", params=params, timeout=10)
        body = response.json()
        assert body["status"] == "success", (path, params, body)
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", (expr, data)
        result: list[dict[str, Any]] = data["result"]
        return result

    def value(self, expr: str) -> float:
        result = self.query(expr)
        return sum(float(sample["value"][1]) for sample in result)

    def wait_for(self, predicate: Any, what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert self.process.poll() is None, self.output()
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.2)

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.log.close()


def _ready(prometheus: Prometheus) -> bool:
    try:
        return httpx.get(prometheus.root + "/-/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Prometheus]]:
    """A two-worker gateway under traffic, and a Prometheus that has scraped all of it."""
    tmp = tmp_path_factory.mktemp("prometheus")
    policies = tmp / "policies"
    policies.mkdir()
    shutil.copy(E2E / "policies" / "test.yaml", policies)
    for name in ("harm.yaml", "harm-async.yaml"):
        shutil.copy(E2E / "classifier_policies" / name, policies)
    server = _launch(
        tmp,
        2,
        "--policy",
        str(policies),
        SLUICEGATE_DEFAULT_POLICY="test",
        SLUICEGATE_CLIENT_BODY_TIMEOUT="0.5",
        SLUICEGATE_MAX_STREAM_CHANNELS="4",
    )
    prometheus = Prometheus(tmp, server.port)
    try:
        prometheus.wait_for(lambda: _ready(prometheus), "Prometheus to start")
        prometheus.wait_for(lambda: prometheus.value('up{job="sluicegate"}') == 1, "a scrape")
        _traffic(server)
        time.sleep(2.5)  # a few scrapes between the rounds
        _traffic(server)
        # What the gateway counted (any worker answers for both) is what Prometheus has,
        # once it scraped after the last request.
        sent = _api_requests(server)
        api = 'sluicegate_requests_total{route!~"healthz|readyz|metrics"}'
        prometheus.wait_for(
            lambda: prometheus.value(f"sum({api})") == sent, "Prometheus to scrape the traffic"
        )
        yield server, prometheus
    finally:
        prometheus.stop()
        server.stop()


def _api_requests(server: Server) -> float:
    """Requests to the API routes, from one ``/metrics`` of the gateway itself."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(server.get("/metrics").text)
        for sample in family.samples
        if sample.name == "sluicegate_requests_total"
        and sample.labels["route"] not in {"healthz", "readyz", "metrics"}
    )


SECRET = "here is my key sk-ABCDEFGH12345678 and more text"
HARMFUL = "Here is the plan. I will attack the town at dawn. Nobody must know it."
BENIGN = "The weather is lovely today. We walked along the river. Then we had tea."


def _stream(
    client: openai.OpenAI, text: str | list[str], policy: str = "test", n: int = 1, **demo: str
) -> str:
    stream = client.chat.completions.create(
        model="demo-chat",
        messages=[{"role": "user", "content": "tell me"}],
        stream=True,
        n=n,
        extra_headers={**reply(text, **demo), "X-Sluicegate-Policy": policy},
    )
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def _traffic(server: Server) -> None:
    """One round of everything the dashboard shows, through the SDK on fresh connections
    (so the kernel spreads it over both workers)."""
    client = _sdk(server, new_connections=True)
    for _ in range(4):
        assert "[REDACTED]" in _stream(client, SECRET, chunking="char")
    assert "nightingale" not in _stream(client, "the nightingale sings at night")
    # One word longer than max_hold_chars (256): the hold overflows and cuts the stream.
    assert "AAAA" not in _stream(client, "see sk-" + "A" * 400)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="demo-chat",
            messages=[{"role": "user", "content": "tell me about the forbidden topic"}],
        )
    whole = client.chat.completions.create(
        model="demo-chat", messages=[{"role": "user", "content": "x"}], extra_headers=reply(SECRET)
    )
    assert "[REDACTED]" in (whole.choices[0].message.content or "")
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="demo-chat",
            messages=[{"role": "user", "content": "x"}],
            extra_headers={**reply("fine"), "X-Demo-Fault": "http-500"},
        )
    with pytest.raises(openai.APIError):
        _stream(client, "a stream the upstream breaks halfway through", fault="reset")
    assert "attack" not in _stream(client, HARMFUL, "harm")
    for _ in range(2):  # the second is answered from the verdict cache
        assert _stream(client, BENIGN, "harm") == BENIGN
    _stream(client, HARMFUL, "harm-async")  # async rule: cut after the flag
    with pytest.raises(openai.APIError):  # more choices than SLUICEGATE_MAX_STREAM_CHANNELS
        _stream(client, ["one choice of many"] * 8, n=8)
    _leave_mid_stream(server)
    _stall_body(server)
    os.kill(server.process.pid, signal.SIGHUP)  # every worker reloads its policies


def _leave_mid_stream(server: Server) -> None:
    """A client that reads the first event of a slow stream and hangs up."""
    body = {"model": "demo-chat", "messages": [{"role": "user", "content": "x"}], "stream": True}
    headers = {**reply(" ".join(["word"] * 40), pace_ms="50"), "Connection": "close"}
    before = server.sample("sluicegate_client_disconnects_total")
    with (
        httpx.Client(timeout=10) as client,
        client.stream(
            "POST", server.root + "/v1/chat/completions", json=body, headers=headers
        ) as r,
    ):
        next(r.iter_raw())
    # The worker notices at its next write, 50 ms on; wait until one has counted it.
    server.wait_for(lambda: server.sample("sluicegate_client_disconnects_total") > before)


def _stall_body(server: Server) -> None:
    """A client that announces a body and never sends it: 408 after the body timeout."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            b"\r\nContent-Length: 100\r\n\r\n{"
        )
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]


def _with_variables(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def _dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", ())
    ]


def _alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_every_dashboard_query_returns_numbers(scraped: tuple[Server, Prometheus]) -> None:
    _, prometheus = scraped
    queries = _dashboard_queries()
    assert len(queries) > 20
    empty = []
    for title, expr in queries:
        result = prometheus.query(_with_variables(expr))
        values = [float(sample["value"][1]) for sample in result]
        if not any(math.isfinite(v) for v in values):
            empty.append((title, expr, values))
    assert not empty, "queries with no number (no data, or only NaN):\n" + "\n".join(
        map(str, empty)
    )


def test_the_traffic_shows_on_the_dashboard(scraped: tuple[Server, Prometheus]) -> None:
    """Not just series: the numbers the traffic must have moved, by the labels it moved."""
    _, prometheus = scraped
    positive = {
        'sluicegate_stream_cutoffs_total{policy="test", rule="ban"}',
        'sluicegate_stream_cutoffs_total{policy="test", rule="sluice.hold_limit"}',
        'sluicegate_stream_cutoffs_total{policy="harm", rule="harm.moderation"}',
        'sluicegate_hold_limit_overflows_total{policy="test", action="block"}',
        'sluicegate_input_blocks_total{policy="test", rule="input.block"}',
        'sluicegate_rule_hits_total{rule="secret", action="redact", direction="output"}',
        'sluicegate_upstream_errors_total{reason="http_5xx"}',
        'sluicegate_upstream_errors_total{reason="connection"}',
        'sluicegate_client_disconnects_total{route="chat_completions"}',
        'sluicegate_rejected_requests_total{reason="body_timeout"}',
        'sluicegate_budget_exceeded_total{budget="stream_channels"}',
        'sluicegate_policy_reloads_total{result="success"}',
        'sluicegate_classifier_calls_total{result="flagged"}',
        "sluicegate_classifier_cache_hits_total",
        "sluicegate_classifier_leaked_chars_count",
        "sluicegate_added_latency_seconds_count",
        "sluicegate_upstream_time_to_first_byte_seconds_count",
        "sluicegate_held_chars_count",
        "sluicegate_holdback_seconds_count",
    }
    missing = [expr for expr in sorted(positive) if not prometheus.value(f"sum({expr})") > 0]
    assert not missing, missing
    # Two rounds, each with its cut-offs by rule: counted once per stream, summed over workers.
    assert prometheus.value('sum(sluicegate_stream_cutoffs_total{rule="ban"})') == 2
    assert prometheus.value('count(sluicegate_build_info{job="sluicegate"} == 1)') == 1


def test_every_metric_an_alert_names_has_series(scraped: tuple[Server, Prometheus]) -> None:
    """An alert that is quiet when all is well returns nothing, so its expression is
    checked to parse and evaluate, and each metric it reads to exist."""
    _, prometheus = scraped
    for rule in _alert_rules():
        prometheus.query(rule["expr"])  # parses and evaluates (status "success")
        names = set(METRIC.findall(rule["expr"]))
        assert names, rule["alert"]
        for name in names:
            series = prometheus.api("series", **{"match[]": f'{name}{{job="sluicegate"}}'})
            assert series, f"{rule['alert']}: no series of {name}"


def test_the_alert_rules_are_loaded_and_healthy(scraped: tuple[Server, Prometheus]) -> None:
    _, prometheus = scraped
    expected = {rule["alert"] for rule in _alert_rules()}

    def evaluated() -> bool:
        groups = prometheus.api("rules", type="alert")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        return {r["name"] for r in rules} == expected and all(
            r["health"] == "ok" and r["lastEvaluation"][:4] != "0001" for r in rules
        )

    prometheus.wait_for(evaluated, "every alert rule to be evaluated without error")
    alerts = prometheus.api("alerts")["alerts"]
    down = [a for a in alerts if a["labels"]["alertname"] in {"SluicegateDown", "SluicegateAbsent"}]
    assert not down, down  # the gateway is up and scraped
