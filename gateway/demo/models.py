"""``GET /v1/models`` and ``GET /v1/models/{id}``: the demo's models.

Clients and UIs list models before they chat, and a gateway forwards these routes unchanged,
so they exist to be forwarded, including the 404 for an unknown model.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.demo.classifiers import MODELS as CLASSIFIER_MODELS
from gateway.demo.errors import DemoError
from gateway.demo.sending import send_json

MODELS = ("demo-chat", "demo-embedding", *CLASSIFIER_MODELS)
CREATED = 1_735_689_600  # 2025-01-01: fixed, so listings are deterministic


async def list_models(request: web.Request) -> web.StreamResponse:
    return await send_json(request, {"object": "list", "data": [_model(m) for m in MODELS]})


async def get_model(request: web.Request) -> web.StreamResponse:
    model_id = request.match_info["model_id"]
    if model_id not in MODELS:
        raise DemoError(
            404,
            f"The model '{model_id}' does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )
    return await send_json(request, _model(model_id))


def _model(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": CREATED, "owned_by": "sluicegate-demo"}
