"""``sluicegate serve`` as operators run it: real processes, signals and sockets.

Each server here is ``python -m gateway serve --upstream demo`` in its own process, with
one worker or a supervisor and two. The tests read what an operator can see: the
supervisor's log (which worker has which pid), ``/metrics`` and ``/readyz`` over fresh
connections (the kernel picks the worker), the per-worker metric files, and exit codes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import reply

POLICY = """\
version: 1
name: {name}
rules:
  - id: word
    match: {{keywords: [swordfish]}}
    action: redact
    replacement: "[gone]"
"""
WORDS = " ".join(f"word{i}" for i in range(16))
SERVE = (sys.executable, "-m", "gateway", "serve", "--upstream", "demo")


@dataclass
class Server:
    """One ``sluicegate serve`` process and everything it printed."""

    process: subprocess.Popen[str]
    port: int
    tmp: Path
    output: list[str] = field(default_factory=list)

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out; the server said:\n{self.log()}"
            time.sleep(0.05)

    def log(self) -> str:
        return "".join(self.output)

    def workers(self) -> dict[int, int]:
        """Worker number -> pid of the process now listening in that place."""
        found = re.findall(r"worker (\d+) listening \(pid (\d+)\)", self.log())
        return {int(number): int(pid) for number, pid in found}

    def get(self, path: str) -> httpx.Response:
        """On a fresh connection, so the kernel picks the worker."""
        return httpx.get(self.root + path, headers={"Connection": "close"}, timeout=10)

    def sample(self, name: str, **labels: str) -> float:
        """A value from ``/metrics``, summed over the label sets that match ``labels``."""
        total = 0.0
        for family in text_string_to_metric_families(self.get("/metrics").text):
            for s in family.samples:
                if s.name == name and labels.items() <= s.labels.items():
                    total += s.value
        return total

    def metrics_dir(self) -> Path | None:
        found = list(self.tmp.glob("sluicegate-metrics-*"))
        return found[0] if found else None

    def requests_by_pid(self) -> dict[int, float]:
        """Each worker's own ``chat_completions`` count, from its own metric file."""
        directory = self.metrics_dir()
        assert directory is not None
        counts: dict[int, float] = {}
        for path in directory.glob("counter_*.db"):
            pid = int(path.stem.removeprefix("counter_"))
            for family in MultiProcessCollector.merge([str(path)]):
                for s in family.samples:
                    if s.name == "sluicegate_requests_total" and s.labels["route"] == (
                        "chat_completions"
                    ):
                        counts[pid] = counts.get(pid, 0.0) + s.value
        return counts

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _environment(tmp: Path, **env: str) -> dict[str, str]:
    """This environment without the developer's own settings; temporary files in ``tmp``."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SLUICEGATE_")}
    environment.update(TMPDIR=str(tmp), SLUICEGATE_DEMO_PACE="0", **env)
    return environment


def _launch(tmp: Path, workers: int, *args: str, **env: str) -> Server:
    """Start a server and return once it is ready; stop it with ``Server.stop``."""
    port = _free_port()
    process = subprocess.Popen(
        [*SERVE, "--port", str(port), "--workers", str(workers), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_environment(tmp, **env),
    )
    server = Server(process, port, tmp)
    assert process.stdout is not None
    stdout = process.stdout

    def read() -> None:
        for line in stdout:
            server.output.append(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        server.wait_for(lambda: "Sluicegate on" in server.log() or process.poll() is not None)
        server.wait_for(lambda: _ready(server) or process.poll() is not None)
        assert process.poll() is None, server.log()
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def launch(workers: int, *args: str, **env: str) -> Server:
        servers.append(_launch(tmp_path, workers, *args, **env))
        return servers[-1]

    yield launch
    for server in servers:
        server.stop()


def _ready(server: Server) -> bool:
    try:
        return server.get("/readyz").status_code == 200
    except httpx.TransportError:
        return False


def _sdk(server: Server, *, new_connections: bool = False) -> openai.OpenAI:
    limits = httpx.Limits(max_keepalive_connections=0 if new_connections else 20)
    return openai.OpenAI(
        base_url=f"{server.root}/v1",
        api_key="test-key",
        max_retries=0,
        http_client=httpx.Client(limits=limits, timeout=30),
    )


def _chat(client: openai.OpenAI, text: str) -> str:
    out = client.chat.completions.create(
        model="demo-chat", messages=[{"role": "user", "content": "x"}], extra_headers=reply(text)
    )
    return out.choices[0].message.content or ""


class _Stream(threading.Thread):
    """A slow streamed answer read with the SDK in the background, as an app would."""

    def __init__(self, server: Server, pace_ms: int, text: str = WORDS) -> None:
        super().__init__(daemon=True)
        self.client = _sdk(server)
        self.headers = reply(text, pace_ms=str(pace_ms))
        self.started = threading.Event()
        self.text = ""
        self.finish_reason: str | None = None
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            stream = self.client.chat.completions.create(
                model="demo-chat",
                messages=[{"role": "user", "content": "x"}],
                stream=True,
                extra_headers=self.headers,
            )
            for chunk in stream:
                self.started.set()
                if chunk.choices:
                    self.text += chunk.choices[0].delta.content or ""
                    self.finish_reason = chunk.choices[0].finish_reason or self.finish_reason
        except Exception as exc:
            self.error = exc
        finally:
            self.started.set()


def _refused(server: Server) -> bool:
    try:
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


# -- two workers -------------------------------------------------------------------------


def _configmap(directory: Path, version: int, name: str) -> None:
    """Write the policy the way the kubelet updates a ConfigMap volume: a new directory,
    then one rename of the ``..data`` link; ``policy.yaml`` links through ``..data``."""
    (directory / f"..v{version}").mkdir()
    (directory / f"..v{version}" / "policy.yaml").write_text(POLICY.format(name=name))
    (directory / "..data_tmp").symlink_to(f"..v{version}")
    (directory / "..data_tmp").rename(directory / "..data")
    if not (directory / "policy.yaml").is_symlink():
        (directory / "policy.yaml").symlink_to("..data/policy.yaml")


def _policies_seen(server: Server, connections: int = 8) -> set[str]:
    """The policy names the workers report, over enough fresh connections to reach each."""
    return {name for _ in range(connections) for name in server.get("/readyz").json()["policies"]}


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Two workers, the policy in a ConfigMap-style directory, watched every 0.2 s."""
    tmp = tmp_path_factory.mktemp("pair")
    policies = tmp / "policies"
    policies.mkdir()
    _configmap(policies, 1, "alpha")
    server = _launch(tmp, 2, "--policy", str(policies), SLUICEGATE_POLICY_RELOAD_SECONDS="0.2")
    assert sorted(server.workers()) == [1, 2]
    yield server
    assert server.stop() == 0


def _chats(server: Server) -> float:
    return server.sample("sluicegate_requests_total", route="chat_completions")


def test_two_workers_share_the_port_the_metrics_and_the_reloads(pair: Server) -> None:
    """Requests spread over both workers and the counters from any worker add up; a
    SIGHUP and a ConfigMap-style swap each reach every worker."""
    before, sent = pair.requests_by_pid(), _chats(pair)
    client = _sdk(pair, new_connections=True)
    assert [_chat(client, "a swordfish") for _ in range(20)] == ["a [gone]"] * 20
    by_pid = pair.requests_by_pid()
    assert set(by_pid) == set(pair.workers().values())
    added = {pid: count - before.get(pid, 0) for pid, count in by_pid.items()}
    assert all(count > 0 for count in added.values()), added
    assert sum(added.values()) == 20
    for _ in range(4):  # whichever worker answers reports the whole server
        assert _chats(pair) == sent + 20
    assert pair.sample("sluicegate_active_streams") == 0

    # SIGHUP: the file changes in place with its size and time kept, so only the signal
    # (not the file watch) can tell the workers to load it.
    target = (pair.tmp / "policies" / "policy.yaml").resolve()
    kept = target.stat()
    target.write_text(POLICY.format(name="bravo"))
    os.utime(target, ns=(kept.st_atime_ns, kept.st_mtime_ns))
    time.sleep(0.5)
    assert _policies_seen(pair) == {"alpha"}
    pair.process.send_signal(signal.SIGHUP)
    pair.wait_for(lambda: pair.sample("sluicegate_policy_reloads_total", result="success") >= 2)
    assert _policies_seen(pair) == {"bravo"}

    _configmap(pair.tmp / "policies", 2, "charlie")
    pair.wait_for(lambda: pair.sample("sluicegate_policy_reloads_total", result="success") >= 4)
    assert _policies_seen(pair) == {"charlie"}
    assert pair.sample("sluicegate_policy_reloads_total", result="failure") == 0


def test_a_killed_worker_is_restarted_and_its_counts_stay(pair: Server) -> None:
    sent = _chats(pair)
    client = _sdk(pair, new_connections=True)
    for _ in range(6):
        _chat(client, "hi")
    victim = pair.workers()[1]
    os.kill(victim, signal.SIGKILL)
    pair.wait_for(lambda: f"(pid {victim}) exited" in pair.log())
    # the other worker serves meanwhile: no request fails while one is down
    assert [_chat(client, "hi") for _ in range(6)] == ["hi"] * 6
    pair.wait_for(lambda: pair.workers()[1] != victim)
    assert re.search(rf"worker 1 \(pid {victim}\) exited with code -9; restarting", pair.log())
    assert pair.process.poll() is None
    for _ in range(8):
        _chat(client, "hi")
    assert _chats(pair) == sent + 20
    directory = pair.metrics_dir()
    assert directory is not None
    assert not (directory / f"gauge_livesum_{victim}.db").exists()  # its gauges left the sum
    assert pair.sample("sluicegate_active_streams") == 0


def test_sigterm_drains_every_worker(start: Callable[..., Server]) -> None:
    pair = start(2)
    streams = [_Stream(pair, pace_ms=100) for _ in range(4)]
    for stream in streams:
        stream.start()
    for stream in streams:
        assert stream.started.wait(15)
    directory = pair.metrics_dir()
    pair.process.send_signal(signal.SIGTERM)
    pair.wait_for(lambda: _refused(pair), timeout=5)
    for stream in streams:
        stream.join(15)
        assert stream.error is None
        assert (stream.text, stream.finish_reason) == (WORDS, "stop")
    assert pair.process.wait(timeout=15) == 0
    assert "SIGTERM: draining the workers" in pair.log()
    assert "every worker has stopped" in pair.log()
    assert directory is not None and not directory.exists()


# -- one worker ------------------------------------------------------------------------------


def test_sigterm_lets_a_stream_finish_while_readiness_fails(start: Callable[..., Server]) -> None:
    server = start(1, SLUICEGATE_DRAIN_SECONDS="20")
    kept = httpx.Client(base_url=server.root)  # a load balancer's kept-alive probe
    assert kept.get("/readyz").status_code == 200
    stream = _Stream(server, pace_ms=120)
    stream.start()
    assert stream.started.wait(15)
    server.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    probe = kept.get("/readyz")
    while probe.status_code == 200:  # until the signal is handled
        probe = kept.get("/readyz")
    assert (probe.status_code, probe.json()["status"]) == (503, "draining")
    assert probe.headers["Connection"] == "close"
    assert _refused(server)
    assert stream.is_alive()
    stream.join(15)
    assert stream.error is None
    assert (stream.text, stream.finish_reason) == (WORDS, "stop")
    assert server.process.wait(timeout=15) == 0
    assert time.monotonic() - signalled < 10  # gone when the stream was, not at 20 s


def test_the_drain_deadline_ends_a_stream_with_an_error(start: Callable[..., Server]) -> None:
    server = start(1, SLUICEGATE_DRAIN_SECONDS="1")
    stream = _Stream(server, pace_ms=300, text=" ".join(["slow"] * 60))
    stream.start()
    assert stream.started.wait(15)
    server.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    stream.join(15)
    assert isinstance(stream.error, openai.APIError), stream.error
    assert "upstream" in str(stream.error)
    assert stream.text.startswith("slow") and stream.finish_reason is None
    assert time.monotonic() - signalled < 4
    assert server.process.wait(timeout=10) == 0
    assert "drain timeout (1s): ending 1 requests" in server.log()


# -- what the supervisor refuses ---------------------------------------------------------

BROKEN = "version: 1\nname: broken\nrules:\n  - id: x\n    match: {regex: '('}\n    action: flag\n"


def test_the_supervisor_refuses_what_it_cannot_serve(tmp_path: Path) -> None:
    """Exit code 2 and a reason, as ``serve`` gives with one worker, not a restart loop."""
    (tmp_path / "broken.yaml").write_text(BROKEN)
    taken = socket.socket()  # listening without SO_REUSEPORT: no worker can join it
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    cases = {
        "needs a fixed --port": ["--port", "0"],
        "broken.yaml": ["--port", str(_free_port()), "--policy", str(tmp_path / "broken.yaml")],
        "could not start": ["--port", str(taken.getsockname()[1])],
    }
    with taken:
        running = {
            reason: subprocess.Popen(
                [*SERVE, "--workers", "2", *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=_environment(tmp_path),
            )
            for reason, args in cases.items()
        }
        for reason, process in running.items():
            _, stderr = process.communicate(timeout=30)
            assert (process.returncode, reason in stderr) == (2, True), stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_served_process_answers_malformed_http_in_the_openai_format(
    start: Callable[..., Server], workers: int
) -> None:
    """``sluicegate serve`` itself (not only the test runner) uses the gateway's protocol
    layer: a broken header line gets a JSON 400 that echoes none of its bytes."""
    server = start(workers)
    secret = "sk-live-SECRET0123456789"
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(f"GET /v1/models HTTP/1.1\r\nHost: x\r\nBearer {secret}\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"400"
    assert b"application/json" in head
    assert json.loads(body)["error"]["type"] == "invalid_request_error"
    assert secret.encode() not in answer
    assert secret not in server.log()
