"""Validation of ``POST /v1/fine_tuning/jobs`` parameters (the synchronous 400s).

Ranges and limits follow the OpenAPI spec and the SDK docstrings: ``suffix`` 1–64
characters, ``seed`` 0–2147483647, ``metadata`` at most 16 string pairs (keys ≤ 64,
values ≤ 512 characters), ``n_epochs`` 1–50, ``batch_size`` 1–256,
``learning_rate_multiplier`` > 0, DPO ``beta`` in (0, 2], each also ``"auto"``;
``method.type`` ``supervised`` or ``dpo`` (``reinforcement`` is refused); only ``wandb``
integrations.  Error messages copy OpenAI's validation wording
(``Invalid 'suffix': string too long. …``, code ``string_above_max_length``).
"""

from __future__ import annotations

import math
from typing import Any

from .errors import bad_request

HYPERPARAMETER_RANGES: dict[str, tuple[type, float, float]] = {
    "n_epochs": (int, 1, 50),
    "batch_size": (int, 1, 256),
    "learning_rate_multiplier": (float, 0, math.inf),
    "beta": (float, 0, 2),
}


def check_suffix(suffix: Any) -> str | None:
    """``suffix``: optional string of 1 to 64 characters."""
    if suffix is not None:
        if not isinstance(suffix, str):
            raise bad_request(
                "Invalid type for 'suffix': expected a string.",
                param="suffix",
                code="invalid_type",
            )
        if len(suffix) > 64:
            raise bad_request(
                "Invalid 'suffix': string too long. Expected a string with maximum length 64, "
                f"but got a string with length {len(suffix)} instead.",
                param="suffix",
                code="string_above_max_length",
            )
        if not suffix:
            raise bad_request(
                "Invalid 'suffix': string too short. Expected a string with minimum length 1, "
                "but got an empty string instead.",
                param="suffix",
                code="string_below_min_length",
            )
    return suffix


def check_seed(seed: Any) -> int | None:
    """``seed``: optional integer in ``[0, 2147483647]``."""
    if seed is not None and (
        not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= 2147483647
    ):
        raise bad_request(
            "Invalid 'seed': expected an integer between 0 and 2147483647.",
            param="seed",
            code="invalid_value",
        )
    return seed


def check_metadata(metadata: Any) -> dict[str, str] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise bad_request(
            "Invalid type for 'metadata': expected an object.",
            param="metadata",
            code="invalid_type",
        )
    if len(metadata) > 16:
        raise bad_request(
            "Invalid 'metadata': too many properties. Expected an object with at most 16 properties, "
            f"but got an object with {len(metadata)} properties instead.",
            param="metadata",
            code="object_above_max_properties",
        )
    for key, value in metadata.items():
        if len(key) > 64:
            raise bad_request(
                f"Invalid 'metadata': key '{key[:20]}…' is longer than 64 characters.",
                param="metadata",
                code="string_above_max_length",
            )
        if not isinstance(value, str):
            raise bad_request(
                f"Invalid type for 'metadata.{key}': expected a string.",
                param=f"metadata.{key}",
                code="invalid_type",
            )
        if len(value) > 512:
            raise bad_request(
                f"Invalid 'metadata.{key}': string too long. Expected a string with maximum length 512, "
                f"but got a string with length {len(value)} instead.",
                param=f"metadata.{key}",
                code="string_above_max_length",
            )
    return dict(metadata)


def check_hyperparameters(hyper: Any, allowed: tuple[str, ...], where: str) -> dict[str, Any]:
    if hyper is None:
        return {}
    if not isinstance(hyper, dict):
        raise bad_request(
            f"Invalid type for '{where}': expected an object.", param=where, code="invalid_type"
        )
    out: dict[str, Any] = {}
    for key, value in hyper.items():
        if key not in allowed:
            raise bad_request(
                f"Unknown parameter: '{where}.{key}'.",
                param=f"{where}.{key}",
                code="unknown_parameter",
            )
        if value == "auto":
            out[key] = value
            continue
        kind, low, high = HYPERPARAMETER_RANGES[key]
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and kind is int:
            ok = isinstance(value, int) and low <= value <= high
        elif ok:
            ok = low < value <= high
        if not ok:
            raise bad_request(
                f"Invalid value for '{where}.{key}': {value!r}.",
                param=f"{where}.{key}",
                code="invalid_value",
            )
        out[key] = value
    return out


def check_method(method: Any, legacy: Any) -> tuple[str, dict[str, Any]]:
    supervised_keys = ("batch_size", "learning_rate_multiplier", "n_epochs")
    legacy_values = check_hyperparameters(legacy, supervised_keys, "hyperparameters")
    if method is None:
        return "supervised", legacy_values
    if not isinstance(method, dict) or method.get("type") not in (
        "supervised",
        "dpo",
        "reinforcement",
    ):
        raise bad_request(
            "Invalid value for 'method.type': expected 'supervised', 'dpo' or 'reinforcement'.",
            param="method.type",
            code="invalid_value",
        )
    kind = method["type"]
    if kind == "reinforcement":
        raise bad_request(
            "Reinforcement fine-tuning is not available for this model.",
            param="method.type",
            code="invalid_value",
        )
    inner = method.get(kind) or {}
    allowed = supervised_keys + (("beta",) if kind == "dpo" else ())
    values = check_hyperparameters(
        inner.get("hyperparameters"), allowed, f"method.{kind}.hyperparameters"
    )
    if values and legacy_values:
        raise bad_request(
            "Specify hyperparameters either in 'hyperparameters' or in 'method', not both.",
            param="hyperparameters",
            code="invalid_value",
        )
    return kind, values or legacy_values


def check_integrations(value: Any) -> list[dict[str, Any]] | None:
    if not value:
        return None
    if not isinstance(value, list) or len(value) > 5:
        raise bad_request(
            "Invalid 'integrations': expected a list of at most 5 items.", param="integrations"
        )
    out = []
    for item in value:
        if (
            not isinstance(item, dict)
            or item.get("type") != "wandb"
            or not (item.get("wandb") or {}).get("project")
        ):
            raise bad_request(
                "Only 'wandb' integrations with a 'project' are supported.", param="integrations"
            )
        wandb = item["wandb"]
        out.append(
            {
                "type": "wandb",
                "wandb": {
                    "project": wandb["project"],
                    "name": wandb.get("name"),
                    "entity": wandb.get("entity"),
                    "tags": wandb.get("tags", []),
                },
            }
        )
    return out
