"""``/v1/files``: upload (multipart), list, retrieve, content and delete."""

from __future__ import annotations

from pathlib import PurePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, UploadFile
from fastapi.responses import FileResponse

from trainer import ids
from trainer.api.deps import AppContext, check_limit, found_page, get_ctx
from trainer.api.objects import file_object, page_object
from trainer.errors import APIError, bad_request, file_not_found
from trainer.store import FileRecord

router = APIRouter()

UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
CHUNK = 1024 * 1024

Ctx = Annotated[AppContext, Depends(get_ctx)]


@router.post("/files")
async def create_file(ctx: Ctx, file: UploadFile, purpose: Annotated[str, Form()]) -> dict[str, Any]:
    """Store an upload under ``<data_dir>/files/<id>``; fine-tune files must be ``.jsonl``."""
    if purpose not in UPLOAD_PURPOSES:
        raise bad_request(
            f"Invalid value for 'purpose': {purpose!r}. Supported values are: {', '.join(UPLOAD_PURPOSES)}.",
            param="purpose",
        )
    filename = PurePath(file.filename or "upload").name
    if purpose == "fine-tune" and not filename.lower().endswith(".jsonl"):
        raise bad_request(
            f"Invalid file format for Fine-Tuning API. Must be .jsonl (got {filename!r}).",
            param="file",
            code="invalid_file_format",
        )
    file_id = ids.file_id()
    path = ctx.config.files_dir / file_id
    path.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    try:
        with open(path, "wb") as out:
            while chunk := await file.read(CHUNK):
                size += len(chunk)
                if size > ctx.config.max_upload_bytes:
                    raise APIError(
                        413, f"File is too large: the limit is {ctx.config.max_upload_bytes} bytes.", param="file"
                    )
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    record = FileRecord(file_id, filename, purpose, size, ids.now(), path)
    ctx.store.add_file(record)
    return file_object(record)


@router.get("/files")
def list_files(ctx: Ctx, purpose: str | None = None, limit: int = 10000, order: str = "desc",
               after: str | None = None) -> dict[str, Any]:  # fmt: skip
    if order not in ("asc", "desc"):
        raise bad_request("Invalid 'order': must be 'asc' or 'desc'.", param="order")
    page = ctx.store.list_files(
        purpose=purpose, after=after, limit=check_limit(limit, 10000), newest_first=order == "desc"
    )
    return page_object(found_page(page, after), file_object, with_ids=True)


def _get(ctx: AppContext, file_id: str) -> FileRecord:
    record = ctx.store.get_file(file_id)
    if record is None:
        raise file_not_found(file_id)
    return record


@router.get("/files/{file_id}")
def retrieve_file(ctx: Ctx, file_id: str) -> dict[str, Any]:
    return file_object(_get(ctx, file_id))


@router.get("/files/{file_id}/content")
def file_content(ctx: Ctx, file_id: str) -> FileResponse:
    record = _get(ctx, file_id)
    return FileResponse(record.path, media_type="application/octet-stream", filename=record.filename)


@router.delete("/files/{file_id}")
def delete_file(ctx: Ctx, file_id: str) -> dict[str, Any]:
    """Delete a file; jobs already created keep their own copy of the data."""
    record = ctx.store.delete_file(file_id)
    if record is None:
        raise file_not_found(file_id)
    record.path.unlink(missing_ok=True)
    return {"id": file_id, "object": "file", "deleted": True}
