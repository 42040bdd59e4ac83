"""``sluicegate eval``: a policy's classifier rules against a labelled file, through the gateway.

Each line of the file is ``{"text": ..., "flagged": true|false}``. Every text is replayed
as a streamed answer by the demo upstream, through a real gateway in this process, once
per mode (``hold`` and ``async``), with the policy's classifier rules as the only rules
and each turned into a block, so "flagged" means "the stream was cut". Reported per
mode: precision and recall against the labels, and leaked characters: what reached the
client past the point where the same text, judged whole (non-streamed), is cut. ``hold``
must leak nothing; ``async`` shows what streaming first costs.

Classifier rules without a ``url`` call ``--upstream`` (a base URL with ``/v1``, or
``demo`` for the demo's own classifiers).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import yaml
from aiohttp import web

from gateway.demo.running import running_demo
from gateway.policy import CompiledPolicy, Policy
from gateway.policy.model import ClassifierMode
from gateway.proxy.app import create_app
from gateway.proxy.protocol import GatewayRunner
from gateway.settings import Settings

MODES = (ClassifierMode.HOLD, ClassifierMode.ASYNC)
_CONCURRENCY = 8


@dataclass(frozen=True, slots=True)
class Case:
    text: str
    flagged: bool


@dataclass(slots=True)
class ModeReport:
    """One mode's confusion counts and leaks."""

    mode: str
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    leaked: list[int] = field(default_factory=list)  # per text the whole-text judge cut

    def add(self, expected: bool, cut: bool) -> None:
        if cut:
            self.tp, self.fp = self.tp + expected, self.fp + (not expected)
        else:
            self.fn, self.tn = self.fn + expected, self.tn + (not expected)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "cases": self.tp + self.fp + self.fn + self.tn,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "leaked_chars_total": sum(self.leaked),
            "leaked_chars_max": max(self.leaked, default=0),
        }


def read_cases(path: Path) -> list[Case]:
    """The labelled file; a bad line is a ``ValueError`` naming it."""
    cases = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            cases.append(Case(str(item["text"]), bool(item["flagged"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: expected {{text, flagged}}: {exc}") from None
    return cases


def judged_only(policy: Policy, mode: ClassifierMode) -> dict[str, Any]:
    """The policy with only its output classifier rules, each blocking, in ``mode``."""
    data = policy.model_dump(mode="json", exclude_none=True)
    rules = []
    for rule in data["rules"]:
        classifier = rule["match"].get("classifier")
        if classifier is None or "output" not in rule["scope"]:
            continue
        classifier["mode"] = mode.value
        rules.append({**rule, "action": "block", "scope": ["output"], "examples": {}})
        rules[-1].pop("replacement", None)
    data.update(rules=rules, tests=[], mode="enforce", name=f"eval-{mode.value}")
    return data


async def evaluate(
    compiled: CompiledPolicy, cases: Sequence[Case], upstream: str, pace_ms: int
) -> list[ModeReport]:
    if not compiled.classifiers:
        raise ValueError(f"policy {compiled.name!r} has no classifier rules")
    async with _gateway(compiled.policy, upstream) as client:
        limit = asyncio.Semaphore(_CONCURRENCY)
        whole = await asyncio.gather(*(_answer(client, limit, c, "hold", None) for c in cases))
        reports = []
        for mode in MODES:
            report = ModeReport(mode.value)
            streamed = await asyncio.gather(
                *(_answer(client, limit, c, mode.value, pace_ms) for c in cases)
            )
            for case, (ref_text, ref_cut), (text, cut) in zip(cases, whole, streamed, strict=True):
                report.add(case.flagged, cut)
                if ref_cut:
                    report.leaked.append(max(0, len(text) - len(ref_text)))
            reports.append(report)
    return reports


@contextlib.asynccontextmanager
async def _gateway(policy: Policy, upstream: str) -> AsyncIterator[openai.AsyncOpenAI]:
    """A gateway in this process in front of the demo, with the policy in both modes."""
    async with contextlib.AsyncExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        for mode in MODES:
            text = yaml.safe_dump(judged_only(policy, mode), sort_keys=False)
            (folder / f"{mode.value}.yaml").write_text(text, encoding="utf-8")
        demo = await stack.enter_async_context(running_demo(0.0))
        settings = Settings(
            _env_file=None,
            upstream_url=demo,
            classifier_url=None if upstream == "demo" else upstream,
            policy=folder,
            default_policy="eval-hold",
            policy_reload_seconds=0,
        )
        runner = GatewayRunner(create_app(settings))
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        client = openai.AsyncOpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key="eval", max_retries=0
        )
        stack.push_async_callback(client.close)
        yield client


async def _answer(
    client: openai.AsyncOpenAI,
    limit: asyncio.Semaphore,
    case: Case,
    mode: str,
    pace_ms: int | None,
) -> tuple[str, bool]:
    """What the client received for ``case`` and whether it was cut (``None`` pace: whole)."""
    headers = {"X-Demo-Reply": json.dumps(case.text), "X-Sluicegate-Policy": f"eval-{mode}"}
    messages: list[Any] = [{"role": "user", "content": "evaluate"}]
    async with limit:
        if pace_ms is None:
            body = await client.chat.completions.create(
                model="demo", messages=messages, extra_headers=headers
            )
            choice = body.choices[0]
            return choice.message.content or "", choice.finish_reason == "content_filter"
        headers["X-Demo-Pace-Ms"] = str(pace_ms)
        stream = await client.chat.completions.create(
            model="demo", messages=messages, stream=True, extra_headers=headers
        )
        text, finish = "", None
        async for chunk in stream:
            for part in chunk.choices:
                text += part.delta.content or ""
                finish = part.finish_reason or finish
        return text, finish == "content_filter"
