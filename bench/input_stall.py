"""Does one big body stall everyone else? ``/healthz`` latency while it is moderated.

    .venv/bin/python bench/input_stall.py [--mb 10 32] [--response-mb 16] [--small 200]
                                          [--mode both|before|after]

The gateway (``sluicegate serve`` with the default policy) and a stub upstream run as
separate processes on loopback; this one sends one big benign request (``--mb``, a chat
conversation of 8 KB messages) and, meanwhile, probes ``/healthz`` every 10 ms. It prints
the probe's worst and p99 latency while the big request was in flight and the big
request's own time. ``--response-mb`` does the same for a non-streamed answer that big
(moderated whole). ``--small`` times that many small requests one after the other: the
cost a size threshold must keep off ordinary traffic.

The stub upstream answers every request with a short chat completion (or, with an
``X-Bench-Reply-Bytes`` header, one whose message is that many bytes), so the upstream's
own work is out of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from relay import ROOT, free_port, ms, pct, process

_STUB = """
import sys
import orjson
from aiohttp import web

async def answer(request):
    await request.read()
    size = int(request.headers.get("X-Bench-Reply-Bytes", "16"))
    text = ("a harmless line of answer text. " * (size // 32 + 1))[:size]
    body = {"id": "c", "object": "chat.completion", "created": 0, "model": "stub",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}]}
    return web.Response(body=orjson.dumps(body), content_type="application/json")

app = web.Application(client_max_size=1 << 30)
app.router.add_post("/v1/chat/completions", answer)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""

_NO_TIMEOUT = aiohttp.ClientTimeout(total=None)  # on the loop, a big answer takes minutes
_LINE = "Please summarise this harmless paragraph about rivers, weather and gardens. "


def big_request(megabytes: float) -> bytes:
    """A conversation of 8 KB messages adding up to ``megabytes`` of benign text."""
    message = (_LINE * (8192 // len(_LINE) + 1))[:8192]
    count = max(1, int(megabytes * 1024 * 1024) // 8192)
    messages = [{"role": "user", "content": f"{i} {message}"} for i in range(count)]
    return orjson.dumps({"model": "stub", "messages": messages})


async def probe(session: aiohttp.ClientSession, url: str, stop: asyncio.Event) -> list[float]:
    """``/healthz`` round trips, every 10 ms until ``stop``."""
    latencies: list[float] = []
    while not stop.is_set():
        start = time.perf_counter()
        async with session.get(url) as resp:
            await resp.read()
        latencies.append(time.perf_counter() - start)
        await asyncio.sleep(0.01)
    return latencies


async def stalled(base: str, body: bytes, headers: dict[str, str]) -> tuple[float, list[float]]:
    """The big request's time and the probe's latencies while it ran."""
    health = base.removesuffix("/v1") + "/healthz"
    async with (
        aiohttp.ClientSession(timeout=_NO_TIMEOUT) as session,
        aiohttp.ClientSession(timeout=_NO_TIMEOUT) as prober,
    ):
        stop = asyncio.Event()
        probing = asyncio.create_task(probe(prober, health, stop))
        await asyncio.sleep(0.2)
        start = time.perf_counter()
        async with session.post(f"{base}/chat/completions", data=body, headers=headers) as resp:
            answer = await resp.read()
            status = resp.status
        took = time.perf_counter() - start
        stop.set()
        latencies = await probing
    if status != 200:
        raise RuntimeError(f"the big request got {status}: {answer[:300]!r}")
    return took, latencies


async def small(base: str, count: int, headers: dict[str, str]) -> list[float]:
    body = b'{"model":"stub","messages":[{"role":"user","content":"hello, how are you?"}]}'
    times: list[float] = []
    async with aiohttp.ClientSession(timeout=_NO_TIMEOUT) as session:
        for _ in range(count):
            start = time.perf_counter()
            async with session.post(f"{base}/chat/completions", data=body, headers=headers) as r:
                await r.read()
            times.append(time.perf_counter() - start)
    return times


def report(label: str, took: float, latencies: list[float]) -> None:
    print(
        f"  {label:28s} took {took:6.2f} s   healthz during it: max {ms(max(latencies)):8.1f} ms"
        f"  p99 {ms(pct(latencies, 0.99)):7.1f} ms  p50 {ms(pct(latencies, 0.5)):6.1f} ms"
        f"  ({len(latencies)} probes)",
        flush=True,
    )


#: ``SLUICEGATE_OFFLOAD_BYTES`` of each mode: nothing is ever big enough to leave the loop
#: (the gateway before bodies were moderated off it), and the shipped default.
MODES = {"before": str(1 << 62), "after": None}


def measure(args: argparse.Namespace, upstream_port: int, offload: str | None) -> None:
    gateway_port = free_port()
    policy = str(ROOT / "policies" / "default.yaml")
    gateway = [
        sys.executable, "-m", "gateway", "serve", "--port", str(gateway_port),
        "--upstream", f"http://127.0.0.1:{upstream_port}/v1", "--policy", policy,
    ]  # fmt: skip
    os.environ.pop("SLUICEGATE_OFFLOAD_BYTES", None)
    if offload is not None:
        os.environ["SLUICEGATE_OFFLOAD_BYTES"] = offload
    headers = {"Content-Type": "application/json", "Authorization": "Bearer bench"}
    with process(gateway, gateway_port):
        base = f"http://127.0.0.1:{gateway_port}/v1"
        asyncio.run(small(base, 5, headers))  # warm up
        for megabytes in args.mb:
            body = big_request(megabytes)
            took, latencies = asyncio.run(stalled(base, body, headers))
            report(f"{len(body) / 2**20:.1f} MB request", took, latencies)
        for megabytes in args.response_mb:
            size = {"X-Bench-Reply-Bytes": str(int(megabytes * 1024 * 1024) - 4096)}
            body = b'{"model":"stub","messages":[{"role":"user","content":"hi"}]}'
            took, latencies = asyncio.run(stalled(base, body, headers | size))
            report(f"{megabytes:g} MB non-streamed answer", took, latencies)
        if args.small:
            times = asyncio.run(small(base, args.small, headers))
            print(
                f"  {args.small} small requests, one at a time: "
                f"p50 {ms(statistics.median(times)):.2f} ms  p99 {ms(pct(times, 0.99)):.2f} ms"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=float, nargs="*", default=[10.0, 32.0])
    parser.add_argument("--response-mb", type=float, nargs="*", default=[16.0])
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--mode", choices=["both", *MODES], default="both")
    args = parser.parse_args()
    os.environ.setdefault("SLUICEGATE_LOG_LEVEL", "warning")
    # Room for the biggest body asked for (the defaults are the shipped limits), and scan
    # time for all of it: the figures are about the loop, not the scan-time budget.
    limit = int(max([*args.mb, 1]) * 1024 * 1024) + (1 << 20)
    os.environ["SLUICEGATE_MAX_REQUEST_BYTES"] = str(max(limit, 32 << 20))
    os.environ["SLUICEGATE_SCAN_BUDGET_MS"] = str(3_600_000)
    upstream_port = free_port()
    with process([sys.executable, "-c", _STUB, str(upstream_port)], upstream_port):
        for mode, offload in MODES.items():
            if args.mode not in ("both", mode):
                continue
            where = "on the loop" if offload is not None else "off the loop"
            print(f"{mode}: moderated {where}, default policy, non-streamed:", flush=True)
            measure(args, upstream_port, offload)


if __name__ == "__main__":
    main()
