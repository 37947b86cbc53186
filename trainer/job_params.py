"""Checking a ``POST /v1/fine_tuning/jobs`` body against OpenAI's rules.

Returns the parts the server uses, or raises a 400 :class:`APIError` naming the
parameter, with OpenAI's limits: ``suffix`` 1-64 characters, ``seed`` 0..2147483647,
``n_epochs`` 1-50, ``batch_size`` 1-256, at most 16 metadata pairs (keys ≤ 64, values ≤
512 characters). Stricter than OpenAI where a value would only fail later: a ``suffix``
is letters, digits, ``-`` and ``_`` only (it becomes part of a model name and of paths),
and ``learning_rate_multiplier`` is greater than 0 and at most
:data:`MAX_LEARNING_RATE_MULTIPLIER`. Only the ``supervised`` method is trained here;
hyperparameters may come top-level (deprecated) or under ``method``.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from trainer.errors import APIError, bad_request, too_long

MAX_SEED = 2147483647
MAX_SUFFIX_CHARS = 64
SUFFIX_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
MAX_METADATA_PAIRS = 16
MAX_LEARNING_RATE_MULTIPLIER = 100.0
_RANGES: dict[str, tuple[type, float, float]] = {
    "n_epochs": (int, 1, 50),
    "batch_size": (int, 1, 256),
    "learning_rate_multiplier": (float, 0, MAX_LEARNING_RATE_MULTIPLIER),
}


@dataclass(frozen=True)
class JobParams:
    model: str
    training_file: str
    validation_file: str | None
    suffix: str | None
    seed: int
    metadata: dict[str, str] | None
    hyperparameters: dict[str, Any]
    """Only the keys the caller set; values are numbers or ``"auto"``."""


def _string(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise bad_request(f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")
        return None
    if not isinstance(value, str):
        raise bad_request(f"Invalid type for '{name}': expected a string.", param=name, code="invalid_type")
    return value


def _number_text(value: float) -> str:
    text = repr(value)
    return text if len(text) <= 24 else text[:21] + "…"


def _hyperparameters(raw: Any, param: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise bad_request(f"Invalid type for '{param}': expected an object.", param=param, code="invalid_type")
    out: dict[str, Any] = {}
    for name, value in raw.items():
        where = f"{param}.{name}"
        if name not in _RANGES:
            raise bad_request(f"Unrecognized hyperparameter: '{where}'.", param=where)
        if value == "auto" or value is None:
            continue
        kind, low, high = _RANGES[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad_request(f"Invalid '{where}': expected 'auto' or a number.", param=where, code="invalid_type")
        ok = (value > low if kind is float else value >= low) and value <= high  # no float(): 10**400 is an int
        if not ok:
            bounds = f"greater than {low} and at most {high:g}" if kind is float else f"between {low} and {high}"
            raise bad_request(f"Invalid '{where}': must be 'auto' or {bounds}, got {_number_text(value)}.", param=where)
        if kind is int and not float(value).is_integer():
            raise bad_request(f"Invalid '{where}': expected 'auto' or an integer.", param=where, code="invalid_type")
        out[name] = kind(value)
    return out


def _method_hyperparameters(body: dict[str, Any]) -> dict[str, Any]:
    legacy = _hyperparameters(body.get("hyperparameters"), "hyperparameters")
    method = body.get("method")
    if method is None:
        return legacy
    if not isinstance(method, dict):
        raise bad_request("Invalid type for 'method': expected an object.", param="method", code="invalid_type")
    kind = method.get("type")
    if kind != "supervised":
        raise bad_request(
            f"Fine-tuning method {kind!r} is not supported by this server; use 'supervised'.",
            param="method.type",
        )
    supervised = method.get("supervised") or {}
    if not isinstance(supervised, dict):
        raise bad_request("Invalid type for 'method.supervised'.", param="method.supervised", code="invalid_type")
    nested = _hyperparameters(supervised.get("hyperparameters"), "method.supervised.hyperparameters")
    if legacy and nested and legacy != nested:
        raise bad_request(
            "Specify hyperparameters either in 'hyperparameters' or in 'method', not both.", param="hyperparameters"
        )
    return nested or legacy


def _metadata(raw: Any) -> dict[str, str] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise bad_request("Invalid 'metadata': expected an object of string values.", param="metadata")
    if len(raw) > MAX_METADATA_PAIRS:
        raise bad_request(f"Invalid 'metadata': at most {MAX_METADATA_PAIRS} pairs, got {len(raw)}.", param="metadata")
    for key, value in raw.items():
        if len(key) > 64:
            raise too_long(f"metadata.{key[:16]}…", 64, len(key))
        if len(value) > 512:
            raise too_long(f"metadata.{key}", 512, len(value))
    return dict(raw)


def _seed(raw: Any) -> int:
    if raw is None:
        return secrets.randbelow(MAX_SEED + 1)
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= MAX_SEED:
        raise bad_request(f"Invalid 'seed': must be an integer between 0 and {MAX_SEED}.", param="seed")
    return raw


def parse_job_params(body: Any) -> JobParams:
    """Validate a create-job body; raises a 400 :class:`APIError` on the first problem."""
    if not isinstance(body, dict):
        raise APIError(400, "The request body must be a JSON object.")
    suffix = _string(body, "suffix")
    if suffix is not None:
        if len(suffix) > MAX_SUFFIX_CHARS:
            raise too_long("suffix", MAX_SUFFIX_CHARS, len(suffix))
        if not SUFFIX_PATTERN.fullmatch(suffix):
            raise bad_request(
                f"Invalid 'suffix': use 1-{MAX_SUFFIX_CHARS} letters, digits, '-' or '_' "
                "(it becomes part of the model name).",
                param="suffix",
                code="invalid_suffix",
            )
    if body.get("integrations"):
        raise bad_request("Integrations are not supported by this server.", param="integrations")
    return JobParams(
        model=_string(body, "model", required=True) or "",
        training_file=_string(body, "training_file", required=True) or "",
        validation_file=_string(body, "validation_file"),
        suffix=suffix,
        seed=_seed(body.get("seed")),
        metadata=_metadata(body.get("metadata")),
        hyperparameters=_method_hyperparameters(body),
    )
