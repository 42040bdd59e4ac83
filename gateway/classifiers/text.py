"""A whole text through a policy's pattern *and* classifier rules, for the command line.

``sluicegate scan``, ``policy test`` and ``eval`` judge texts outside any stream; they
use the same lane the gateway does (``sluice.classify``): the pattern rules decide
first, the text they release is cut into segments, every verdict is asked for at once,
and the gate applies them. What a terminal needs beyond that is to know when a verdict
could not be had at all: an endpoint that cannot be reached must fail the command, never
pass it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.classifiers.base import Classifier, ClassifyInput, Role
from gateway.classifiers.build import build_classifier
from gateway.classifiers.cache import VerdictCache
from gateway.classifiers.pool import ClientPool
from gateway.demo.running import running_demo
from gateway.policy import CompiledPolicy
from gateway.sluice import SluiceConfig, Step, moderate
from gateway.sluice.classify import Book
from gateway.sluice.verdicts import Verdict

DEMO = "demo"
#: Error labels that mean "no classifier answered", as opposed to a bad answer.
UNREACHABLE = frozenset({"connection", "timeout", "http_auth", "misconfigured"})


@dataclass(frozen=True, slots=True)
class Judged:
    """The moderated result, and the verdicts that failed (rule id, error label)."""

    step: Step
    failures: tuple[tuple[str, str], ...] = ()


async def judge_text(
    config: SluiceConfig,
    text: str,
    classifiers: Mapping[str, Classifier],
    *,
    role: Role = "assistant",
    prompt: str = "",
) -> Judged:
    """``text`` moderated by every rule of ``config``, classifier rules included."""
    whole = moderate(config, text)
    if not config.classifiers:
        return Judged(whole)
    book = Book(config.classifiers, config.fail_closed)
    book.shadow().open("text").step(whole, final=True)
    requests = book.take_requests()
    verdicts: list[Verdict] = await asyncio.gather(
        *(
            classifiers[r.rule_id].classify(ClassifyInput(r.text, r.context, prompt, role=role))
            for r in requests
        )
    )
    failures = []
    for request, verdict in zip(requests, verdicts, strict=True):
        book.verdict(request.id, verdict)
        if verdict.error is not None:
            failures.append((request.rule_id, verdict.error))
    gate = book.gate().open("text")
    step = gate.step(whole, final=True)
    notice = config.cutoff_notice if step.cut else ""
    return Judged(Step(step.pieces, step.hits, step.cut, notice), tuple(failures))


class TextJudge:
    """Classifier rules for a command: built per policy, run on a private event loop.

    Classifier rules without a ``url`` call the gateway's upstream; ``upstream`` ``demo``
    starts the demo upstream in this process, so ``scan`` and ``policy test`` work offline
    exactly as the gateway would in front of it. Use as a context manager.
    """

    def __init__(self, upstream: str, upstream_key: str | None) -> None:
        self.upstream = upstream
        self._upstream_key = upstream_key
        self._loop = asyncio.new_event_loop()
        self._stack = contextlib.AsyncExitStack()
        self._pool = ClientPool()
        self._cache = VerdictCache()
        self._url = upstream
        self._built: dict[tuple[str, str], Classifier] = {}
        self.failures: list[tuple[str, str]] = []

    def __enter__(self) -> TextJudge:
        if self.upstream == DEMO:
            self._url = self._loop.run_until_complete(
                self._stack.enter_async_context(running_demo(0.0))
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.run_until_complete(self._pool.close())
        self._loop.run_until_complete(self._stack.aclose())
        self._loop.close()

    def classifiers(self, compiled: CompiledPolicy) -> dict[str, Classifier]:
        """Every classifier of ``compiled``; ``ClassifierError`` if one cannot be built."""
        out = {}
        for rule_id, spec in compiled.classifiers.items():
            key = (compiled.name, rule_id)
            if key not in self._built:
                self._built[key] = build_classifier(
                    spec,
                    pool=self._pool,
                    upstream_url=self._url,
                    upstream_key=self._upstream_key,
                    cache=self._cache,
                )
            out[rule_id] = self._built[key]
        return out

    def judge(self, compiled: CompiledPolicy, config: SluiceConfig, text: str) -> Step:
        """``text`` through every rule of ``config``; failed verdicts pile up in ``failures``."""
        if not config.classifiers:
            return moderate(config, text)
        found = self._loop.run_until_complete(judge_text(config, text, self.classifiers(compiled)))
        self.failures.extend(found.failures)
        return found.step

    def unreachable(self) -> list[str]:
        """One line per rule whose classifier gave no answer at all."""
        seen = sorted({f for f in self.failures if f[1] in UNREACHABLE})
        where = "the demo upstream" if self.upstream == DEMO else self._url
        return [
            f"classifier of rule {rule!r} gave no verdict ({label}; via {where})"
            for rule, label in seen
        ]
