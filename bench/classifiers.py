"""What a classifier on the stream costs, beside the ways other systems do it, in one run.

    .venv/bin/python bench/classifiers.py [--words 300] [--pace-ms 20] [--latency-ms 100 300]

A 300-word answer at one token per 20 ms from the demo upstream; the demo's moderation
endpoint answers after the given latency. Rows, each measured in this run over loopback:

* ``direct``: the upstream with no moderation (the baseline every delta is taken from);
* ``whole answer``: buffer everything, one verdict, then send (what Portkey/Cloudflare-
  style post-hoc checks amount to if they must not leak);
* ``200-token chunks``: NeMo Guardrails' streaming output rails (chunk 200, context 50),
  by default streaming each chunk *before* its check — the leak column shows the cost;
* ``sluicegate hold`` / ``sluicegate async``: the gateway with ``kind: moderation``.

Columns: added time to first token and added total time against ``direct`` (benign
answer), and characters of a flagged sentence that reached the client before the cut
(the same answer with one violent sentence in the middle).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from relay import free_port, process

PROSE = "the river runs past old mills and quiet fields where people walk in the evening"
WORDS = PROSE.split(" ")
FLAGGED = "Then they planned to attack the village at night."

POLICY = """version: 1
name: {name}
rules:
  - id: harm
    scope: [output]
    match:
      classifier: {{kind: moderation, mode: {mode}, timeout_seconds: 10}}
    action: block
"""


def answer(words: int, harmful: bool) -> str:
    """Twelve-word sentences, each numbered so no two are alike (the verdict cache would
    otherwise answer the repeats and hide the classifier's latency)."""
    sentences, count = [], 0
    while count < words:
        body = " ".join(WORDS[(count + i) % len(WORDS)] for i in range(11))
        sentences.append(f"Part {count // 12} {body}.")
        count += 12
        if harmful and abs(count - words // 2) < 12:
            sentences.append(FLAGGED)
    return " ".join(sentences)


@dataclass
class Result:
    ttft: float
    total: float
    text: str


async def stream(
    session: aiohttp.ClientSession, url: str, text: str, pace: int, policy: str
) -> Result:
    headers = {
        "Authorization": "Bearer bench",
        "X-Demo-Reply": json.dumps(text),
        "X-Demo-Pace-Ms": str(pace),
        "X-Sluicegate-Policy": policy,
    }
    body = {"model": "demo", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    start = time.perf_counter()
    first, out = None, []
    async with session.post(f"{url}/chat/completions", json=body, headers=headers) as resp:
        async for line in resp.content:
            if not line.startswith(b"data: {"):
                continue
            for choice in json.loads(line[6:]).get("choices", []):
                piece = (choice.get("delta") or {}).get("content") or ""
                if piece and first is None:
                    first = time.perf_counter() - start
                out.append(piece)
    total = time.perf_counter() - start
    return Result(first if first is not None else total, total, "".join(out))


async def moderate(session: aiohttp.ClientSession, demo: str, text: str) -> bool:
    async with session.post(f"{demo}/moderations", json={"input": text}) as resp:
        return bool((await resp.json())["results"][0]["flagged"])


async def whole_answer(session: aiohttp.ClientSession, demo: str, text: str, pace: int) -> Result:
    """Read it all, judge it once, then send it (nothing at all if flagged)."""
    got = await stream(session, demo, text, pace, "")
    start = time.perf_counter()
    flagged = await moderate(session, demo, got.text)
    total = got.total + (time.perf_counter() - start)
    return Result(total, total, "" if flagged else got.text)


async def chunked(
    session: aiohttp.ClientSession, demo: str, text: str, pace: int, chunk: int = 200
) -> Result:
    """NeMo-style: tokens stream at once; every ``chunk`` tokens (plus 50 of context) are
    checked while the stream goes on, and a flag stops it when its verdict arrives."""
    headers = {"X-Demo-Reply": json.dumps(text), "X-Demo-Pace-Ms": str(pace)}
    body = {"model": "demo", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    start = time.perf_counter()
    first, sent, tokens = None, [], []
    checks: list[asyncio.Task[bool]] = []
    stopped = False
    async with session.post(f"{demo}/chat/completions", json=body, headers=headers) as resp:
        async for line in resp.content:
            if stopped or any(t.done() and t.result() for t in checks):
                stopped = True
                break
            if not line.startswith(b"data: {"):
                continue
            for choice in json.loads(line[6:]).get("choices", []):
                piece = (choice.get("delta") or {}).get("content") or ""
                if not piece:
                    continue
                first = first if first is not None else time.perf_counter() - start
                sent.append(piece)
                tokens.append(piece)
                if len(tokens) % chunk == 0:
                    window = "".join(tokens[-(chunk + 50) :])
                    checks.append(asyncio.create_task(moderate(session, demo, window)))
    if not stopped:
        window = "".join(tokens[-(len(tokens) % chunk + 50) :])
        checks.append(asyncio.create_task(moderate(session, demo, window)))
        await asyncio.gather(*checks)
    total = time.perf_counter() - start
    return Result(first or total, total, "".join(sent))


def leaked(text: str) -> int:
    """Characters of the flagged sentence the client received."""
    at = text.find(FLAGGED[:12])
    if at < 0:
        return 0
    count = 0
    for got, want in zip(text[at:], FLAGGED, strict=False):
        if got != want:
            break
        count += 1
    return count


async def measure(
    demo: str, gateway: str, words: int, pace: int, latency: int
) -> list[tuple[str, Result, Result]]:
    # Each row gets its own text of the same length, so no row is served from another
    # row's verdict cache and every total compares equal amounts of text.
    def texts(row: str) -> tuple[str, str]:
        tag = f"Run {row}{latency:04d}. "
        return tag + answer(words, False), tag + answer(words, True)

    async with aiohttp.ClientSession() as session:
        url = demo.removesuffix("/v1") + "/demo/classifiers"
        async with session.post(url, json={"latency_ms": latency, "reset": True}):
            pass
        # One stream first, so the gateway's connection to the classifier is open (as it
        # is in any running gateway) and no row pays for its set-up.
        await stream(session, gateway, f"Warm up {latency}. Done.", pace, "hold")
        ok, bad = texts("d")
        direct = (
            await stream(session, demo, ok, pace, ""),
            await stream(session, demo, bad, pace, ""),
        )
        rows = [("direct", *direct)]
        ok, bad = texts("w")
        whole = (
            await whole_answer(session, demo, ok, pace),
            await whole_answer(session, demo, bad, pace),
        )
        rows.append(("whole answer", *whole))
        ok, bad = texts("c")
        chunks = (await chunked(session, demo, ok, pace), await chunked(session, demo, bad, pace))
        rows.append(("200-token chunks", *chunks))
        for name in ("hold", "async"):
            ok, bad = texts(name[0])
            ours = (
                await stream(session, gateway, ok, pace, name),
                await stream(session, gateway, bad, pace, name),
            )
            rows.append((f"sluicegate {name}", *ours))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--words", type=int, default=300)
    parser.add_argument("--pace-ms", type=int, default=20)
    parser.add_argument("--latency-ms", type=int, nargs="+", default=[100, 300])
    args = parser.parse_args()
    demo_port, gateway_port = free_port(), free_port()
    python = sys.executable
    demo_cmd = [
        python, "-c",
        "from aiohttp import web; from gateway.demo import create_demo_app; "
        f"web.run_app(create_demo_app(), host='127.0.0.1', port={demo_port}, print=None)",
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        for mode in ("hold", "async"):
            Path(folder, f"{mode}.yaml").write_text(POLICY.format(name=mode, mode=mode))
        Path(folder, "none.yaml").write_text("version: 1\nname: none\n")
        gateway_cmd = [
            python, "-m", "gateway", "serve", "--port", str(gateway_port),
            "--upstream", f"http://127.0.0.1:{demo_port}/v1", "--policy", folder,
        ]  # fmt: skip
        os.environ.setdefault("SLUICEGATE_LOG_LEVEL", "warning")
        os.environ["SLUICEGATE_DEFAULT_POLICY"] = "none"
        with process(demo_cmd, demo_port), process(gateway_cmd, gateway_port):
            demo, gateway = (
                f"http://127.0.0.1:{demo_port}/v1",
                f"http://127.0.0.1:{gateway_port}/v1",
            )
            print(f"{args.words} words at {args.pace_ms} ms a token; added = minus direct\n")
            for latency in args.latency_ms:
                rows = asyncio.run(measure(demo, gateway, args.words, args.pace_ms, latency))
                base = rows[0][1]
                print(f"classifier latency {latency} ms")
                print("| row | time to first token | added | total | added | leaked chars |")
                print("| --- | ---: | ---: | ---: | ---: | ---: |")
                for label, ok, bad in rows:
                    first, total = ok.ttft - base.ttft, ok.total - base.total
                    leak = leaked(bad.text) if label != "direct" else "—"
                    print(
                        f"| {label} | {ok.ttft * 1000:.0f} ms | {first * 1000:+.0f} ms "
                        f"| {ok.total * 1000:.0f} ms | {total * 1000:+.0f} ms | {leak} |"
                    )
                print()


if __name__ == "__main__":
    main()
