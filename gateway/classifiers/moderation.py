"""``kind: moderation``: a ``POST {url}/moderations`` endpoint (OpenAI's, or a look-alike).

The answer's shape is the SDK's ``ModerationCreateResponse``: ``results[]``, each with
``flagged``, ``categories`` (name -> bool) and ``category_scores`` (name -> float), names
as on the wire (``self-harm/intent``, ``harassment/threatening``). With thresholds
(``categories: {violence: 0.4}``) the scores decide: flagged when any listed category
scores at or over its threshold, and those are the categories reported. Without, the
endpoint's own ``flagged`` and true categories decide (a list keeps only those named).
Names match across spellings: ``self_harm_intent`` is ``self-harm/intent``.

The segment is sent with its context as one input, the text as it stood in the message:
a list of two would be judged apart, and the context alone has been judged already.
"""

from __future__ import annotations

from typing import Any

import openai

from gateway.classifiers.base import ClassifyInput
from gateway.classifiers.failures import Unparseable, guarded
from gateway.classifiers.remote import Endpoint, as_dict
from gateway.sluice.verdicts import Verdict


def normal(name: str) -> str:
    """One spelling for a category name: ``Self_Harm/Intent`` -> ``self-harm-intent``."""
    return name.casefold().replace("_", "-").replace("/", "-")


class ModerationClassifier:
    def __init__(
        self,
        endpoint: Endpoint,
        model: str | None,
        categories: dict[str, float] | list[str] | None,
    ) -> None:
        self._endpoint = endpoint
        self._model = model
        self._thresholds = (
            {normal(k): v for k, v in categories.items()} if isinstance(categories, dict) else None
        )
        self._wanted = (
            frozenset(normal(c) for c in categories) if isinstance(categories, list) else None
        )

    async def classify(self, item: ClassifyInput) -> Verdict:
        return await guarded(lambda: self._call(item), self._endpoint.timeout)

    async def _call(self, item: ClassifyInput) -> Verdict:
        response = await self._endpoint.client_for(item).moderations.create(
            input=[item.passage], model=self._model or openai.omit
        )
        return self.judge(as_dict(response))

    def judge(self, response: dict[str, Any]) -> Verdict:
        """The verdict on a moderation response body; ``Unparseable`` if it is not one."""
        results = response.get("results")
        if not isinstance(results, list) or not results:
            raise Unparseable("no results")
        found: list[str] = []
        flagged = False
        for result in results:
            if not isinstance(result, dict):
                raise Unparseable("result is not an object")
            hit, names = self._judge_one(result)
            flagged = flagged or hit
            found += [n for n in names if n not in found]
        return Verdict(flagged=flagged, categories=tuple(found) if flagged else ())

    def _judge_one(self, result: dict[str, Any]) -> tuple[bool, list[str]]:
        if self._thresholds is not None:
            scores = result.get("category_scores")
            if not isinstance(scores, dict):
                raise Unparseable("no category_scores")
            over = [
                name
                for name, score in scores.items()
                if _is_number(score)
                and normal(name) in self._thresholds
                and score >= self._thresholds[normal(name)]
            ]
            return bool(over), over
        flagged, categories = result.get("flagged"), result.get("categories")
        if not isinstance(flagged, bool) or not isinstance(categories, dict):
            raise Unparseable("no flagged/categories")
        true = [name for name, value in categories.items() if value is True]
        if self._wanted is not None:
            true = [name for name in true if normal(name) in self._wanted]
            return flagged and bool(true), true
        return flagged, true


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
