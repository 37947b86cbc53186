"""Which model ids the server serves, and where their adapters are.

Three kinds of id:

* a base model of the engine (``engine.base_models()``), served without an adapter; its
  ``created`` is when this data directory first served it (``base_models`` table), so it
  stays the same across restarts;
* a fine-tuned model ``ft:{base}:{org}:{suffix}:{id}`` (``models`` table), served with
  the job's final adapter;
* a checkpoint ``ft:…:ckpt-step-N`` (``checkpoints`` table), served with that
  checkpoint's adapter, until its fine-tuned model is deleted.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from trainer.engine import Engine
from trainer.errors import APIError, model_not_found
from trainer.store import ModelRecord, Store


@dataclass(frozen=True)
class ServedModel:
    """What :meth:`Engine.generate` needs to serve one model id."""

    id: str
    base_model: str
    adapter_dir: Path | None
    created: int


class ModelResolver:
    """Maps model ids to base model + adapter via the engine and the database."""

    def __init__(self, store: Store, engine: Engine) -> None:
        self.store = store
        self.engine = engine
        self.base_models_created()  # record the base models served from now on

    def base_models(self) -> list[str]:
        return list(self.engine.base_models())

    def base_models_created(self) -> list[tuple[str, int]]:
        """``(id, created)`` of each base model, in the engine's order."""
        names = self.base_models()
        created = self.store.base_model_times(names)
        return [(name, created[name]) for name in names]

    def fine_tuned(self) -> list[ModelRecord]:
        return self.store.list_models()

    def resolve(self, model_id: str) -> ServedModel:
        """The served model for ``model_id``; 404 ``model_not_found`` if there is none."""
        if model_id in self.base_models():
            return ServedModel(model_id, model_id, None, self.store.base_model_times([model_id])[model_id])
        record = self.store.get_model(model_id)
        if record is not None:
            return ServedModel(record.id, record.base_model, record.adapter_dir, record.created)
        checkpoint = self.store.checkpoint_by_model_name(model_id)
        if checkpoint is not None:
            job = self.store.get_job(checkpoint.job_id)
            if job is not None and checkpoint.path.is_dir():
                return ServedModel(model_id, job.model, checkpoint.path, checkpoint.created_at)
        raise model_not_found(model_id)

    def delete(self, model_id: str) -> None:
        """Delete a fine-tuned model: its record, its adapter and every checkpoint of its job
        (the same weights at earlier epochs), from the database and from disk, so neither
        the model nor a checkpoint of it can be served again.

        Base models and checkpoints cannot be deleted (403); unknown ids are 404.
        """
        served = self.resolve(model_id)
        if served.adapter_dir is None:
            raise APIError(403, f"You cannot delete the base model `{model_id}`.", code="model_not_deletable")
        deleted = self.store.delete_model(model_id)
        if deleted is None:
            raise APIError(
                403, f"`{model_id}` is a checkpoint; it is deleted with its fine-tuned model.", code="model_not_deletable"
            )
        record, checkpoints = deleted
        folders = {record.adapter_dir, *(c.path for c in checkpoints)}
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        parents = {f.parent for f in folders} | {c.path.parent.parent for c in checkpoints}
        for parent in sorted(parents, key=lambda p: len(p.parts), reverse=True):  # deepest first
            with contextlib.suppress(OSError):
                parent.rmdir()  # only if nothing else is left in it: output/checkpoints, then output
