"""``/v1/fine_tuning/jobs``: create, list, retrieve, cancel, events and checkpoints."""

from __future__ import annotations

import re
import shutil
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request

from trainer import ids
from trainer.api.deps import AppContext, check_limit, found_page, get_ctx
from trainer.api.objects import checkpoint_object, event_object, job_object, page_object
from trainer.errors import bad_request, job_not_found
from trainer.job_params import parse_job_params
from trainer.jobs import TRAINING_COPY, VALIDATION_COPY
from trainer.store import FileRecord, JobRecord, new_event

router = APIRouter(prefix="/fine_tuning/jobs")

Ctx = Annotated[AppContext, Depends(get_ctx)]
_METADATA_QUERY = re.compile(r"^metadata\[(.+)\]$")


def _training_input(ctx: AppContext, file_id: str, param: str) -> FileRecord:
    record = ctx.store.get_file(file_id)
    if record is None:
        raise bad_request(f"Invalid {param}: no such file {file_id!r}.", param=param, code="file_not_found")
    if record.purpose != "fine-tune":
        raise bad_request(
            f"File {file_id} has purpose {record.purpose!r}, but fine-tuning files must have purpose 'fine-tune'.",
            param=param,
            code="invalid_file_purpose",
        )
    return record


@router.post("")
def create_job(ctx: Ctx, body: Annotated[Any, Body()] = None) -> dict[str, Any]:
    """Check the request, snapshot the files into the job directory, start validation."""
    params = parse_job_params(body)
    if params.model not in ctx.models.base_models():
        raise bad_request(
            f"Model {params.model} is not available for fine-tuning or does not exist. "
            f"Available base models: {', '.join(ctx.models.base_models())}.",
            param="model",
            code="model_not_available",
        )
    training = _training_input(ctx, params.training_file, "training_file")
    validation = _training_input(ctx, params.validation_file, "validation_file") if params.validation_file else None
    job_id = ids.job_id()
    job_dir = ctx.config.jobs_dir / job_id
    job_dir.mkdir(parents=True)
    shutil.copyfile(training.path, job_dir / TRAINING_COPY)
    if validation is not None:
        shutil.copyfile(validation.path, job_dir / VALIDATION_COPY)
    job = JobRecord(
        id=job_id,
        created_at=ids.now(),
        model=params.model,
        training_file=params.training_file,
        validation_file=params.validation_file,
        suffix=params.suffix,
        seed=params.seed,
        metadata=params.metadata,
        hyperparameters=params.hyperparameters,
        status="validating_files",
        error=None,
        model_name=ids.fine_tuned_model_name(params.model, ctx.config.org, params.suffix, job_id),
        fine_tuned_model=None,
        finished_at=None,
        trained_tokens=None,
        result_files=[],
        estimated_finish=None,
        output_dir=job_dir,
    )
    ctx.store.add_job(job, [
        new_event(job_id, f"Created fine-tuning job: {job_id}"),
        new_event(job_id, f"Validating training file: {params.training_file}"),
    ])  # fmt: skip
    ctx.jobs.submit(job_id)
    return job_object(job, ctx.config.org)


@router.get("")
def list_jobs(ctx: Ctx, request: Request, after: str | None = None, limit: int = 20) -> dict[str, Any]:
    """Newest first; ``metadata[key]=value`` query pairs filter on metadata."""
    metadata = {
        m.group(1): value
        for key, value in request.query_params.multi_items()
        if (m := _METADATA_QUERY.match(key))
    }
    page = ctx.store.list_jobs(after=after, limit=check_limit(limit, 100), metadata=metadata)
    return page_object(found_page(page, after), lambda j: job_object(j, ctx.config.org))


def _job(ctx: AppContext, job_id: str) -> JobRecord:
    job = ctx.store.get_job(job_id)
    if job is None:
        raise job_not_found(job_id)
    return job


@router.get("/{job_id}")
def retrieve_job(ctx: Ctx, job_id: str) -> dict[str, Any]:
    return job_object(_job(ctx, job_id), ctx.config.org)


@router.post("/{job_id}/cancel")
def cancel_job(ctx: Ctx, job_id: str) -> dict[str, Any]:
    """Cancel a job that has not finished; a running training stops within one step."""
    job = _job(ctx, job_id)
    if not ctx.jobs.cancel(job_id):
        raise bad_request(f"Job {job_id} has already finished with status {job.status!r}.", param="fine_tuning_job_id")
    return job_object(_job(ctx, job_id), ctx.config.org)


@router.get("/{job_id}/events")
def list_events(ctx: Ctx, job_id: str, after: str | None = None, limit: int = 20) -> dict[str, Any]:
    """Newest first; ``after`` continues towards older events."""
    _job(ctx, job_id)
    page = ctx.store.list_events(job_id, after=after, limit=check_limit(limit, 1000))
    return page_object(found_page(page, after), event_object)


@router.get("/{job_id}/checkpoints")
def list_checkpoints(ctx: Ctx, job_id: str, after: str | None = None, limit: int = 10) -> dict[str, Any]:
    """Newest first."""
    _job(ctx, job_id)
    page = ctx.store.list_checkpoints(job_id, after=after, limit=check_limit(limit, 100))
    return page_object(found_page(page, after), checkpoint_object, with_ids=True)
