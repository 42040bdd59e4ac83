"""``name: profanity``: a small local model, ``alt-profanity-check`` (``pip install
'sluicegate[profanity]'``).

A linear SVM over bag-of-words features, trained on public insult and profanity data:
fast (tens of microseconds a sentence, no GPU, no network), good at swearing and crude
insults, blind to meaning (it does not see threats or hate phrased politely). A sentence
is flagged when its probability of being profane is at least 0.5, the package's own
decision boundary; the one category is ``profanity``.

The package and its scikit-learn model load only when a policy uses this classifier, so
a gateway without the extra starts as usual and fails only such a policy, naming the
extra to install.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

EXTRA = "profanity"
THRESHOLD = 0.5


class ProfanityModel:
    threshold = THRESHOLD

    def __init__(self, module: Any) -> None:
        self._predict_prob = module.predict_prob

    def predict(self, texts: list[str]) -> Sequence[float]:
        return [float(p) for p in self._predict_prob(texts)]


def build() -> ProfanityModel:
    """The entry point: import the package (and load its model) now."""
    try:
        module = importlib.import_module("profanity_check")
    except ImportError as exc:
        raise ImportError(
            "the profanity classifier needs the alt-profanity-check package: "
            f"pip install 'sluicegate[{EXTRA}]'"
        ) from exc
    return ProfanityModel(module)
