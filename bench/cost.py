"""Instructions per request and per chunk the gateway adds, counted by callgrind.

    .venv/bin/python bench/cost.py [--scenarios 8x40,16x160] [--policy PATH]

Wall-clock figures on a shared machine are noise; an instruction count of a fixed
scenario is not (it moves by well under a percent between runs), so a regression shows
in one run. Each measurement is one ``valgrind --tool=callgrind`` process that runs the
demo upstream, the gateway (``GatewayRunner``, as ``sluicegate serve`` runs it) and an
aiohttp client on one event loop over loopback, warms every path up with one request,
then sends N requests of M word-chunks one after another. Only those requests are
counted: they run inside ``sys.call_tracing``, the one C function callgrind collects in
(``--toggle-collect``), so start-up, policy compilation and teardown are left out.

The same scenario straight to the upstream is counted too and subtracted, so what is left
is the gateway's own work (its server side, its upstream client, the moderation). Two
scenarios with different N and M give two equations, ``added = N*request + N*M*chunk``,
solved for both. The upstream yields to the loop between events, so every event reaches
the gateway in a read of its own, as on a network at any real pace.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp
from aiohttp import web
from relay import ROOT, answer_of, answer_text, chat_body

from gateway.demo import create_demo_app
from gateway.proxy.app import create_app
from gateway.proxy.protocol import GatewayRunner
from gateway.proxy.server import configure_process
from gateway.settings import Settings

DEFAULT_POLICY = ROOT / "policies" / "default.yaml"
COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def child(requests: int, chunks: int, gateway: bool, policy: Path) -> None:
    """The measured process: servers up, one warm-up, then the counted requests."""
    # Logging and the event loop policy (uvloop where installed), as ``serve`` sets them.
    configure_process(Settings(_env_file=None, log_level="warning"))  # type: ignore[call-arg]
    loop = asyncio.new_event_loop()
    runners: list[web.AppRunner] = []

    async def start() -> tuple[str, aiohttp.ClientSession]:
        demo = web.AppRunner(create_demo_app(pace=0.0))
        await demo.setup()
        await web.TCPSite(demo, "127.0.0.1", 0).start()
        upstream = f"http://127.0.0.1:{demo.addresses[0][1]}/v1"
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            upstream_url=upstream,
            policy=policy,
            policy_reload_seconds=0,
            keepalive_seconds=0,
            log_level="warning",
        )
        proxy = GatewayRunner(create_app(settings))
        await proxy.setup()
        await web.TCPSite(proxy, "127.0.0.1", 0).start()
        runners.extend((proxy, demo))
        base = f"http://127.0.0.1:{proxy.addresses[0][1]}/v1" if gateway else upstream
        return base, aiohttp.ClientSession()

    base, session = loop.run_until_complete(start())
    headers = {
        "Content-Type": "application/json",
        "Authorization": "Bearer bench",
        "X-Demo-Reply": json.dumps(answer_text(chunks)),
        "X-Demo-Chunking": "word",
    }
    body = chat_body()

    async def one() -> list[bytes]:
        async with session.post(f"{base}/chat/completions", data=body, headers=headers) as r:
            r.raise_for_status()
            return [line async for line in r.content]

    async def counted() -> list[list[bytes]]:
        return [await one() for _ in range(requests)]

    loop.run_until_complete(one())  # connection pools, lazy imports, first-use caches
    answers = sys.call_tracing(loop.run_until_complete, (counted(),))
    loop.run_until_complete(session.close())
    for runner in runners:
        loop.run_until_complete(runner.cleanup())
    loop.close()
    if {answer_of(lines) for lines in answers} != {answer_text(chunks)}:
        raise SystemExit("an answer did not arrive whole: the scenario measured something else")


def instructions(requests: int, chunks: int, gateway: bool, policy: Path) -> int:
    """Instructions callgrind collected in one scenario (a fresh process each time)."""
    env = os.environ | {"PYTHONHASHSEED": "0", "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        argv = [
            "valgrind", "--tool=callgrind", "--collect-atstart=no",
            "--toggle-collect=sys_call_tracing", f"--callgrind-out-file={tmp}/cg.out",
            sys.executable, __file__, "--child",
            f"{requests}x{chunks}", "gateway" if gateway else "direct", str(policy),
        ]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    found = COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"callgrind run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return int(found.group(1))


def solve(scenarios: list[tuple[int, int, int]]) -> tuple[float, float]:
    """Per-request and per-chunk cost from two (N, M, added) scenarios (Cramer's rule)."""
    (n1, m1, a1), (n2, m2, a2) = scenarios
    # a = n*r + n*m*c for each scenario.
    det = n1 * n2 * m2 - n2 * n1 * m1
    if det == 0:
        raise SystemExit("the two scenarios need different chunk counts")
    request = (a1 * n2 * m2 - a2 * n1 * m1) / det
    chunk = (n1 * a2 - n2 * a1) / det
    return request, chunk


def parse_scenario(text: str) -> tuple[int, int]:
    requests, _, chunks = text.partition("x")
    return int(requests), int(chunks)


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        shape, path, policy = sys.argv[2:5]
        child(*parse_scenario(shape), path == "gateway", Path(policy))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenarios", default="8x40,16x160", help="two NxM, comma-separated")
    parser.add_argument("--policy", type=Path, default=DEFAULT_POLICY)
    args = parser.parse_args()
    shapes = [parse_scenario(s) for s in args.scenarios.split(",")]
    if len(shapes) != 2:
        parser.error("--scenarios takes exactly two NxM")
    print(f"policy {args.policy.name}; instructions collected by callgrind")
    print(f"{'scenario':>10} {'direct':>15} {'gateway':>15} {'added':>15}")
    added: list[tuple[int, int, int]] = []
    for requests, chunks in shapes:
        direct = instructions(requests, chunks, False, args.policy)
        through = instructions(requests, chunks, True, args.policy)
        added.append((requests, chunks, through - direct))
        print(f"{requests:>4}x{chunks:<5} {direct:>15,} {through:>15,} {through - direct:>15,}")
    request, chunk = solve(added)
    print(f"gateway adds {request:,.0f} instructions/request and {chunk:,.0f} instructions/chunk")


if __name__ == "__main__":
    main()
