"""Turning a dataset's training file into Discord attachments that fit the upload limit.

Discord refuses a message whose files together exceed the guild's upload limit
(``Guild.filesize_limit``, 10 MiB unboosted). The file goes as it is when it fits, else
gzip-compressed, else split at line boundaries into ``.jsonl`` parts that each fit (joined
in order they give back the file byte for byte). Parts are grouped at most
:data:`MAX_FILES_PER_MESSAGE` to a message, and never more than the limit per message.
Everything works on files on disk, a line at a time, so a large dataset is never held in
memory; the functions here are blocking (run them in a worker thread).
"""

from __future__ import annotations

import gzip
import re
import shutil
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import discord

from bot.errors import UserError

MAX_FILES_PER_MESSAGE = 10
"""Discord's limit of attachments on one message."""
UPLOAD_MARGIN = 64 * 1024
"""Kept free under the limit for the request's own bytes (the multipart envelope, the
message's text)."""
GZIP_LEVEL = 6
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class UploadKind(StrEnum):
    PLAIN = "plain"
    """The JSONL file as it is."""
    GZIP = "gzip"
    """The JSONL file, gzip-compressed."""
    SPLIT = "split"
    """The JSONL file cut at line boundaries into parts."""


class ExampleTooLarge(UserError):
    """One line alone is over the upload limit: no split can make it fit."""


@dataclass(frozen=True)
class UploadFile:
    path: Path
    filename: str
    size: int


@dataclass(frozen=True)
class UploadPlan:
    """The files to attach, in order, and how they are grouped into messages."""

    kind: UploadKind
    source_size: int
    """Bytes of the uncompressed JSONL file."""
    files: list[UploadFile]
    messages: list[list[UploadFile]]


def file_stem(name: str) -> str:
    """A dataset name as a file name: letters, digits, ``.``, ``_`` and ``-`` only."""
    stem = _UNSAFE.sub("_", name).strip("._") or "dataset"
    return stem[:80]


def upload_budget(filesize_limit: int, margin: int = UPLOAD_MARGIN) -> int:
    """The bytes of files one message may carry under ``filesize_limit``."""
    return max(1, filesize_limit - margin)


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"


def plan_upload(source: Path, stem: str, budget: int, workdir: Path) -> UploadPlan:
    """The attachments for the JSONL file at ``source`` under ``budget`` bytes a message;
    compressed or split files are written into ``workdir``."""
    size = source.stat().st_size
    if size <= budget:
        files = [UploadFile(source, f"{stem}.jsonl", size)]
        return UploadPlan(UploadKind.PLAIN, size, files, [files])
    packed = workdir / f"{stem}.jsonl.gz"
    gzip_file(source, packed)
    packed_size = packed.stat().st_size
    if packed_size <= budget:
        files = [UploadFile(packed, packed.name, packed_size)]
        return UploadPlan(UploadKind.GZIP, size, files, [files])
    packed.unlink()
    files = split_lines(source, workdir, stem, budget)
    return UploadPlan(UploadKind.SPLIT, size, files, group_messages(files, budget))


def gzip_file(source: Path, dest: Path) -> None:
    """Compress ``source`` into ``dest`` (no name or time in the header: the same file
    always compresses to the same bytes)."""
    with source.open("rb") as raw, dest.open("wb") as out:
        with gzip.GzipFile(
            filename="", mode="wb", fileobj=out, compresslevel=GZIP_LEVEL, mtime=0
        ) as packed:
            shutil.copyfileobj(raw, packed, 1024 * 1024)


def split_lines(source: Path, workdir: Path, stem: str, budget: int) -> list[UploadFile]:
    """Cut ``source`` at line ends into parts of at most ``budget`` bytes each, named
    ``<stem>.part01.jsonl``, ``<stem>.part02.jsonl``... Raises :class:`ExampleTooLarge`
    when one line alone is over ``budget``."""
    paths: list[Path] = []
    sizes: list[int] = []
    with source.open("rb") as lines:
        out = None
        written = 0
        try:
            for number, line in enumerate(lines, start=1):
                if len(line) > budget:
                    raise ExampleTooLarge(
                        f"Example {number} of the file alone is {human_size(len(line))}, over "
                        f"the {human_size(budget)} this server can receive in one message: "
                        "it cannot be exported here."
                    )
                if out is None or written + len(line) > budget:
                    if out is not None:
                        out.close()
                        sizes.append(written)
                    path = workdir / f"part-{len(paths) + 1}"
                    paths.append(path)
                    out = path.open("wb")
                    written = 0
                out.write(line)
                written += len(line)
        finally:
            if out is not None:
                out.close()
        if out is not None:
            sizes.append(written)
    width = max(2, len(str(len(paths))))
    return [
        UploadFile(path, f"{stem}.part{index:0{width}d}.jsonl", size)
        for index, (path, size) in enumerate(zip(paths, sizes, strict=True), start=1)
    ]


def group_messages(
    files: list[UploadFile], budget: int, per_message: int = MAX_FILES_PER_MESSAGE
) -> list[list[UploadFile]]:
    """Files in order, as few to a message as the budget and the attachment count allow."""
    messages: list[list[UploadFile]] = []
    current: list[UploadFile] = []
    total = 0
    for item in files:
        if current and (len(current) >= per_message or total + item.size > budget):
            messages.append(current)
            current, total = [], 0
        current.append(item)
        total += item.size
    if current:
        messages.append(current)
    return messages


def discord_files(files: list[UploadFile]) -> list[discord.File]:
    """The files as discord.py attachments (each opened now, closed once sent)."""
    return [discord.File(item.path, filename=item.filename) for item in files]


def describe_plan(plan: UploadPlan, dataset_name: str, examples: int, limit: int) -> str:
    """What the member receives and how to use it (``dataset_name`` already escaped)."""
    lead = (
        f"The training file of **{dataset_name}**: {examples:,} approved examples, the "
        "system-prompt policy applied, byte for byte what a fine-tune uploads."
    )
    if plan.kind is UploadKind.PLAIN:
        return lead
    over = (
        f"It is {human_size(plan.source_size)}, over this server's upload limit of "
        f"{human_size(limit)}"
    )
    if plan.kind is UploadKind.GZIP:
        [packed] = plan.files
        return (
            f"{lead}\n{over}, so it is gzip-compressed ({human_size(packed.size)}): "
            f"unpack `{packed.filename}` with `gunzip` or any archive tool."
        )
    first, last = plan.files[0].filename, plan.files[-1].filename
    stem = first.rsplit(".part", 1)[0]
    messages = len(plan.messages)
    sent = "in this message" if messages == 1 else f"over {messages} messages"
    return (
        f"{lead}\n{over} even compressed, so it is split at line boundaries into "
        f"{len(plan.files)} parts (`{first}` to `{last}`), sent {sent}. Join them in "
        f"order: `cat {stem}.part*.jsonl > {stem}.jsonl`."
    )
