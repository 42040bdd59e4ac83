"""Classifier clients: moderation endpoints, guard models, LLM judges, local models.

``build_classifier(spec, pool=..., upstream_url=..., upstream_key=..., cache=...)`` turns
a policy's ``match: {classifier: ...}`` into an object whose ``classify(ClassifyInput)``
returns a ``Verdict`` and never raises (failures are ``Verdict.error`` labels). One
``ClientPool`` and one ``VerdictCache`` per process are shared by every rule.
"""

from gateway.classifiers.base import Classifier, ClassifierError, ClassifyInput
from gateway.classifiers.build import build_classifier
from gateway.classifiers.cache import VerdictCache
from gateway.classifiers.pool import ClientPool

__all__ = [
    "Classifier",
    "ClassifierError",
    "ClassifyInput",
    "ClientPool",
    "VerdictCache",
    "build_classifier",
]
