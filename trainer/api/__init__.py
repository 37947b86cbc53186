"""HTTP routes of the OpenAI-compatible API, mounted under ``/v1``.

Who may call them (API key, ``Host``, cross-site browsers) and how large a body may be is
decided before any route runs, by :class:`trainer.api.gate.RequestGate`.
"""

from __future__ import annotations

from fastapi import APIRouter


def v1_router() -> APIRouter:
    """All ``/v1`` routes."""
    # imported here, so that trainer.errors can import trainer.api.responses without a cycle
    from trainer.api import chat, files, jobs, models

    router = APIRouter(prefix="/v1")
    for module in (files, jobs, models, chat):
        router.include_router(module.router)
    return router
