"""``/v1/files``: upload (multipart), list, retrieve, content and delete.

The upload's size is capped before it is read (:mod:`trainer.api.gate`: a declared
``Content-Length`` over the limit is a 413 at once) and again while it is copied. Its
file name is shown back to every caller, so it must be printable text: control characters
(NUL, newlines...), line separators and bidirectional controls are refused (U+202E
RIGHT-TO-LEFT OVERRIDE makes ``evil<U+202E>gnp.jsonl`` display as ``evillnosj.png``).
A ``fine-tune`` upload that is empty or holds no usable example is stored with status
``error`` and the reason in ``status_details`` (:func:`trainer.datafile.check_upload`).
An upload is written under a temporary name and renamed when complete (a killed process
leaves no half file that looks whole; the job manager removes leftovers at the next start).
"""

from __future__ import annotations

import unicodedata
from pathlib import Path, PurePath
from typing import Annotated, Any, BinaryIO

from fastapi import APIRouter, Depends, Form, UploadFile
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from trainer import ids
from trainer.api.deps import AppContext, check_limit, found_page, get_ctx
from trainer.api.objects import file_object, page_object
from trainer.api.responses import SafeJSONRoute
from trainer.datadir import PRIVATE_DIR, atomic_writer
from trainer.datafile import check_upload
from trainer.errors import APIError, bad_request, file_not_found
from trainer.store import FileRecord

router = APIRouter(route_class=SafeJSONRoute)

UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
CHUNK = 1024 * 1024
MAX_FILENAME_CHARS = 255
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
"""Characters that reorder how the text around them is displayed."""


def check_filename(name: str) -> str:
    """``name`` if it is fit to show back to callers, else a 400 naming the first bad character."""
    if len(name) > MAX_FILENAME_CHARS:
        raise bad_request(
            f"Invalid 'file': the file name has {len(name)} characters; the limit is {MAX_FILENAME_CHARS}.",
            param="file",
            code="invalid_file_name",
        )
    for char in name:
        category = unicodedata.category(char)
        if char in BIDI_CONTROLS or category in ("Cc", "Cs", "Zl", "Zp"):
            kind = "a bidirectional control" if char in BIDI_CONTROLS else "a control character"
            raise bad_request(
                f"Invalid 'file': the file name contains U+{ord(char):04X}, {kind}. Rename the file.",
                param="file",
                code="invalid_file_name",
            )
    return name

Ctx = Annotated[AppContext, Depends(get_ctx)]


@router.post("/files")
async def create_file(ctx: Ctx, file: UploadFile, purpose: Annotated[str, Form()]) -> dict[str, Any]:
    """Store an upload under ``<data_dir>/files/<id>``; fine-tune files must be ``.jsonl``."""
    if purpose not in UPLOAD_PURPOSES:
        raise bad_request(
            f"Invalid value for 'purpose': {purpose!r}. Supported values are: {', '.join(UPLOAD_PURPOSES)}.",
            param="purpose",
        )
    filename = check_filename(PurePath(file.filename or "upload").name or "upload")
    if purpose == "fine-tune" and not filename.lower().endswith(".jsonl"):
        raise bad_request(
            f"Invalid file format for Fine-Tuning API. Must be .jsonl (got {filename!r}).",
            param="file",
            code="invalid_file_format",
        )
    file_id = ids.file_id()
    path = ctx.config.files_dir / file_id
    size = await run_in_threadpool(_store_upload, file.file, path, ctx.config.max_upload_bytes)
    status, details = "processed", None
    if purpose == "fine-tune":
        details = await run_in_threadpool(check_upload, path)
        status = "processed" if details is None else "error"
    record = FileRecord(file_id, filename, purpose, size, ids.now(), path, status, details)
    try:
        ctx.store.add_file(record)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return file_object(record)


def _store_upload(source: BinaryIO, path: Path, limit: int) -> int:
    """Copy the spooled upload to ``path`` (private, written under a temporary name and renamed
    when complete: :func:`trainer.datadir.atomic_writer`); its size, or a 413 past ``limit``."""
    path.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    size = 0
    with atomic_writer(path) as out:
        while chunk := source.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise APIError(413, f"File is too large: the limit is {limit} bytes.", param="file",
                               code="file_too_large")  # fmt: skip
            out.write(chunk)
    return size


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
