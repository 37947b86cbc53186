"""Store records rendered as OpenAI API objects (the JSON the SDK parses)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from trainer.store import CheckpointRecord, EventRecord, FileRecord, JobRecord, Page

T = TypeVar("T")

BASE_MODEL_OWNER = "system"


def file_object(f: FileRecord) -> dict[str, Any]:
    """OpenAI's ``file``; ``status_details`` says why a file's ``status`` is ``error``."""
    out: dict[str, Any] = {
        "id": f.id,
        "object": "file",
        "bytes": f.bytes,
        "created_at": f.created_at,
        "filename": f.filename,
        "purpose": f.purpose,
        "status": f.status,
    }
    if f.status_details is not None:
        out["status_details"] = f.status_details
    return out


def job_object(job: JobRecord, org: str) -> dict[str, Any]:
    hyperparameters = {
        "n_epochs": job.hyperparameters.get("n_epochs", "auto"),
        "batch_size": job.hyperparameters.get("batch_size", "auto"),
        "learning_rate_multiplier": job.hyperparameters.get("learning_rate_multiplier", "auto"),
    }
    return {
        "id": job.id,
        "object": "fine_tuning.job",
        "created_at": job.created_at,
        "error": job.error,
        "fine_tuned_model": job.fine_tuned_model,
        "finished_at": job.finished_at,
        "hyperparameters": hyperparameters,
        "method": {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}},
        "model": job.model,
        "organization_id": org,
        "result_files": job.result_files,
        "seed": job.seed,
        "status": job.status,
        "trained_tokens": job.trained_tokens,
        "training_file": job.training_file,
        "validation_file": job.validation_file,
        "integrations": [],
        "estimated_finish": job.estimated_finish if job.status == "running" else None,
        "metadata": job.metadata,
    }


def event_object(e: EventRecord) -> dict[str, Any]:
    return {
        "object": "fine_tuning.job.event",
        "id": e.id,
        "created_at": e.created_at,
        "level": e.level,
        "message": e.message,
        "type": e.type,
        "data": e.data or {},
    }


def checkpoint_object(c: CheckpointRecord) -> dict[str, Any]:
    return {
        "object": "fine_tuning.job.checkpoint",
        "id": c.id,
        "created_at": c.created_at,
        "fine_tuned_model_checkpoint": c.model_name,
        "fine_tuning_job_id": c.job_id,
        "metrics": c.metrics,
        "step_number": c.step,
    }


def model_object(model_id: str, created: int, owned_by: str) -> dict[str, Any]:
    """A ``model``: base models are owned by ``system``, fine-tuned ones by the org."""
    return {"id": model_id, "object": "model", "created": created, "owned_by": owned_by}


def list_object(items: Sequence[T], render: Callable[[T], dict[str, Any]]) -> dict[str, Any]:
    return {"object": "list", "data": [render(i) for i in items]}


def page_object(page: Page[T], render: Callable[[T], dict[str, Any]], *,
                with_ids: bool = False) -> dict[str, Any]:  # fmt: skip
    """A cursor page: ``data`` + ``has_more`` (+ ``first_id``/``last_id`` where OpenAI sends them)."""
    data = [render(i) for i in page.items]
    out: dict[str, Any] = {"object": "list", "data": data, "has_more": page.has_more}
    if with_ids:
        out["first_id"] = data[0]["id"] if data else None
        out["last_id"] = data[-1]["id"] if data else None
    return out
