"""Object ids in OpenAI's formats, the ``ft:`` model naming scheme, and the clock."""

from __future__ import annotations

import secrets
import string
import time

_ALPHABET = string.ascii_letters + string.digits


def random_token(length: int) -> str:
    """A random alphanumeric string (OpenAI ids use the same alphabet)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def file_id() -> str:
    return f"file-{random_token(22)}"


JOB_ID_LENGTH = 24
"""Characters after ``ftjob-``, as OpenAI's ids (databases may still hold older 8-character ids)."""
MODEL_ID_LENGTH = 8
"""Characters of the id segment that ends an ``ft:`` model name, as OpenAI's."""


def job_id() -> str:
    """``ftjob-`` plus 24 alphanumeric characters; the first 8 end the ``ft:`` model name."""
    return f"ftjob-{random_token(JOB_ID_LENGTH)}"


def event_id() -> str:
    return f"ftevent-{random_token(24)}"


def checkpoint_id() -> str:
    return f"ftckpt_{random_token(24)}"


def completion_id() -> str:
    return f"chatcmpl-{random_token(29)}"


def model_id_segment(job: str) -> str:
    """The id segment of a job's ``ft:`` name: the first 8 characters after ``ftjob-``
    (the whole id part of an old 8-character job id, so old names are unchanged)."""
    return job.removeprefix("ftjob-")[:MODEL_ID_LENGTH]


def fine_tuned_model_name(base_model: str, org: str, suffix: str | None, job: str) -> str:
    """``ft:{base}:{org}:{suffix}:{id}``; the suffix segment is empty when there is none."""
    return f"ft:{base_model}:{org}:{suffix or ''}:{model_id_segment(job)}"


def checkpoint_model_name(fine_tuned_model: str, step: int) -> str:
    """``ft:…:ckpt-step-N``, the chat-usable name of one checkpoint."""
    return f"{fine_tuned_model}:ckpt-step-{step}"


def now() -> int:
    """Unix time in whole seconds, as OpenAI's ``created_at`` fields."""
    return int(time.time())
