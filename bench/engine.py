"""Sluice throughput: feeds/s and chars/s for a realistic completion in 4-character deltas.

Run: ``.venv/bin/python bench/engine.py`` (``--profile`` adds a cProfile of the default
policy; ``--repeat N`` changes the best-of count).

Why these numbers: an upstream sends a few characters per event, and every event costs
one ``feed``, so feeds/s is what bounds a gateway core. The 1 KB vs 100 KB per-char cost
shows whether a feed's cost grows with the stream (re-scanning released text, an
unbounded buffer): it must not. The same-feed share is the user-visible side of the
minimal hold: the fraction of characters that left in the event that brought them.

Targets (one core): default policy >= 100,000 feeds/s; 200 rules >= 25,000 feeds/s;
100 KB per-char cost within 1.5x of 1 KB.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.policy import BUNDLED_DIR, DEFAULT_POLICY, Direction, load_file, load_paths, load_text
from gateway.sluice import SluiceConfig

DELTA = 4
SEED = 7

PROSE = [
    "The migration finished overnight and the dashboards look healthy again.",
    "We compared three approaches and the simplest one was also the fastest.",
    "Please review the attached notes before Thursday's planning meeting.",
    "In short, the cache was cold, so the first requests took longer than usual.",
    "Version 2.4.1 fixes the retry loop; build 1.2.3.4 is no longer supported.",
    "Nightingales sing at night, and the falcon budgets its energy carefully.",
    "Ask-me-anything sessions run every Friday, and sk-short is not a key.",
    "The order number is 4111 1111 1111 1112, which fails the checksum.",
    "Here is a step-by-step plan: measure, change one thing, measure again.",
    "If the deploy fails, roll back with the previous image tag and page on-call.",
]
MATCHES = [
    "Reach me at jane.doe@example.com if anything breaks.",
    "The key was sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3i, rotate it.",
    "aws_access_key_id = AKIAZ7QW3RT5YU8IO2PL was in the log.",
    "Use token ghp_Zq8Wm3Ns7Kd2Lp9Xv4Bc6Hf1Jr5Tg0Ya8Ue3I for the CI job.",
    "Card 4111 1111 1111 1111 was charged twice.",
    "Wire it to IBAN GB82 WEST 1234 5698 7654 32 by Monday.",
    "The form asked for SSN 536-22-1234, which it should not.",
]
BANNED_END = " Finally, Project Nightingale ships in May."


def completion(size: int, rng: random.Random, matches: list[str], end: str) -> str:
    """Prose with a match about every fifth sentence, and a blocking phrase at the end."""
    parts: list[str] = []
    length = 0
    while length < size - len(end):
        sentence = rng.choice(matches) if rng.random() < 0.2 else rng.choice(PROSE)
        parts.append(sentence)
        length += len(sentence) + 1
    return (" ".join(parts))[: size - len(end)] + end


# -- policies ------------------------------------------------------------------------------


def default_policy() -> tuple[str, SluiceConfig]:
    """The bundled default policy, loaded as the gateway loads it."""
    compiled = load_file(DEFAULT_POLICY)
    return f"{DEFAULT_POLICY.name} ({len(compiled.rules)} rules)", compiled.output


WORDS = [
    "amber", "basalt", "cobalt", "delta", "ember", "fjord", "garnet", "harbor", "indigo",
    "juniper", "kelvin", "lumen", "meadow", "nimbus", "onyx", "prairie", "quartz", "raven",
    "sierra", "tundra", "umber", "vertex", "willow", "xenon", "yarrow", "zephyr",
]  # fmt: skip


def generated_policy_yaml(count: int = 200) -> str:
    """Many rules of the kinds real policies hold: prefix-anchored secrets, keyword lists,
    a few broad regexes. Actions are redact/flag so that the stream is never cut early."""
    rng = random.Random(SEED)
    lines = ["version: 1", "name: generated", "rules:"]
    for i in range(count):
        kind = i % 10
        if kind < 5:  # prefix-anchored secret, like gitleaks rules
            prefix = f"{rng.choice(WORDS)[:3]}{i:03d}_"
            match = f"{{regex: '(?<![\\w-]){prefix}[A-Za-z0-9]{{16,}}(?!\\w)'}}"
        elif kind < 9:  # keyword list
            words = rng.sample(WORDS, 3)
            phrases = ", ".join(
                f'"{w} {WORDS[(i + j) % len(WORDS)]}{i}"' for j, w in enumerate(words)
            )
            match = f"{{keywords: [{phrases}], ignore_case: true, whole_words: true}}"
        else:  # a broad regex
            broad = [
                r"\b\d{3}-\d{3}-\d{4}\b",
                r"\b[A-Z]{2,5}-\d{2,6}\b",
                r"\b(?:10|192\.168)\.\d{1,3}\.\d{1,3}\b",
                r"(?i)\binternal use only\b",
            ]
            match = f"{{regex: '{broad[i // 10 % len(broad)]}'}}"
        action = "flag" if i % 7 == 0 else "redact"
        lines += [f"  - id: gen.r{i:03d}", f"    match: {match}", f"    action: {action}"]
    return "\n".join(lines) + "\n"


def generated_policy() -> tuple[str, SluiceConfig, list[str]]:
    compiled = load_text(generated_policy_yaml(), "generated.yaml")
    matches = [
        "The token amb000_AbCdEfGhIjKlMnOpQr was revoked.",
        "Ticket OPS-4821 tracks it; call 415-555-0100.",
        "Host 192.168.10.24 is internal use only.",
        *MATCHES,
    ]
    return f"generated ({len(compiled.rules)} rules)", compiled.output, matches


# -- measuring -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    feeds: int
    chars: int
    seconds: float

    @property
    def feeds_per_s(self) -> float:
        return self.feeds / self.seconds

    @property
    def chars_per_s(self) -> float:
        return self.chars / self.seconds

    @property
    def ns_per_char(self) -> float:
        return self.seconds / self.chars * 1e9


def deltas(text: str) -> list[str]:
    return [text[i : i + DELTA] for i in range(0, len(text), DELTA)]


def run_once(config: SluiceConfig, chunks: list[str]) -> float:
    sluice = config.open()
    feed = sluice.feed
    start = time.perf_counter()
    for chunk in chunks:
        feed(chunk)
    sluice.finish()
    return time.perf_counter() - start


def best_of(config: SluiceConfig, text: str, repeat: int) -> Result:
    chunks = deltas(text)
    seconds = min(run_once(config, chunks) for _ in range(repeat))
    return Result(len(chunks), len(text), seconds)


def same_feed_share(config: SluiceConfig, text: str) -> tuple[float, float, int]:
    """Share of characters released by the feed that brought them; mean and max delay in feeds."""
    sluice = config.open()
    chunks = deltas(text)
    released_at: dict[int, int] = {}
    for index, chunk in enumerate(chunks):
        for piece in sluice.feed(chunk).pieces:
            released_at.update(dict.fromkeys(range(piece.start, piece.end), index))
    for piece in sluice.finish().pieces:
        released_at.update(dict.fromkeys(range(piece.start, piece.end), len(chunks)))
    delays = [feed - pos // DELTA for pos, feed in released_at.items()]
    same = sum(1 for d in delays if d == 0)
    return same / len(delays), sum(delays) / len(delays), max(delays)


def report(
    label: str, config: SluiceConfig, matches: list[str], repeat: int
) -> tuple[Result, Result]:
    rng = random.Random(SEED)
    small = completion(1_000, rng, matches, BANNED_END)
    large = completion(100_000, random.Random(SEED), matches, BANNED_END)
    r1 = best_of(config, small, repeat * 20)
    r100 = best_of(config, large, repeat)
    print(f"{label}")
    for name, r in (("1 KB", r1), ("100 KB", r100)):
        print(
            f"  {name:>6}: {r.feeds_per_s:>10,.0f} feeds/s  {r.chars_per_s:>12,.0f} chars/s"
            f"  {r.ns_per_char:>7,.0f} ns/char  ({r.feeds} feeds)"
        )
    print(f"  per-char cost 100 KB / 1 KB: {r100.ns_per_char / r1.ns_per_char:.2f}x")
    return r1, r100


def bundled_shares() -> None:
    loaded = load_paths([BUNDLED_DIR])
    text = completion(20_000, random.Random(SEED), MATCHES, "")
    print("same-feed release share (20 KB completion, 4-char deltas, output direction)")
    for name, compiled in sorted(loaded.items()):
        share, mean, worst = same_feed_share(compiled.config(Direction.OUTPUT), text)
        print(
            f"  {name:<16} {share:6.1%} released in the arriving feed;"
            f" mean delay {mean:.2f} feeds, max {worst}"
        )


def profile(config: SluiceConfig, text: str) -> None:
    chunks = deltas(text)
    profiler = cProfile.Profile()
    profiler.runcall(run_once, config, chunks)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(14)
    print(out.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="best of N runs (default 5)")
    parser.add_argument("--profile", action="store_true", help="cProfile the default policy")
    args = parser.parse_args(argv)
    print(f"python {sys.version.split()[0]}, {DELTA}-char deltas, best of {args.repeat}\n")

    label, default = default_policy()
    d1, d = report(f"default policy: {label}", default, MATCHES, args.repeat)
    glabel, generated, gmatches = generated_policy()
    g1, g = report(f"generated policy: {glabel}", generated, gmatches, args.repeat)
    print()
    bundled_shares()
    print()
    checks: list[tuple[str, Callable[[], bool]]] = [
        ("default >= 100,000 feeds/s", lambda: d.feeds_per_s >= 100_000),
        ("200 rules >= 25,000 feeds/s", lambda: g.feeds_per_s >= 25_000),
        (
            "default: 100 KB per-char cost <= 1.5x 1 KB",
            lambda: d.ns_per_char <= 1.5 * d1.ns_per_char,
        ),
        (
            "200 rules: 100 KB per-char cost <= 1.5x 1 KB",
            lambda: g.ns_per_char <= 1.5 * g1.ns_per_char,
        ),
    ]
    for name, ok in checks:
        print(f"  [{'ok' if ok() else 'MISS'}] {name}")
    if args.profile:
        print()
        profile(default, completion(100_000, random.Random(SEED), MATCHES, BANNED_END))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
