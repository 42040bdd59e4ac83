"""``kind: local``: in-process models, registered by name as Python entry points.

A package makes a classifier available to every policy by declaring, in its
``pyproject.toml``::

    [project.entry-points."sluicegate.classifiers"]
    my-model = "my_package.module:build"

``build`` takes no arguments and returns the loaded model: any object with

``predict(texts: list[str]) -> Sequence[float | Mapping[str, float]]``
    one result per text, synchronous (it runs in a worker thread, off the event loop).
    A float is the score of one category named after the entry point; a mapping scores
    several categories by name.
``threshold: float`` (optional, default 0.5)
    a text is flagged when a counted category scores at or above it.

The factory is called once per process (when the first policy using it loads), so
loading weights is paid once; a failing factory fails the policy load with its reason.
The model sees the segment alone: its context has been judged already, and models of
this kind judge short texts. ``categories: [...]`` keeps only the named categories.
"""

from __future__ import annotations

import asyncio
import numbers
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Protocol, cast, runtime_checkable

from gateway.classifiers.base import ClassifierError, ClassifyInput, counted
from gateway.classifiers.failures import Unparseable, guarded
from gateway.classifiers.pool import ClientPool
from gateway.sluice.verdicts import Verdict

GROUP = "sluicegate.classifiers"
DEFAULT_THRESHOLD = 0.5

Score = float | Mapping[str, float]


@runtime_checkable
class LocalModel(Protocol):
    def predict(self, texts: list[str]) -> Sequence[Score]: ...


def registered() -> dict[str, EntryPoint]:
    """The installed local classifiers, by name."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def load_model(name: str, factories: Mapping[str, Callable[[], object]] | None = None) -> object:
    """Call ``name``'s factory; ``ClassifierError`` naming what exists if there is none.

    ``factories`` replaces the installed entry points (tests, embedding applications).
    """
    found: Mapping[str, Callable[[], object]]
    if factories is None:
        points = registered()
        if name not in points:
            raise _unknown(name, sorted(points))
        try:
            factory = cast(Callable[[], object], points[name].load())
        except Exception as exc:
            raise ClassifierError(f"local classifier {name!r} cannot be imported: {exc}") from exc
        found = {name: factory}
    else:
        found = factories
        if name not in found:
            raise _unknown(name, sorted(found))
    try:
        model = found[name]()
    except Exception as exc:
        raise ClassifierError(f"local classifier {name!r} failed to load: {exc}") from exc
    if not isinstance(model, LocalModel):
        raise ClassifierError(f"local classifier {name!r} has no predict(texts) method")
    return model


def _unknown(name: str, names: list[str]) -> ClassifierError:
    known = ", ".join(names) if names else "none"
    return ClassifierError(
        f"no local classifier named {name!r} (entry point group {GROUP!r}); registered: {known}"
    )


class LocalClassifier:
    def __init__(
        self,
        name: str,
        model: LocalModel,
        categories: list[str] | None,
        timeout: float,
    ) -> None:
        self._name = name
        self._model = model
        self._wanted = frozenset(c.casefold() for c in categories) if categories else None
        threshold = getattr(model, "threshold", DEFAULT_THRESHOLD)
        self._threshold = float(threshold)
        self._timeout = timeout

    @classmethod
    def build(
        cls,
        name: str,
        pool: ClientPool,
        categories: list[str] | None,
        timeout: float,
        factories: Mapping[str, Callable[[], object]] | None = None,
    ) -> LocalClassifier:
        model = pool.local_model(name, lambda: load_model(name, factories))
        return cls(name, cast(LocalModel, model), categories, timeout)

    async def classify(self, item: ClassifyInput) -> Verdict:
        return await guarded(lambda: self._call(item), self._timeout)

    async def _call(self, item: ClassifyInput) -> Verdict:
        # A thread that overruns the timeout finishes in the background; its answer is
        # dropped. Threads cannot be cancelled, so a model must bound its own work.
        results = await asyncio.to_thread(self._model.predict, [item.text])
        return self.judge(results)

    def judge(self, results: Sequence[Score]) -> Verdict:
        if len(results) != 1:
            raise Unparseable("one result per text expected")
        result = results[0]
        scores: Mapping[str, object] = (
            result if isinstance(result, Mapping) else {self._name: result}
        )
        over = []
        for category, score in scores.items():
            if not isinstance(score, numbers.Real):  # numpy's floats are Reals too
                raise Unparseable("a score is not a number")
            if float(score) >= self._threshold:
                over.append(str(category))
        kept = counted(tuple(over), self._wanted)
        return Verdict(flagged=bool(kept), categories=kept)
