"""``/v1/fine_tuning/jobs``: create, list, retrieve, cancel, events and checkpoints."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from trainer.api.deps import AppContext, check_limit, found_page, get_ctx, json_body
from trainer.api.objects import checkpoint_object, event_object, job_object, page_object
from trainer.api.responses import SafeJSONRoute
from trainer.errors import bad_request, job_not_found
from trainer.job_params import MAX_METADATA_PAIRS, parse_job_params
from trainer.store import JobRecord

router = APIRouter(prefix="/fine_tuning/jobs", route_class=SafeJSONRoute)

Ctx = Annotated[AppContext, Depends(get_ctx)]
_METADATA_QUERY = re.compile(r"^metadata\[(.+)\]$")


@router.post("")
def create_job(ctx: Ctx, body: Annotated[Any, Depends(json_body)]) -> dict[str, Any]:
    """Parse the request; the job manager checks it against the server's state and creates the job."""
    job = ctx.jobs.create(parse_job_params(body))
    return job_object(job, ctx.config.org)


@router.get("")
def list_jobs(ctx: Ctx, request: Request, after: str | None = None, limit: int = 20) -> dict[str, Any]:
    """Newest first; ``metadata[key]=value`` query pairs filter on metadata (at most
    :data:`MAX_METADATA_PAIRS` of them: a job holds no more pairs than that)."""
    metadata = {
        m.group(1): value
        for key, value in request.query_params.multi_items()
        if (m := _METADATA_QUERY.match(key))
    }
    if len(metadata) > MAX_METADATA_PAIRS:
        raise bad_request(
            f"Invalid 'metadata': at most {MAX_METADATA_PAIRS} metadata filters, got {len(metadata)}.",
            param="metadata",
        )
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
