"""From a policy's ``ClassifierSpec`` to a ready ``Classifier``, or a clear error at load time.

Everything that can be wrong with a spec short of the server's answers is found here,
when the policy loads: an unset key variable, an unknown local name, a ShieldGemma policy
that does not exist. A rule that would fail every verdict must not load quietly.

``url`` defaults to the gateway's upstream. Both are base URLs the way the SDK takes
them, ``/v1`` included (``https://api.openai.com/v1``, ``http://localhost:11434/v1``),
exactly like ``SLUICEGATE_UPSTREAM_URL``: the proxy appends the route without ``/v1``
(``Upstream.url``) and so does the SDK. In demo mode pass the running demo's URL, not
the word ``demo``.

Which key a call carries, first that applies: the variable named by ``api_key_env``
(read now, so a missing one fails the load), the gateway's upstream key, the client's
own bearer key (only when the classifier *is* the upstream: the proxy forwards it
there anyway, and another server must not receive a user's credential for this one),
else a placeholder that keyless local servers ignore.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from gateway.classifiers.base import Classifier, ClassifierError, wanted_set
from gateway.classifiers.cache import CachedClassifier, VerdictCache
from gateway.classifiers.guard import (
    Family,
    GraniteGuardian,
    GuardClassifier,
    LlamaGuard,
    Qwen3Guard,
    ShieldGemma,
)
from gateway.classifiers.judge import JudgeClassifier
from gateway.classifiers.local import LocalClassifier
from gateway.classifiers.moderation import ModerationClassifier
from gateway.classifiers.pool import ClientPool, Credentials
from gateway.classifiers.remote import Endpoint
from gateway.policy.model import ClassifierKind, ClassifierSpec, GuardFamily


def build_classifier(
    spec: ClassifierSpec,
    *,
    pool: ClientPool,
    upstream_url: str,
    upstream_key: str | None,
    cache: VerdictCache | None,
    environ: Mapping[str, str] | None = None,
    local_factories: Mapping[str, Callable[[], object]] | None = None,
) -> Classifier:
    """The classifier ``spec`` describes; raises ``ClassifierError`` if it cannot work.

    ``environ`` defaults to ``os.environ`` (where ``api_key_env`` is looked up);
    ``local_factories`` replaces the installed ``sluicegate.classifiers`` entry points.
    """
    categories = spec.categories
    listed = categories if isinstance(categories, list) else None
    inner: Classifier
    if spec.kind is ClassifierKind.LOCAL:
        name = _required(spec.name, "name")
        inner = LocalClassifier.build(name, pool, listed, spec.timeout_seconds, local_factories)
        identity = _identity(spec, base_url="")
        reads_context = reads_prompt = False
    else:
        base_url = _base_url(spec.url, upstream_url)
        credentials = Credentials(
            fixed=_fixed_key(spec.api_key_env, upstream_key, environ),
            forward_client_key=base_url == upstream_url.rstrip("/"),
        )
        endpoint = Endpoint.build(pool, base_url, credentials, spec.timeout_seconds)
        identity = _identity(spec, base_url)
        reads_context, reads_prompt = True, spec.kind is not ClassifierKind.MODERATION
        if spec.kind is ClassifierKind.MODERATION:
            inner = ModerationClassifier(endpoint, spec.model, categories)
        elif spec.kind is ClassifierKind.GUARD:
            if spec.family is None:
                raise ClassifierError("a guard classifier needs family")
            family = _family(spec.family, listed)
            inner = GuardClassifier(endpoint, _required(spec.model, "model"), family)
        else:
            inner = JudgeClassifier(
                endpoint,
                _required(spec.model, "model"),
                _required(spec.instructions, "instructions"),
                listed,
            )
    if cache is None:
        return inner
    return CachedClassifier(
        inner, cache, identity, reads_context=reads_context, reads_prompt=reads_prompt
    )


def _family(family: GuardFamily, listed: list[str] | None) -> Family:
    if family is GuardFamily.LLAMA_GUARD:
        return LlamaGuard(wanted_set(listed))
    if family is GuardFamily.SHIELDGEMMA:
        return ShieldGemma.build(listed)
    if family is GuardFamily.GRANITE_GUARDIAN:
        return GraniteGuardian(tuple(dict.fromkeys(listed)) if listed else None)
    return Qwen3Guard(wanted_set(listed))


def _base_url(url: str | None, upstream_url: str) -> str:
    base = (url or upstream_url).rstrip("/")
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        where = "url" if url else "the upstream URL"
        raise ClassifierError(
            f"{where} must be an http(s) base URL such as http://host:8000/v1, got {base!r}"
        )
    return base


def _fixed_key(
    env_name: str | None, upstream_key: str | None, environ: Mapping[str, str] | None
) -> str | None:
    if env_name is not None:
        value = (os.environ if environ is None else environ).get(env_name, "")
        if not value.strip():
            raise ClassifierError(
                f"api_key_env: the environment variable {env_name} is not set (or empty)"
            )
        return value.strip()
    return upstream_key or None


def _identity(spec: ClassifierSpec, base_url: str) -> str:
    """Everything a verdict depends on; keys and timeouts are not among them."""
    fields = spec.model_dump(
        mode="json", include={"kind", "model", "family", "name", "instructions", "categories"}
    )
    return json.dumps({**fields, "url": base_url}, sort_keys=True)


def _required(value: str | None, what: str) -> str:
    if not value:
        raise ClassifierError(f"the classifier needs {what}")
    return value
