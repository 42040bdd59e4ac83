"""The policy playground: the page at ``/ui`` and the JSON API it calls (docs/playground.md).

Off unless ``SLUICEGATE_UI=true`` or ``serve --ui``. Every answer comes from the code the
command line runs: ``load_text`` and its problems for ``policy check``, ``moderate`` and
``judge_text`` for ``scan``, ``policy_cases`` for ``policy test``, and the engine itself
for a replay (``sluice.replay``), so the page can never disagree with the gateway. The
page is static files shipped in the package; only the JSON API carries policies and text,
so only it needs a client key when ``SLUICEGATE_API_KEYS`` is set (the request-context
middleware checks it as for ``/v1``).

What a visitor sends is bounded (policy size, text size, replay events, one job per
core at a time) and never logged or counted: the playground's classifier calls skip the
gateway's metrics, and the Live panel reads only the metrics the gateway already keeps.
A pasted policy's classifier rules may call only the gateway's own classifier endpoint
or one a loaded policy names, with that policy's key variable: a visitor must not be able
to send the gateway's keys, or requests from inside its network, anywhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import json
import random
import re
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.classifiers import Classifier, ClassifierError, ClassifyInput, build_classifier
from gateway.classifiers.text import judge_text
from gateway.metrics import Metrics
from gateway.policy import BUNDLED_DIR, CompiledPolicy, Direction, PolicyError, Problem, load_text
from gateway.policy.model import ClassifierSpec
from gateway.policy.selftest import CaseResult, policy_cases
from gateway.policy.source import Source, parse
from gateway.proxy.body import read_body
from gateway.proxy.errors import error_response
from gateway.proxy.state import JUDGES, METRICS, POLICIES, SETTINGS, UPSTREAM
from gateway.sluice import Hit, SluiceConfig, Step, moderate
from gateway.sluice.replay import Frame, Replay
from gateway.sluice.verdicts import Verdict, VerdictRequest

_UI = importlib.resources.files("gateway") / "ui"
UI_DIR = _UI if isinstance(_UI, Path) else Path(str(_UI))
STATIC_DIR = UI_DIR / "static"
SAMPLES = UI_DIR / "samples.json"

#: The page. Gateway paths never end in "/" (``paths``), so ``/ui`` redirects here.
PAGE = "/ui/index.html"
FILE_NAME = "policy.yaml"  # where problems say they are: the page's editor
MAX_POLICY_CHARS = 64 * 1024
MAX_TEXT_CHARS = 16_000
MAX_REPLAY_CHARS = 4_000  # one frame per character at most
MAX_BODY_BYTES = 4 * (MAX_POLICY_CHARS + MAX_TEXT_CHARS) + 4096  # UTF-8, JSON escaping aside
MAX_VERDICT_LAG = 20
COMPILED_CACHE = 8  # the page re-sends the policy with every call
BUILT_CACHE = 32
LIVE_SAMPLE_SECONDS = 5.0
LIVE_WINDOW_SECONDS = 600.0
_HIT_METRIC = "sluicegate_rule_hits_total"
_ACTIVE_METRIC = "sluicegate_active_streams"
_PAGE_HEADERS = {
    # Everything the page needs is its own: no inline script, no other origin.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
#: Routes anyone may fetch even when client keys are set: the page and its files carry
#: no policy and no text; the visitor enters a key on the page for the API.
OPEN_ROUTES = frozenset({"ui_page", "ui_static", "ui_redirect"})


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: str = Field(max_length=MAX_POLICY_CHARS)


class _TextBody(_Body):
    text: str = Field(max_length=MAX_TEXT_CHARS)
    direction: Direction = Direction.OUTPUT


class _ReplayBody(_TextBody):
    text: str = Field(max_length=MAX_REPLAY_CHARS)
    chunking: Literal["char", "words", "random"] = "words"
    seed: int = Field(0, ge=0, le=2**32)
    lag: int = Field(2, ge=0, le=MAX_VERDICT_LAG, description="events until a verdict arrives")


class _Refused(Exception):
    """A request the playground answers with an error instead of a result."""

    def __init__(self, response: web.Response) -> None:
        self.response = response


@dataclass(frozen=True, slots=True)
class _Loaded:
    compiled: CompiledPolicy | None
    problems: tuple[Problem, ...]


class Playground:
    """Per app: compiled policies and built classifiers remembered, and live samples."""

    def __init__(self) -> None:
        self._compiled: OrderedDict[str, _Loaded] = OrderedDict()
        self._built: OrderedDict[str, Classifier | ClassifierError] = OrderedDict()
        self.jobs = asyncio.Semaphore(2)  # the engine work is CPU: one job per core
        self.samples: deque[tuple[float, dict[tuple[str, ...], float]]] = deque(
            maxlen=int(LIVE_WINDOW_SECONDS / LIVE_SAMPLE_SECONDS) + 1
        )

    def load(self, text: str) -> _Loaded:
        """``load_text`` once per distinct text (the page sends it with every call)."""
        found = self._compiled.get(text)
        if found is None:
            try:
                compiled = load_text(text, FILE_NAME)
                found = _Loaded(compiled, compiled.warnings)
            except PolicyError as exc:
                found = _Loaded(None, tuple(exc.problems))
            self._compiled[text] = found
            while len(self._compiled) > COMPILED_CACHE:
                self._compiled.popitem(last=False)
        self._compiled.move_to_end(text)
        return found

    def classifier(
        self, app: web.Application, spec: ClassifierSpec
    ) -> Classifier | ClassifierError:
        """Built as the gateway builds it (its pool and verdict cache), if it may be called."""
        key = spec.model_dump_json()
        found = self._built.get(key)
        if found is None:
            found = _build(app, spec)
            self._built[key] = found
            while len(self._built) > BUILT_CACHE:
                self._built.popitem(last=False)
        self._built.move_to_end(key)
        return found


PLAYGROUND = web.AppKey("playground", Playground)


def setup_playground(app: web.Application) -> None:
    """Register the page, its files and the API (only called when the UI is enabled)."""
    app[PLAYGROUND] = Playground()
    app.router.add_get("/ui", _redirect, name="ui_redirect")
    app.router.add_get(PAGE, _page, name="ui_page")
    app.router.add_static("/ui/static", STATIC_DIR, name="ui_static")
    app.router.add_get("/ui/api/policies", _policies, name="ui_policies")
    app.router.add_get("/ui/api/samples", _samples, name="ui_samples")
    app.router.add_post("/ui/api/check", _check, name="ui_check")
    app.router.add_post("/ui/api/scan", _scan, name="ui_scan")
    app.router.add_post("/ui/api/replay", _replay, name="ui_replay")
    app.router.add_post("/ui/api/test", _test, name="ui_test")
    app.router.add_get("/ui/api/live", _live, name="ui_live")
    app.cleanup_ctx.append(_live_sampler)


# -- the page ------------------------------------------------------------------------


async def _redirect(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(PAGE)


async def _page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers=_PAGE_HEADERS)


async def _policies(request: web.Request) -> web.Response:
    """The bundled policies, to start from. Configured ones are not shown: their keywords
    (confidential project names) are the operator's, not every client's."""
    policies = [
        {"file": path.name, "text": path.read_text(encoding="utf-8")}
        for path in sorted(BUNDLED_DIR.glob("*.yaml"))
    ]
    return web.json_response({"policies": policies})


async def _samples(request: web.Request) -> web.Response:
    return web.json_response({"samples": json.loads(SAMPLES.read_text(encoding="utf-8"))})


# -- the API -------------------------------------------------------------------------


async def _check(request: web.Request) -> web.Response:
    """``sluicegate policy check`` on the editor's text: the same problems, one per line."""
    try:
        body = await _parse(request, _Body)
        loaded = await _loaded(request, body.policy)
    except _Refused as refused:
        return refused.response
    problems = list(loaded.problems)
    compiled = loaded.compiled
    if compiled is not None:
        problems += _classifier_problems(request.app, compiled, body.policy)
    ok = compiled is not None and not any(p.level == "error" for p in problems)
    rules = len(compiled.rules) + len(compiled.classifiers) if compiled else 0
    return web.json_response(
        {
            "ok": ok,
            "name": compiled.name if compiled else None,
            "rules": rules,
            "summary": f"{FILE_NAME}: policy {compiled.name!r} ok ({rules} rules)"
            if ok and compiled
            else None,
            "problems": [_problem(p) for p in problems],
        }
    )


async def _scan(request: web.Request) -> web.Response:
    """``sluicegate scan``: the moderated text and every hit, with what each rule is."""
    try:
        body = await _parse(request, _TextBody)
        compiled = await _compiled(request, body.policy)
        config = compiled.config(body.direction)
        classifiers = _classifiers(request.app, compiled)
        async with request.app[PLAYGROUND].jobs:
            if config.classifiers:
                judged = await judge_text(config, body.text, classifiers, role=_role(body))
                step, failures = judged.step, judged.failures
            else:
                step, failures = await asyncio.to_thread(moderate, config, body.text), ()
    except _Refused as refused:
        return refused.response
    return web.json_response(
        {
            "text": step.text,
            "cut": step.cut,
            "hits": [_hit(h) for h in sorted(step.hits, key=lambda h: (h.start, h.end))],
            "rules": _rules(compiled),
            "failures": [{"rule": rule, "error": error} for rule, error in failures],
        }
    )


async def _replay(request: web.Request) -> web.Response:
    """The text fed to the engine in the chosen chunks, one frame per event."""
    try:
        body = await _parse(request, _ReplayBody)
        compiled = await _compiled(request, body.policy)
        config = compiled.config(body.direction)
        verdicts = _verdicts(request, compiled, _role(body))
        chunks = chunk_text(body.text, body.chunking, body.seed)
        async with request.app[PLAYGROUND].jobs:
            frames = await asyncio.to_thread(replay, config, chunks, verdicts, body.lag)
    except _Refused as refused:
        return refused.response
    return web.json_response(
        {
            "text": body.text,
            "events": len(frames),
            "frames": [_frame(f) for f in frames],
            "shares": hold_shares(frames, config),
            "rules": _rules(compiled),
        }
    )


async def _test(request: web.Request) -> web.Response:
    """``sluicegate policy test``: every example and case, with pass or fail each."""
    try:
        body = await _parse(request, _Body)
        compiled = await _compiled(request, body.policy)
        judge = _sync_judge(request, compiled) if compiled.classifiers else None
        async with request.app[PLAYGROUND].jobs:
            results = await asyncio.to_thread(lambda: list(policy_cases(compiled, judge)))
    except _Refused as refused:
        return refused.response
    return web.json_response(
        {
            "passed": sum(r.passed for r in results),
            "failed": sum(not r.passed for r in results),
            "cases": [_case(r) for r in results],
        }
    )


async def _live(request: web.Request) -> web.Response:
    """Active streams and rule hits over the last minutes, from the gateway's own metrics."""
    metrics = request.app[METRICS]
    now = time.monotonic()
    current = _sample(metrics)
    samples = [s for s in request.app[PLAYGROUND].samples if now - s[0] <= LIVE_WINDOW_SECONDS]
    since, base = samples[0] if samples else (now, current)
    rules = []
    for key, value in sorted(current.items()):
        if key[0] != _HIT_METRIC:
            continue
        delta = value - base.get(key, 0.0)
        if delta > 0:
            policy, rule, action, direction = key[1:]
            rules.append(
                {
                    "policy": policy,
                    "rule": rule,
                    "action": action,
                    "direction": direction,
                    "hits": int(delta),
                }
            )
    ends = [*samples[1:], (now, current)]
    series = [
        {"seconds_ago": round(now - end), "hits": int(_hits(after) - _hits(before))}
        for (_, before), (end, after) in zip(samples, ends, strict=True)
    ]
    return web.json_response(
        {
            "active_streams": int(current.get((_ACTIVE_METRIC,), 0.0)),
            "window_seconds": round(now - since),
            "rules": sorted(rules, key=lambda r: -int(r["hits"])),
            "series": series,
        }
    )


# -- the engine, as the command line runs it -----------------------------------------


def chunk_text(text: str, chunking: str, seed: int) -> list[str]:
    """The events a stream would bring: one character, one word (with its spaces), or
    1 to 8 characters at random (``seed`` makes a replay repeatable)."""
    if chunking == "char":
        return list(text)
    if chunking == "words":
        return re.findall(r"\s*\S+\s*|\s+", text)
    rng = random.Random(seed)
    chunks, pos = [], 0
    while pos < len(text):
        size = rng.randint(1, 8)
        chunks.append(text[pos : pos + size])
        pos += size
    return chunks


Verdicts = Callable[[Sequence[VerdictRequest]], "list[Future[Verdict]]"]


def replay(
    config: SluiceConfig, chunks: Sequence[str], verdicts: Verdicts, lag: int
) -> list[Frame]:
    """Every event of the replay. A verdict is asked for when its frame asks, and is
    handed to the engine ``lag`` events later (then waited for, if it is not in yet), so
    text waiting for a verdict is visible the way it is on a slow classifier."""
    engine = Replay(config)
    due: deque[list[tuple[int, Future[Verdict]]]] = deque([] for _ in range(lag))
    frames: list[Frame] = []

    def arrived() -> list[tuple[int, Verdict]]:
        return [(rid, f.result()) for rid, f in due.popleft()] if len(due) > lag else []

    def ask(frame: Frame) -> Frame:
        due.append(list(zip((r.id for r in frame.asked), verdicts(frame.asked), strict=True)))
        frames.append(frame)
        return frame

    for chunk in chunks:
        if engine.done:
            break
        ask(engine.feed(chunk, arrived()))
    ask(engine.finish(arrived()))
    while not engine.done and due:
        ready = [(rid, f.result()) for rid, f in due.popleft()]
        ask(engine.settle(ready))
    for pending in due:
        for _, future in pending:
            future.cancel()
    return frames


def hold_shares(frames: Sequence[Frame], config: SluiceConfig) -> dict[str, Any]:
    """How minimal the hold was: of the characters released, the share released in the
    event that brought them, and per rule how many of them it held for at least one event
    (so one minus that share is what the rule cost in delay; text cut off is not counted).

    Held characters are charged to the rule whose possible match begins earliest (the one
    that forces the hold there); text waiting for verdicts to the classifier rules whose
    verdicts are outstanding (to every holding classifier rule while a segment is open).
    """
    size = frames[-1].received if frames else 0
    arrived = [0] * size
    released: list[int | None] = [None] * size
    held: dict[str, bytearray] = {}
    holding = [r.id for r in config.classifiers if r.hold]
    start = 0
    for number, frame in enumerate(frames):
        for pos in range(start, frame.received):
            arrived[pos] = number
        start = frame.received
        for piece in frame.pieces:
            for pos in range(piece.start, min(piece.end, size)):
                released[pos] = number
        if frame.holders:
            first = frame.holders[0]
            _mark(held, first.rule_id, first.start, frame.received)
        if frame.released < frame.held_from:
            for rule_id in set(frame.waiting) or holding:
                _mark(held, rule_id, frame.released, frame.held_from)
    out = [pos for pos in range(size) if released[pos] is not None]
    at_once = sum(1 for pos in out if released[pos] == arrived[pos])
    total = len(out)
    return {
        "released": total,
        "released_at_once": at_once,
        "share_at_once": at_once / total if total else 1.0,
        "rules": [
            {"rule": rule_id, "held": count, "share_at_once": 1 - count / total if total else 1.0}
            for rule_id, marks in sorted(held.items())
            if (count := sum(1 for pos in out if pos < len(marks) and marks[pos]))
        ],
        "max_held": max((f.received - f.released for f in frames), default=0),
    }


def _mark(held: dict[str, bytearray], rule_id: str, start: int, end: int) -> None:
    marks = held.get(rule_id)
    if marks is None:
        marks = held[rule_id] = bytearray()
    if len(marks) < end:
        marks.extend(bytes(end - len(marks)))
    marks[start:end] = b"\x01" * (end - start)


# -- classifiers ---------------------------------------------------------------------


def _build(app: web.Application, spec: ClassifierSpec) -> Classifier | ClassifierError:
    """What the gateway would build, where a loaded policy vouches for its endpoint."""
    if (spec.url, spec.api_key_env) != (None, None) and not _vouched(app, spec):
        return ClassifierError(
            "the playground calls classifiers only at the gateway's classifier endpoint "
            "or at an url (with api_key_env) that a loaded policy names"
        )
    settings, judges = app[SETTINGS], app[JUDGES]
    key = settings.upstream_api_key
    try:
        return build_classifier(
            spec,
            pool=judges.pool,
            upstream_url=settings.classifier_url or app[UPSTREAM].base_url,
            upstream_key=key.get_secret_value() if key else None,
            cache=judges.cache,
        )
    except ClassifierError as exc:
        return exc


def _vouched(app: web.Application, spec: ClassifierSpec) -> bool:
    return any(
        (other.url, other.api_key_env) == (spec.url, spec.api_key_env)
        for policy in app[POLICIES].policies.values()
        for other in policy.classifiers.values()
    )


def _classifier_problems(
    app: web.Application, compiled: CompiledPolicy, text: str
) -> list[Problem]:
    """``policy check`` builds every classifier too: one that could never answer fails.
    The compiled policy keeps no positions, so the text is parsed again for the line."""
    out = []
    source: Source | None = None
    for rule_id, spec in compiled.classifiers.items():
        found = app[PLAYGROUND].classifier(app, spec)
        if isinstance(found, ClassifierError):
            source = source or parse(text, FILE_NAME)
            index = next(i for i, r in enumerate(compiled.policy.rules) if r.id == rule_id)
            out.append(source.problem(("rules", index, "match"), str(found)))
    return out


def _classifiers(app: web.Application, compiled: CompiledPolicy) -> dict[str, Classifier]:
    out = {}
    for rule_id, spec in compiled.classifiers.items():
        found = app[PLAYGROUND].classifier(app, spec)
        if isinstance(found, ClassifierError):
            raise _Refused(
                error_response(
                    400, f"classifier rule {rule_id!r}: {found}", code="classifier_unavailable"
                )
            )
        out[rule_id] = found
    return out


async def _classify(
    classifier: Classifier, item: ClassifyInput, limit: asyncio.Semaphore
) -> Verdict:
    async with limit:
        return await classifier.classify(item)


def _verdicts(
    request: web.Request, compiled: CompiledPolicy, role: Literal["assistant", "user"]
) -> Verdicts:
    """Verdict requests from the replay's thread, performed on the gateway's loop."""
    loop = asyncio.get_running_loop()
    classifiers = _classifiers(request.app, compiled) if compiled.classifiers else {}
    limit = request.app[JUDGES].limit

    def ask(requests: Sequence[VerdictRequest]) -> list[Future[Verdict]]:
        return [
            asyncio.run_coroutine_threadsafe(
                _classify(
                    classifiers[r.rule_id], ClassifyInput(r.text, r.context, role=role), limit
                ),
                loop,
            )
            for r in requests
        ]

    return ask


def _sync_judge(
    request: web.Request, compiled: CompiledPolicy
) -> Callable[[SluiceConfig, str], Step]:
    """``policy test``'s judge, called from a worker thread, judging on the gateway's loop."""
    loop = asyncio.get_running_loop()
    classifiers = _classifiers(request.app, compiled)

    def judge(config: SluiceConfig, text: str) -> Step:
        future = asyncio.run_coroutine_threadsafe(judge_text(config, text, classifiers), loop)
        return future.result().step

    return judge


def _role(body: _TextBody) -> Literal["assistant", "user"]:
    return "user" if body.direction is Direction.INPUT else "assistant"


# -- request and answer shapes -------------------------------------------------------


B = TypeVar("B", bound=_Body)


async def _parse(request: web.Request, model: type[B]) -> B:
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise _Refused(_too_large())
    raw = await read_body(request)
    if isinstance(raw, web.Response):
        raise _Refused(raw)
    if len(raw) > MAX_BODY_BYTES:
        raise _Refused(_too_large())
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "body"
        raise _Refused(
            error_response(400, f"{where}: {error['msg']}", code="invalid_request", param=where)
        ) from None


def _too_large() -> web.Response:
    return error_response(
        413,
        f"The playground takes policies up to {MAX_POLICY_CHARS} characters and texts up "
        f"to {MAX_TEXT_CHARS}.",
        code="request_too_large",
    )


async def _loaded(request: web.Request, text: str) -> _Loaded:
    async with request.app[PLAYGROUND].jobs:
        return await asyncio.to_thread(request.app[PLAYGROUND].load, text)


async def _compiled(request: web.Request, text: str) -> CompiledPolicy:
    loaded = await _loaded(request, text)
    if loaded.compiled is None:
        first = loaded.problems[0] if loaded.problems else None
        raise _Refused(
            error_response(
                400,
                f"The policy does not load: {first}" if first else "The policy does not load.",
                code="invalid_policy",
            )
        )
    return loaded.compiled


def _problem(problem: Problem) -> dict[str, Any]:
    return {
        "line": problem.line,
        "column": problem.column,
        "rule": problem.rule_id,
        "level": str(problem.level),
        "message": problem.message,
        "text": str(problem),
    }


def _hit(hit: Hit) -> dict[str, Any]:
    return {
        "rule": hit.rule_id,
        "start": hit.start,
        "end": hit.end,
        "action": hit.action.label,
        "reason": hit.reason.value,
        "intended": hit.intended.label if hit.intended else None,
    }


def _rules(compiled: CompiledPolicy) -> dict[str, dict[str, str]]:
    return {
        rule.id: {
            "action": rule.action.value,
            "description": rule.description,
            "severity": rule.severity.value,
            "kind": "classifier" if rule.id in compiled.classifiers else "pattern",
        }
        for rule in compiled.policy.rules
    }


def _frame(frame: Frame) -> dict[str, Any]:
    return {
        "chunk": frame.chunk,
        "received": frame.received,
        "released": frame.released,
        "held_from": frame.held_from,
        "pieces": [[p.start, p.end, p.text, p.redacted] for p in frame.pieces],
        "hits": [_hit(h) for h in frame.hits],
        "holders": [[h.rule_id, h.start] for h in frame.holders],
        "asked": [r.rule_id for r in frame.asked],
        "waiting": list(frame.waiting),
        "cut": frame.cut,
        "notice": frame.notice,
    }


def _case(result: CaseResult) -> dict[str, Any]:
    failure = result.failure
    return {
        "where": result.where.removeprefix(f"{FILE_NAME}: "),
        "case": result.case,
        "passed": result.passed,
        "expected": failure.expected if failure else None,
        "got": failure.got if failure else None,
    }


# -- live ----------------------------------------------------------------------------


def _sample(metrics: Metrics) -> dict[tuple[str, ...], float]:
    """Rule hits by their labels and the active streams, from the exposition (every
    worker's, with ``--workers``); label values are ids of loaded policies only."""
    out: dict[tuple[str, ...], float] = {}
    for family in metrics.exposition.collect():
        for sample in family.samples:
            if sample.name == _HIT_METRIC:
                labels = sample.labels
                key = (
                    _HIT_METRIC,
                    labels["policy"],
                    labels["rule"],
                    labels["action"],
                    labels["direction"],
                )
                out[key] = out.get(key, 0.0) + sample.value
            elif sample.name == _ACTIVE_METRIC:
                out[(_ACTIVE_METRIC,)] = out.get((_ACTIVE_METRIC,), 0.0) + sample.value
    return out


def _hits(sample: Mapping[tuple[str, ...], float]) -> float:
    return sum(v for k, v in sample.items() if k[0] == _HIT_METRIC)


async def _live_sampler(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(_sample_every(app))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _sample_every(app: web.Application) -> None:
    playground, metrics = app[PLAYGROUND], app[METRICS]
    while True:
        playground.samples.append((time.monotonic(), _sample(metrics)))
        await asyncio.sleep(LIVE_SAMPLE_SECONDS)
