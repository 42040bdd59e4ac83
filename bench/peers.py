"""Sluicegate beside its peers, in one run on loopback: one command, one table.

    .venv/bin/python bench/peers.py [--quick] [--plot ttft.png] [--rows direct,nginx,...]

Rows: ``direct`` (the demo upstream itself), ``nginx`` (a relay doing no work, with
``proxy_buffering off``), Sluicegate with no rules, the default policy, a generated
200-rule policy and ``--workers 2``, and LiteLLM's proxy in plain pass-through. nginx is
installed with apt if missing; LiteLLM into its own virtualenv under ``bench/.cache``
(gitignored), never into the project's.

Pinning: each relay runs on the first usable core; the demo upstream and the load run
on the others (``--workers 2`` gets two cores, so it shares with them). The load is a
separate process (this script with ``--load``); that it is never the bottleneck shows in
the ``direct`` row, which must be well above every relay.

Scenarios: saturated (many streams at pace 0, 1 KB and 100 KB answers), and paced bursts
(1, 10, 100, 300 and 1,000 streams arriving together, one word per 20 ms). Columns:

* chunks/s, saturated: upstream chunks delivered per second.
* added time to first chunk p50/p99: the row's percentile minus direct's, per burst.
* added gap p50/p99 (relay work): gaps between the row's chunks minus direct's.
* hold p50/p99: how long a word waited for later events because a rule could still
  match it (an unfinished last word; words x upstream gap), reported apart from relay work.
* CPU per 1,000 chunks (saturated, from ``/proc/<pid>/stat`` of the relay's processes),
  peak RSS, and RSS per open stream (its growth during the largest burst, per stream).
* same-event share: benign characters that left in the event that brought them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from engine import generated_policy_yaml
from relay import ANSWER_WORDS, ROOT, chat_body, free_port, is_chunk, pct, process

LITELLM = "litellm[proxy]==1.106.12"
CACHE = ROOT / "bench" / ".cache"
PACE_MS = 20
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
ROWS = ("direct", "nginx", "none", "default", "rules200", "workers2", "litellm")


@dataclass(frozen=True)
class Plan:
    """What one run measures: the sizes differ between the full run and ``--quick``."""

    sat_streams: int = 50
    sat_rounds: int = 3
    words: int = 170  # about 1 KB of answer
    large_repeat: int = 100  # the answer that many times over: about 100 KB
    large_streams: int = 4
    bursts: tuple[int, ...] = (1, 10, 100, 300, 1000)


QUICK = Plan(
    sat_streams=8,
    sat_rounds=1,
    large_repeat=10,
    large_streams=1,
    bursts=(1, 10, 30),
    words=40,
)


# -- the load (a process of its own) --------------------------------------------------------


def answer_words(words: int) -> list[str]:
    """The upstream's chunks: with word chunking each word after the first has its space."""
    return [("" if i == 0 else " ") + ANSWER_WORDS[i % len(ANSWER_WORDS)] for i in range(words)]


async def _stream(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], keep: bool, start: float
) -> dict[str, Any]:
    """One streamed chat completion: chunk times after ``start``, and texts if ``keep``."""
    times: list[float] = []
    texts: list[str] = []
    async with session.post(url, data=chat_body(), headers=headers) as resp:
        resp.raise_for_status()
        async for line in resp.content:
            if is_chunk(line):
                times.append(time.perf_counter() - start)
                if keep:
                    delta = json.loads(line[6:])["choices"][0]["delta"]
                    texts.append(delta.get("content") or "")
    return {"times": times, "texts": texts}


async def load(spec: dict[str, Any]) -> dict[str, Any]:
    """``streams`` requests sent together; what each received, and the wall time."""
    headers = {
        "Content-Type": "application/json",
        "Authorization": "Bearer bench",
        # A space at the end, so that repeated answers do not glue two words together.
        "X-Demo-Reply": json.dumps("".join(answer_words(spec["words"])) + " "),
        "X-Demo-Repeat": str(spec["repeat"]),
        "X-Demo-Chunking": "word",
        "X-Demo-Pace-Ms": str(spec["pace_ms"]),
    }
    url = f"{spec['base']}/chat/completions"
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        streams = await asyncio.gather(
            *(_stream(session, url, headers, spec["keep"], start) for _ in range(spec["streams"]))
        )
        elapsed = time.perf_counter() - start
    return {"elapsed": elapsed, "streams": streams}


def run_load(spec: dict[str, Any], cpus: set[int]) -> dict[str, Any]:
    """Run the load in its own process on ``cpus``, so it never shares the relay's core."""
    argv = [sys.executable, __file__, "--load", json.dumps(spec)]
    done = subprocess.run(argv, capture_output=True, check=False, preexec_fn=_pin(cpus))
    if done.returncode != 0:
        raise RuntimeError(f"load failed: {done.stderr.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# -- the processes under test ---------------------------------------------------------------


def _pin(cpus: set[int]) -> Callable[[], None]:
    def pin() -> None:
        os.sched_setaffinity(0, cpus)

    return pin


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (nginx's worker, Sluicegate's workers)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                children = Path(f"/proc/{current}/task/{task}/children").read_text()
                todo.extend(int(c) for c in children.split())
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def memory(pids: list[int], key: str) -> int:
    """``VmRSS`` or ``VmHWM`` (peak) summed over ``pids``, in bytes."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    total += int(line.split()[1]) * 1024
    return total


class RssSampler:
    """The relay's largest RSS while a burst is open (polled from a thread)."""

    def __init__(self, pids: list[int]) -> None:
        self.pids, self.peak, self._stop = pids, memory(pids, "VmRSS"), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, memory(self.pids, "VmRSS"))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Row:
    name: str
    base: str
    pid: int | None  # None: the demo upstream itself (nothing in between)
    values: dict[str, Any] = field(default_factory=dict)


def nginx_conf(tmp: Path, port: int, upstream_port: int) -> Path:
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"""worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  upstream demo {{ server 127.0.0.1:{upstream_port}; keepalive 256; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass http://demo;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 300s;
    }}
  }}
}}
"""
    )
    return conf


def ensure_nginx() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found:
        return found
    subprocess.run(["apt-get", "install", "-y", "-q", "nginx-light"], check=True)
    return "/usr/sbin/nginx"


def ensure_litellm() -> Path:
    """LiteLLM's proxy in a virtualenv of its own, built once and kept in ``bench/.cache``."""
    venv = CACHE / f"litellm-{LITELLM.rpartition('==')[2]}"
    binary = venv / "bin" / "litellm"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", LITELLM], check=True)
    return binary


def litellm_config(tmp: Path, upstream: str) -> Path:
    conf = tmp / "litellm.yaml"
    conf.write_text(
        "model_list:\n"
        "  - model_name: demo-chat\n"
        "    litellm_params:\n"
        "      model: openai/demo-chat\n"
        f"      api_base: {upstream}\n"
        "      api_key: bench\n"
        "litellm_settings:\n"
        "  drop_params: true\n"
        "  telemetry: false\n"
    )
    return conf


@contextlib.contextmanager
def started(
    name: str, tmp: Path, upstream: str, upstream_port: int, cores: list[int]
) -> Iterator[Row]:
    """One row's relay running on the relay core, or the upstream itself for ``direct``."""
    if name == "direct":
        yield Row(name, upstream, None)
        return
    port = free_port()
    python = sys.executable
    one = {cores[0]}
    policies = {
        "none": _policy_file(tmp, "none", "version: 1\nname: none\nrules: []\n"),
        "default": ROOT / "policies" / "default.yaml",
        "rules200": _policy_file(tmp, "generated", generated_policy_yaml(200)),
        "workers2": ROOT / "policies" / "default.yaml",
    }
    env: dict[str, str] = {}
    if name == "nginx":
        args = [
            ensure_nginx(),
            "-c",
            str(nginx_conf(tmp, port, upstream_port)),
            "-g",
            "daemon off;",
        ]
    elif name == "litellm":
        conf = litellm_config(tmp, upstream)
        args = [str(ensure_litellm()), "--config", str(conf)]
        args += ["--port", str(port), "--host", "127.0.0.1"]
        # loopback only, no key: the bench measures relaying, not LiteLLM's auth
        env = {"LITELLM_LOG": "ERROR"}
        env["LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY"] = "true"
    else:
        args = [
            python, "-m", "gateway", "serve", "--port", str(port), "--upstream", upstream,
            "--policy", str(policies[name]),
        ]  # fmt: skip
        if name == "workers2":
            args += ["--workers", "2"]
            one = set(cores[:2])
        env = {"SLUICEGATE_LOG_LEVEL": "warning", "SLUICEGATE_POLICY_RELOAD_SECONDS": "0"}
    with process(args, port, env=env, preexec_fn=_pin(one)) as proc:
        yield Row(name, f"http://127.0.0.1:{port}/v1", proc.pid)


def _policy_file(tmp: Path, name: str, text: str) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(text)
    return path


# -- measuring a row ------------------------------------------------------------------------


def saturated(row: Row, plan: Plan, load_cpus: set[int], repeat: int, streams: int) -> None:
    """Best chunks/s of ``sat_rounds`` and the relay's CPU per 1,000 chunks in that round."""
    label = "1kb" if repeat == 1 else "100kb"
    best: tuple[float, float] | None = None
    chunks = streams * (plan.words * repeat + 1)  # the upstream's: words, and a last space
    for _ in range(plan.sat_rounds):
        pids = tree(row.pid) if row.pid else []
        cpu = cpu_seconds(pids)
        got = run_load(_spec(row, streams, plan.words, 0, keep=False, repeat=repeat), load_cpus)
        cost = (cpu_seconds(pids) - cpu) * 1000 / chunks if row.pid else 0.0
        rate = chunks / got["elapsed"]
        if best is None or rate > best[0]:
            best = (rate, cost)
    assert best is not None
    row.values[f"rate_{label}"], row.values[f"cpu_{label}"] = best


def paced(row: Row, plan: Plan, load_cpus: set[int]) -> None:
    """Every burst size: first-chunk times, gaps, holds, and the same-event share."""
    for burst in plan.bursts:
        pids = tree(row.pid) if row.pid else []
        before = memory(pids, "VmRSS")
        with RssSampler(pids) as rss:
            got = run_load(_spec(row, burst, plan.words, PACE_MS, keep=True), load_cpus)
        streams = got["streams"]
        ttft = [s["times"][0] for s in streams if s["times"]]
        gaps = [b - a for s in streams for a, b in zip(s["times"], s["times"][1:], strict=False)]
        holds, same, total = _holds(streams, [*answer_words(plan.words), " "])
        row.values[burst] = {
            "ttft": ttft,
            "gaps": gaps,
            "holds": holds,
            "same": same / max(total, 1),
            "rss_per_stream": (rss.peak - before) / burst if pids else 0.0,
        }
    if row.pid:
        row.values["peak_rss"] = memory(tree(row.pid), "VmHWM")


def _holds(streams: list[dict[str, Any]], chunks: list[str]) -> tuple[list[float], int, int]:
    """Seconds each upstream chunk waited for later events, and characters that did not.

    An output event's last character says which upstream chunk let it go; its other
    characters from earlier chunks waited that many upstream gaps (``PACE_MS`` each).
    """
    owner: list[int] = [i for i, c in enumerate(chunks) for _ in c]
    holds: list[float] = []
    same = total = 0
    for stream in streams:
        offset = 0
        for text in stream["texts"]:
            if not text:
                continue
            end = min(offset + len(text), len(owner))
            trigger = owner[end - 1]
            for pos in range(offset, end):
                waited = trigger - owner[pos]
                same += waited == 0
                total += 1
            waited_chunks = {owner[pos] for pos in range(offset, end)}
            holds += [(trigger - c) * PACE_MS / 1000 for c in sorted(waited_chunks)]
            offset = end
    return holds, same, total


def _spec(
    row: Row, streams: int, words: int, pace_ms: int, keep: bool, repeat: int = 1
) -> dict[str, Any]:
    return {
        "base": row.base,
        "streams": streams,
        "words": words,
        "pace_ms": pace_ms,
        "keep": keep,
        "repeat": repeat,
    }


# -- the table ------------------------------------------------------------------------------


def table(rows: list[Row], plan: Plan) -> str:
    direct = next((r for r in rows if r.name == "direct"), None)
    out: list[str] = []
    out.append(
        "| row | chunks/s 1 KB | chunks/s 100 KB | CPU ms / 1k chunks | peak RSS MiB |"
        " KiB / open stream | same-event share |"
    )
    out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    largest = plan.bursts[-1]
    for row in rows:
        v = row.values
        burst = v.get(largest, {})
        out.append(
            f"| {row.name} | {v.get('rate_1kb', 0):,.0f} | {v.get('rate_100kb', 0):,.0f} |"
            f" {v.get('cpu_1kb', 0):.1f} | {v.get('peak_rss', 0) / 2**20:.0f} |"
            f" {burst.get('rss_per_stream', 0) / 1024:.1f} | {burst.get('same', 0):.0%} |"
        )
    out.append("")
    out.append(
        f"Paced ({PACE_MS} ms per chunk), per burst size: added time to first chunk p50/p99,"
        " added gap p50/p99 (relay work), hold p50/p99 (oracle), in ms"
    )
    out.append("")
    out.append("| row | burst | TTFT p50 | TTFT p99 | gap p50 | gap p99 | hold p50 | hold p99 |")
    out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        for burst in plan.bursts:
            got = row.values.get(burst)
            ref = direct.values.get(burst) if direct else None
            if not got or not got["ttft"]:
                continue
            cells = []
            for key in ("ttft", "gaps"):
                for q in (0.5, 0.99):
                    base = pct(ref[key], q) if ref and ref[key] and row is not direct else 0.0
                    cells.append(f"{(pct(got[key], q) - base) * 1000:+.1f}")
            for q in (0.5, 0.99):
                cells.append(f"{pct(got['holds'], q) * 1000:.0f}" if got["holds"] else "0")
            out.append(f"| {row.name} | {burst} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def plot(rows: list[Row], plan: Plan, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for index, row in enumerate(rows):
        color = f"C{index}"  # one colour per row: its p50 solid, its p99 dashed
        points = [(b, row.values[b]["ttft"]) for b in plan.bursts if row.values.get(b)]
        points = [(b, t) for b, t in points if t]
        if points:
            xs = [b for b, _ in points]
            ax.plot(
                xs,
                [pct(t, 0.5) * 1000 for _, t in points],
                marker="o",
                color=color,
                label=f"{row.name} p50",
            )
            ax.plot(
                xs,
                [pct(t, 0.99) * 1000 for _, t in points],
                ls="--",
                alpha=0.6,
                color=color,
                label=f"{row.name} p99",
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("streams arriving together")
    ax.set_ylabel(f"time to first chunk, ms ({PACE_MS} ms per chunk)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


# -- the command ----------------------------------------------------------------------------


def main() -> None:
    if sys.argv[1:2] == ["--load"]:
        print(json.dumps(asyncio.run(load(json.loads(sys.argv[2])))))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--plot", type=Path, help="write a PNG of TTFT against burst size")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"some of {','.join(ROWS)}")
    args = parser.parse_args()
    plan = QUICK if args.quick else Plan()
    names = [n for n in args.rows.split(",") if n]
    if unknown := set(names) - set(ROWS):
        parser.error(f"unknown rows: {', '.join(sorted(unknown))}")
    rows = measure(names, plan)
    print(table(rows, plan))
    if args.plot:
        plot(rows, plan, args.plot)
        print(f"\nwrote {args.plot}")


def measure(names: list[str], plan: Plan) -> list[Row]:
    cpus = sorted(os.sched_getaffinity(0))
    cores = cpus if len(cpus) > 1 else cpus * 2
    others = set(cores[1:])
    _raise_file_limit()
    os.environ.setdefault("SLUICEGATE_LOG_LEVEL", "warning")
    print(f"relay on core {cores[0]}, upstream and load on {sorted(others)}", file=sys.stderr)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="sluicegate-peers-") as scratch:
        tmp = Path(scratch)
        demo_port = free_port()
        demo = [
            sys.executable, "-c",
            "from aiohttp import web; from gateway.demo import create_demo_app; "
            f"web.run_app(create_demo_app(), host='127.0.0.1', port={demo_port}, "
            "print=None, backlog=4096)",
        ]  # fmt: skip
        upstream = f"http://127.0.0.1:{demo_port}/v1"
        with process(demo, demo_port, preexec_fn=_pin(others)):
            for name in names:
                print(f"measuring {name}", file=sys.stderr)
                with started(name, tmp, upstream, demo_port, cores) as row:
                    saturated(row, plan, others, 1, plan.sat_streams)
                    saturated(row, plan, others, plan.large_repeat, plan.large_streams)
                    paced(row, plan, others)
                rows.append(row)
    return rows


def _raise_file_limit() -> None:
    """A 1,000-stream burst holds two sockets per stream in a relay: lift the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))


if __name__ == "__main__":
    main()
