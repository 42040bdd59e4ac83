"""Per-event cost of the protocol adapters, against a no-work JSON round trip.

Run: ``.venv/bin/python bench/adapters.py [--events 2400] [--repeat 5]``

Why: every upstream event costs one parse, one moderation and one serialization in the
adapter, and default deny (every member of every event is checked) adds to that. The
baseline in the same run is what a relay that parses and re-serializes each event must
pay anyway (``orjson.loads`` + ``orjson.dumps``), so the ratio cancels machine noise.
Rows: plain content chunks, the same with an OpenRouter-style unknown member in every
delta, and a Responses stream of ``output_text.delta`` events.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

import orjson

from gateway.adapters import ADAPTERS
from gateway.adapters.base import ApiAdapter
from gateway.policy import DEFAULT_POLICY, load_file
from gateway.sluice import SluiceConfig

DELTA = "response.output_text.delta"

WORDS = ("The quick brown fox jumps over the lazy dog and keeps running " * 400).split(" ")
ENVELOPE = {
    "id": "chatcmpl-abc123",
    "object": "chat.completion.chunk",
    "created": 1700000000,
    "model": "gpt-4o-mini-2024-07-18",
    "system_fingerprint": "fp_123abc",
    "service_tier": "default",
}


def chat_events(n: int, extra: bool) -> list[str]:
    out = []
    for word in WORDS[:n]:
        delta: dict[str, object] = {"content": " " + word}
        if extra:
            delta["reasoning_details"] = [{"type": "reasoning.text", "text": word, "index": 0}]
        entry = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
        out.append(orjson.dumps({**ENVELOPE, "choices": [entry]}).decode())
    return out


def responses_events(n: int) -> list[str]:
    return [
        orjson.dumps(
            {
                "type": "response.output_text.delta",
                "sequence_number": i,
                "item_id": "msg_1",
                "output_index": 0,
                "content_index": 0,
                "delta": " " + word,
                "logprobs": [],
            }
        ).decode()
        for i, word in enumerate(WORDS[:n])
    ]


def best(repeat: int, run: Callable[[], None]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def _moderate(
    adapter: ApiAdapter, config: SluiceConfig, events: list[str], name: str | None
) -> None:
    moderator = adapter.stream({}, config)
    for data in events:
        moderator.on_event(data, name)


def _round_trip(events: list[str]) -> None:
    for data in events:
        orjson.dumps(orjson.loads(data))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2400)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    config = load_file(DEFAULT_POLICY).output
    rows = [
        ("chat content", "/v1/chat/completions", chat_events(args.events, False), None),
        ("chat + unknown member", "/v1/chat/completions", chat_events(args.events, True), None),
        ("responses text deltas", "/v1/responses", responses_events(args.events), DELTA),
    ]
    print(f"{'row':24} {'us/event':>9} {'baseline':>9} {'ratio':>6}")
    for label, route, events, name in rows:
        moderate = partial(_moderate, ADAPTERS[route], config, events, name)
        cost = best(args.repeat, moderate) / len(events) * 1e6
        base = best(args.repeat, partial(_round_trip, events)) / len(events) * 1e6
        print(f"{label:24} {cost:9.1f} {base:9.2f} {cost / base:6.1f}")


if __name__ == "__main__":
    main()
