"""SDK objects to the provider's own records (:mod:`bot.providers.types`).

Compatible servers vary in what they fill in, so every optional field is read defensively.
"""

from __future__ import annotations

from typing import Any

from openai.types import FileObject, Model
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint

from bot.providers.types import Checkpoint, Job, JobError, JobEvent, ModelInfo, RemoteFile


def remote_file(obj: FileObject) -> RemoteFile:
    return RemoteFile(
        id=obj.id,
        filename=obj.filename,
        bytes=obj.bytes,
        purpose=str(obj.purpose),
        created_at=obj.created_at,
        status=getattr(obj, "status", None),
    )


def _hyperparameters(obj: FineTuningJob) -> dict[str, Any]:
    method = obj.method
    if method is not None and method.supervised is not None and method.supervised.hyperparameters:
        return method.supervised.hyperparameters.model_dump(exclude_none=True)
    if obj.hyperparameters is not None:
        return obj.hyperparameters.model_dump(exclude_none=True)
    return {}


def job(obj: FineTuningJob) -> Job:
    error = None
    if obj.error is not None and (obj.error.code or obj.error.message):
        error = JobError(code=obj.error.code or "", message=obj.error.message or "",
                         param=obj.error.param)  # fmt: skip
    return Job(
        id=obj.id,
        status=obj.status,
        model=obj.model,
        created_at=obj.created_at,
        training_file=obj.training_file,
        validation_file=obj.validation_file,
        fine_tuned_model=obj.fine_tuned_model,
        finished_at=obj.finished_at,
        estimated_finish=obj.estimated_finish,
        trained_tokens=obj.trained_tokens,
        error=error,
        hyperparameters=_hyperparameters(obj),
        metadata=dict(obj.metadata or {}),
        result_files=tuple(obj.result_files or ()),
    )


def event(obj: FineTuningJobEvent) -> JobEvent:
    data = obj.data if isinstance(obj.data, dict) else {}
    return JobEvent(
        id=obj.id,
        created_at=obj.created_at,
        level=obj.level,
        message=obj.message,
        type=obj.type,
        data=data,
    )


def checkpoint(obj: FineTuningJobCheckpoint) -> Checkpoint:
    metrics = obj.metrics.model_dump(exclude_none=True) if obj.metrics is not None else {}
    return Checkpoint(
        id=obj.id,
        created_at=obj.created_at,
        step=obj.step_number,
        model=obj.fine_tuned_model_checkpoint,
        metrics=metrics,
    )


def model(obj: Model) -> ModelInfo:
    return ModelInfo(
        id=obj.id,
        created=obj.created,
        owned_by=obj.owned_by,
        shutdown_date=getattr(obj, "shutdown_date", None),
    )
