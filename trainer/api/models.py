"""``/v1/models``: list base and fine-tuned models, retrieve one, delete a fine-tuned one.

Model ids may contain ``/`` (hub-style base names), which the SDK sends percent-encoded,
so the routes take the rest of the path.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from trainer.api.deps import AppContext, get_ctx
from trainer.api.objects import BASE_MODEL_OWNER, model_object
from trainer.api.responses import SafeJSONRoute

router = APIRouter(route_class=SafeJSONRoute)

Ctx = Annotated[AppContext, Depends(get_ctx)]


@router.get("/models")
def list_models(ctx: Ctx) -> dict[str, Any]:
    """Base models first, then fine-tuned models oldest first (checkpoints are not listed)."""
    data = [model_object(m, created, BASE_MODEL_OWNER) for m, created in ctx.models.base_models_created()]
    data += [model_object(m.id, m.created, ctx.config.org) for m in ctx.models.fine_tuned()]
    return {"object": "list", "data": data}


@router.get("/models/{model:path}")
def retrieve_model(ctx: Ctx, model: str) -> dict[str, Any]:
    served = ctx.models.resolve(model)
    return model_object(served.id, served.created, ctx.config.org if served.adapter_dir else BASE_MODEL_OWNER)


@router.delete("/models/{model:path}")
def delete_model(ctx: Ctx, model: str) -> dict[str, Any]:
    """Delete a fine-tuned model and its adapter; base models are 403, unknown ids 404."""
    ctx.models.delete(model)
    return {"id": model, "object": "model", "deleted": True}
