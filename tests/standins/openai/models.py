"""The stand-in's model catalogue: ``/v1/models`` list, retrieve and delete.

Emulated OpenAI behaviour:

* base models carry ``owned_by="system"`` and an optional ``shutdown_date``
  (``YYYY-MM-DD``), the field the deprecations page tells clients to read;
* fine-tuned models (``ft:{base}:{org}:{suffix}:{id}``) appear once their job
  succeeds, are owned by the organisation, inherit the base model's shutdown date,
  and can be deleted (``{"id", "object": "model", "deleted": true}``);
* deleting a base model answers 403, an unknown model 404 ``model_not_found``;
* aliases (``gpt-4o``, ``gpt-4o-mini``, ``gpt-4.1``, ``gpt-4.1-mini``) are listed
  next to their dated snapshots and answer as the snapshot; ``gpt-4o-mini`` also
  resolves to its snapshot for fine-tuning (the others must be named by snapshot);
* ``vision``: whether chat accepts ``image_url`` parts (gpt-3.5 and gpt-4-0613 are
  text-only; fine-tuned models follow their base).

``enforce_shutdown_dates`` (on by default) treats a model whose shutdown date is on
or before the stand-in clock's date (2026-11-23 at start) as gone: it is not listed,
and chat, retrieve, delete and fine-tuning get 404 ``model_not_found`` "The model
`gpt-3.5-turbo` has been deprecated, ..." (``gpt-3.5-turbo`` and ``gpt-4-0613`` were
shut down on 2026-10-23, ``openai-finetuning.md`` §0).  Set it to ``False`` to act as
OpenAI did before the shutdowns.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .errors import APIErrorResponse, model_deprecated, model_not_found


@dataclass
class BaseModelInfo:
    """A base model OpenAI serves (and maybe fine-tunes)."""

    id: str
    created: int
    fine_tunable: bool = False
    training_context: int = 65_536
    shutdown_date: str | None = None
    alias_of: str | None = None
    owned_by: str = "system"
    vision: bool = True

    def to_json(self) -> dict[str, Any]:
        """The ``Model`` object."""
        return {
            "id": self.id,
            "object": "model",
            "created": self.created,
            "owned_by": self.owned_by,
            "shutdown_date": self.shutdown_date,
        }


@dataclass
class FineTunedModel:
    """A model produced by a succeeded job (or one of its checkpoints)."""

    id: str
    base: str
    created: int
    owned_by: str
    job_id: str
    shutdown_date: str | None
    examples: list[dict[str, Any]] = field(default_factory=list)
    checkpoint_of: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``Model`` object."""
        return {
            "id": self.id,
            "object": "model",
            "created": self.created,
            "owned_by": self.owned_by,
            "shutdown_date": self.shutdown_date,
        }


def default_catalogue() -> list[BaseModelInfo]:
    """Models the stand-in knows; dates per ``openai-finetuning.md`` §0 and §4."""
    gone, last = "2026-10-23", "2027-01-14"
    return [
        BaseModelInfo("gpt-4o-mini-2024-07-18", 1721172717, True, 65_536, last),
        BaseModelInfo("gpt-4o-mini", 1721172741, True, 65_536, last, alias_of="gpt-4o-mini-2024-07-18"),
        BaseModelInfo("gpt-4o", 1715367049, False, 65_536, last, alias_of="gpt-4o-2024-08-06"),
        BaseModelInfo("gpt-4o-2024-08-06", 1722814719, True, 65_536, last),
        BaseModelInfo("gpt-4o-2024-11-20", 1739331543, False, 65_536, last),
        BaseModelInfo("gpt-4.1", 1744316542, False, 65_536, last, alias_of="gpt-4.1-2025-04-14"),
        BaseModelInfo("gpt-4.1-2025-04-14", 1744315746, True, 65_536, last),
        BaseModelInfo("gpt-4.1-mini", 1744318173, False, 65_536, last, alias_of="gpt-4.1-mini-2025-04-14"),
        BaseModelInfo("gpt-4.1-mini-2025-04-14", 1744317547, True, 65_536, last),
        BaseModelInfo("gpt-3.5-turbo", 1677610602, False, 16_385, gone, alias_of="gpt-3.5-turbo-0125", vision=False),
        BaseModelInfo("gpt-3.5-turbo-0125", 1706048358, True, 16_385, gone, vision=False),
        BaseModelInfo("gpt-4-0613", 1686588896, True, 8_192, gone, vision=False),
        BaseModelInfo("gpt-6-luna", 1790000000, False, 0, None),
        BaseModelInfo("omni-moderation-latest", 1731689265, False, 0, None),
    ]  # fmt: skip


class ModelStore:
    """Base catalogue plus fine-tuned models, with OpenAI's visibility rules."""

    def __init__(self, catalogue: list[BaseModelInfo], clock_date: Any) -> None:
        self.base: dict[str, BaseModelInfo] = {m.id: m for m in catalogue}
        self.fine_tuned: dict[str, FineTunedModel] = {}
        self.enforce_shutdown_dates = True
        self._clock_date = clock_date  # callable returning today's date as "YYYY-MM-DD"

    # -- lookups -----------------------------------------------------------------
    def _is_shut_down(self, shutdown_date: str | None) -> bool:
        return bool(
            self.enforce_shutdown_dates and shutdown_date and shutdown_date <= self._clock_date()
        )

    def get(self, model_id: str) -> BaseModelInfo | FineTunedModel | None:
        """A live model by id (``None`` when unknown, deleted or shut down)."""
        model: BaseModelInfo | FineTunedModel | None = self.base.get(
            model_id
        ) or self.fine_tuned.get(model_id)
        if model is None or self._is_shut_down(model.shutdown_date):
            return None
        return model

    def retired(self, model_id: str) -> bool:
        """Known to the stand-in but past its shutdown date (when enforced)."""
        model = self.base.get(model_id) or self.fine_tuned.get(model_id)
        return model is not None and self._is_shut_down(model.shutdown_date)

    def require(self, model_id: str) -> BaseModelInfo | FineTunedModel:
        """Like :meth:`get` but raises OpenAI's 404 ``model_not_found`` (the
        "has been deprecated" wording for a model that was shut down)."""
        model = self.get(model_id)
        if model is None:
            raise (
                model_deprecated(model_id) if self.retired(model_id) else model_not_found(model_id)
            )
        return model

    def accepts_images(self, model: BaseModelInfo | FineTunedModel) -> bool:
        """Whether chat with ``model`` takes ``image_url`` parts (fine-tunes: their base)."""
        if isinstance(model, FineTunedModel):
            base = self.base.get(model.base)
            return base.vision if base is not None else True
        if model.alias_of and model.alias_of in self.base:
            return self.base[model.alias_of].vision
        return model.vision

    def fine_tunable_base(self, model_id: str) -> BaseModelInfo | None:
        """The snapshot a ``jobs.create(model=…)`` trains, or ``None`` if not allowed.

        Aliases resolve to their snapshot; a fine-tuned model id continues training
        from its root base (OpenAI allows passing an ``ft:`` model as ``model``).
        """
        model = self.get(model_id)
        if isinstance(model, FineTunedModel):
            model = self.base.get(model.base)
        if model is None or not model.fine_tunable:
            return None
        if model.alias_of:
            model = self.base[model.alias_of]
        return None if self._is_shut_down(model.shutdown_date) else model

    def training_context(self, model_id: str) -> int:
        """Per-example training token cap for a (base or fine-tuned) model id."""
        model = self.get(model_id)
        if isinstance(model, FineTunedModel):
            model = self.base.get(model.base)
        return model.training_context if model else 65_536

    def add_fine_tuned(self, model: FineTunedModel) -> None:
        """Register a model produced by a job."""
        self.fine_tuned[model.id] = model

    def listed(self) -> list[dict[str, Any]]:
        """``/v1/models`` data: live base models then fine-tuned ones (no checkpoints)."""
        out = [m.to_json() for m in self.base.values() if not self._is_shut_down(m.shutdown_date)]
        out += [
            m.to_json()
            for m in self.fine_tuned.values()
            if m.checkpoint_of is None and not self._is_shut_down(m.shutdown_date)
        ]
        return out

    def delete(self, model_id: str) -> dict[str, Any]:
        """Delete a fine-tuned model; 403 for base models, 404 for unknown ones."""
        model = self.get(model_id)
        if model is None:
            raise model_not_found(model_id)
        if isinstance(model, BaseModelInfo):
            raise APIErrorResponse(
                403,
                f"You have insufficient permissions for this operation: model {model_id} "
                "is owned by system and cannot be deleted.",
                code="insufficient_permissions",
            )
        del self.fine_tuned[model_id]
        for ckpt in [m for m in self.fine_tuned.values() if m.checkpoint_of == model_id]:
            del self.fine_tuned[ckpt.id]
        return {"id": model_id, "object": "model", "deleted": True}


def iso_date(ts: float) -> str:
    """``YYYY-MM-DD`` (UTC) of a Unix time."""
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).date().isoformat()


def routes(state: Any) -> list[web.RouteDef]:
    """aiohttp routes for ``/v1/models``; ``state`` is the :class:`OpenAIStandin`."""

    async def list_models(request: web.Request) -> web.Response:
        with state.lock:
            return state.json({"object": "list", "data": state.models.listed()})

    async def retrieve(request: web.Request) -> web.Response:
        with state.lock:
            return state.json(state.models.require(request.match_info["model"]).to_json())

    async def delete(request: web.Request) -> web.Response:
        with state.lock:
            return state.json(state.models.delete(request.match_info["model"]))

    return [
        web.get("/v1/models", list_models),
        web.get("/v1/models/{model}", retrieve),
        web.delete("/v1/models/{model}", delete),
    ]
