"""The demo upstream's aiohttp application: routes, middleware and shared state."""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web

from gateway.demo import (
    chat,
    classifiers,
    completions,
    conversations,
    embeddings,
    models,
    responses,
)
from gateway.demo.app_keys import CLASSIFIER_BENCH, CLOCK, DEFAULT_PACE, DEMO_STATE
from gateway.demo.classifier_controls import ClassifierBench, parse_fault
from gateway.demo.middleware import apply_controls, openai_errors, record, upstream_headers
from gateway.demo.state import DemoState


def create_demo_app(
    *,
    pace: float = 0.0,
    clock: Callable[[], float] = time.time,
    classifier_latency_ms: float = 0.0,
    classifier_fault: str | None = None,
) -> web.Application:
    """An OpenAI-compatible upstream; ``pace`` is the default number of seconds between events.

    Demo mode uses a human pace (~0.03 s) so a user can watch text arrive and be moderated;
    tests use 0 and set ``X-Demo-Pace-Ms`` where timing matters. ``clock`` gives ``created``
    timestamps; a fixed one makes two runs' payloads byte-identical. The classifier
    endpoints start with ``classifier_latency_ms`` and ``classifier_fault`` (see
    ``gateway.demo.classifier_controls``; ``POST /demo/classifiers`` changes them later).
    """
    if classifier_latency_ms < 0:
        raise ValueError("classifier_latency_ms must not be negative")
    bench = ClassifierBench(
        latency=classifier_latency_ms / 1000, fault=parse_fault(classifier_fault)
    )
    # Uploads through the gateway's pass-through routes reach here whole; accept them.
    app = web.Application(
        middlewares=[openai_errors, record, apply_controls], client_max_size=64 * 1024 * 1024
    )
    app[DEMO_STATE] = DemoState()
    app[DEFAULT_PACE] = pace
    app[CLOCK] = clock
    app[CLASSIFIER_BENCH] = bench
    app.router.add_get("/v1/models", models.list_models)
    app.router.add_get("/v1/models/{model_id}", models.get_model)
    app.router.add_post("/v1/embeddings", embeddings.handle)
    app.router.add_post("/v1/chat/completions", chat.handle)
    app.router.add_post("/v1/responses", responses.handle)
    app.router.add_get("/v1/chat/completions", chat.list_stored)
    app.router.add_get("/v1/chat/completions/{id}", chat.retrieve)
    app.router.add_post("/v1/chat/completions/{id}", chat.retrieve)  # update: metadata only
    app.router.add_get("/v1/chat/completions/{id}/messages", chat.stored_messages)
    app.router.add_get("/v1/responses/{id}", responses.retrieve)
    app.router.add_post("/v1/responses/compact", responses.compact)
    app.router.add_post("/v1/responses/{id}/cancel", responses.cancel)
    app.router.add_get("/v1/responses/{id}/input_items", responses.input_items)
    app.router.add_post("/v1/conversations", conversations.create)
    app.router.add_get("/v1/conversations/{id}/items", conversations.list_items)
    app.router.add_post("/v1/conversations/{id}/items", conversations.add_items)
    app.router.add_get("/v1/conversations/{id}/items/{item_id}", conversations.get_item)
    app.router.add_post("/v1/completions", completions.handle)
    app.router.add_post("/v1/moderations", classifiers.moderations)
    app.router.add_get("/demo/classifiers", classifiers.get_controls)
    app.router.add_post("/demo/classifiers", classifiers.set_controls)
    app.on_response_prepare.append(upstream_headers)
    app.on_shutdown.append(_stop_waiting)
    return app


async def _stop_waiting(app: web.Application) -> None:
    """Let hanging streams go at shutdown instead of holding it for its whole timeout."""
    app[DEMO_STATE].closing.set()
