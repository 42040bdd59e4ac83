"""Many concurrent streams straight to the demo upstream vs through the gateway, in one run.

    .venv/bin/python bench/relay.py [--streams 50] [--rounds 3] [--words 200]

The demo upstream and the gateway run as separate processes on loopback, the load comes
from this one; both paths see the same upstream and the same client, so the printed
ratios cancel out machine noise. Reported: chunks/s, time to first token, and per-chunk
latency (arrival of chunk i after the request, gateway minus direct, matched by i).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
ANSWER_WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "writes",
    "a",
    "long",
    "and",
    "harmless",
    "answer",
    "about",
    "streaming",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def process(
    args: list[str],
    port: int,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """``args`` running until the block ends, once ``port`` accepts connections."""
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=os.environ | (env or {}),
        preexec_fn=preexec_fn,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"{args} did not start: {proc.stderr.read() if proc.stderr else ''}")
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def one_stream(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> list[float]:
    """Arrival time of every content chunk, seconds after the request was sent."""
    start = time.perf_counter()
    arrivals: list[float] = []
    async with session.post(url, data=body, headers=headers) as resp:
        resp.raise_for_status()
        async for line in resp.content:
            if is_chunk(line):
                arrivals.append(time.perf_counter() - start)
    return arrivals


def is_chunk(line: bytes) -> bool:
    """An SSE line carrying a chat delta's ``content`` (the first one, beside the role,
    is empty): what an SDK hands the application as a chunk."""
    return line.startswith(b"data: {") and b'"content"' in line


def answer_of(lines: list[bytes]) -> str:
    """The text a client assembles from a streamed chat completion's lines."""
    return "".join(
        json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for line in lines
        if is_chunk(line)
    )


def answer_text(words: int) -> str:
    """A harmless answer of ``words`` words; with word chunking, one chunk per word."""
    return " ".join(ANSWER_WORDS[i % len(ANSWER_WORDS)] for i in range(words))


def chat_body(content: str = "hi") -> bytes:
    return json.dumps(
        {"model": "demo-chat", "stream": True, "messages": [{"role": "user", "content": content}]}
    ).encode()


async def run(base: str, streams: int, words: int, pace_ms: int) -> tuple[float, list[list[float]]]:
    headers = {
        "Content-Type": "application/json",
        "Authorization": "Bearer bench",
        "X-Demo-Reply": json.dumps(answer_text(words)),
        "X-Demo-Pace-Ms": str(pace_ms),
    }
    body = chat_body()
    connector = aiohttp.TCPConnector(limit=streams)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        results = await asyncio.gather(
            *(
                one_stream(session, f"{base}/chat/completions", body, headers)
                for _ in range(streams)
            )
        )
        elapsed = time.perf_counter() - start
    return elapsed, list(results)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(seconds: float) -> float:
    return seconds * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--words", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    demo_port, gateway_port = free_port(), free_port()
    python = sys.executable
    demo = [
        python,
        "-c",
        "from aiohttp import web; from gateway.demo import create_demo_app; "
        f"web.run_app(create_demo_app(), host='127.0.0.1', port={demo_port}, print=None)",
    ]
    env_policy = str(ROOT / "policies" / "default.yaml")
    gateway = [
        python, "-m", "gateway", "serve", "--port", str(gateway_port),
        "--upstream", f"http://127.0.0.1:{demo_port}/v1", "--policy", env_policy,
    ]  # fmt: skip
    os.environ.setdefault("SLUICEGATE_LOG_LEVEL", "warning")
    with process(demo, demo_port), process(gateway, gateway_port):
        direct_url = f"http://127.0.0.1:{demo_port}/v1"
        gateway_url = f"http://127.0.0.1:{gateway_port}/v1"
        for label, pace in (("throughput (pace 0 ms)", 0), ("latency (pace 5 ms)", 5)):
            best: dict[str, tuple[float, list[list[float]]]] = {}
            for _ in range(args.rounds):
                for name, url in (("direct", direct_url), ("gateway", gateway_url)):
                    result = asyncio.run(run(url, args.streams, args.words, pace))
                    if name not in best or result[0] < best[name][0]:
                        best[name] = result
            shape = f"{args.streams} concurrent streams x {args.words} chunks"
            print(f"\n{label}: {shape}, best of {args.rounds}")
            rates = {}
            for name, (elapsed, arrivals) in best.items():
                chunks = sum(len(a) for a in arrivals)
                rates[name] = chunks / elapsed
                ttft = [a[0] for a in arrivals if a]
                print(
                    f"  {name:8s} {rates[name]:10,.0f} chunks/s   "
                    f"ttft p50 {ms(pct(ttft, 0.5)):7.2f} ms  p99 {ms(pct(ttft, 0.99)):7.2f} ms"
                )
            added = [
                g - d
                for gs, ds in zip(best["gateway"][1], best["direct"][1], strict=False)
                for g, d in zip(gs, ds, strict=False)
            ]
            first = [
                g[0] - d[0]
                for g, d in zip(best["gateway"][1], best["direct"][1], strict=False)
                if g and d
            ]
            print(
                f"  gateway/direct throughput ratio {rates['gateway'] / rates['direct']:.2f}; "
                f"added ttft p50 {statistics.median(first) * 1000:.2f} ms; "
                f"added per-chunk latency p50 {ms(pct(added, 0.5)):.2f} ms, "
                f"p99 {ms(pct(added, 0.99)):.2f} ms"
            )


if __name__ == "__main__":
    main()
