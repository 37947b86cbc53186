"""HTTP routes of the OpenAI-compatible API, mounted under ``/v1``."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from trainer.api import chat, files, jobs, models
from trainer.api.deps import require_api_key


def v1_router() -> APIRouter:
    """All ``/v1`` routes, behind the API-key check."""
    router = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)])
    for module in (files, jobs, models, chat):
        router.include_router(module.router)
    return router
