"""Settings, read once at start from the environment and an optional ``.env`` file.

Nothing here runs at import time: :func:`load_settings` is called by the entry point and
the resulting :class:`Settings` is passed to whatever needs it. Secrets never appear in
``repr()`` or logs.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import dotenv_values

BACKENDS = ("trainer", "openai")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
EXTRA_BODY_PARTS = ("jobs", "chat")
"""Which requests ``TUNECORD_PROVIDER_EXTRA_BODY`` adds fields to: job creation, chat completions."""
EXTRA_BODY_EXAMPLE = '{"jobs": {"trainingType": "GlobalStandard"}, "chat": {"top_k": 40}}'


class SettingsError(ValueError):
    """A setting is missing or malformed; the message says which and how to fix it."""


@dataclass(frozen=True)
class Settings:
    discord_token: str | None = field(default=None, repr=False)
    database_path: Path = Path(".tunecord/tunecord.sqlite3")
    backend: str = "trainer"
    trainer_url: str = "http://127.0.0.1:8000/v1"
    trainer_api_key: str | None = field(default=None, repr=False)
    start_trainer: bool = True
    trainer_data_dir: Path = Path(".tunecord/trainer")
    openai_api_key: str | None = field(default=None, repr=False)
    openai_base_url: str | None = None
    default_model: str = "smollm2-135m-instruct"
    prices_path: Path | None = None
    log_level: str = "INFO"
    discord_api_base: str | None = None
    discord_gateway_url: str | None = None
    dev_guild_id: int | None = None
    job_poll_seconds: float = 30.0
    provider_connect_timeout: float = 5.0
    provider_timeout: float = 120.0
    provider_max_retries: int = 2
    provider_extra_body: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False)
    """Extra JSON fields per request kind (``jobs``, ``chat``), for providers that need them."""
    trainer_port: int | None = None
    """The port of the trainer the bot starts: TRAINER_URL's when it was set (loopback);
    ``None``: a free port, picked at start."""
    trainer_start_timeout: float = 120.0

    @property
    def backend_url(self) -> str | None:
        return self.trainer_url if self.backend == "trainer" else self.openai_base_url

    @property
    def backend_api_key(self) -> str | None:
        return self.trainer_api_key if self.backend == "trainer" else self.openai_api_key


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"expected true/false, got {value!r}")


def _url(name: str, value: str | None, schemes: tuple[str, ...], example: str) -> str | None:
    if value is None:
        return None
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in schemes or not rest.strip("/"):
        raise SettingsError(f"{name} must be a {' or '.join(schemes)} URL such as {example}, not {value!r}")
    return value.rstrip("/")


def _snowflake(name: str, value: str | None) -> int | None:
    if value is None:
        return None
    if not value.strip().isdigit() or int(value) <= 0:
        raise SettingsError(f"{name} must be a Discord server ID (a number), not {value!r}")
    return int(value)


def _number(
    name: str, value: str | None, default: float, low: float, high: float, *, integer: bool = False
) -> float:
    if value is None:
        return default
    try:
        number = int(value) if integer else float(value)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise SettingsError(f"{name} must be {kind} between {low:g} and {high:g}, not {value!r}") from None
    if not low <= number <= high:
        raise SettingsError(f"{name} must be between {low:g} and {high:g}, not {value!r}")
    return number


def _extra_body(value: str | None) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    fix = (
        "TUNECORD_PROVIDER_EXTRA_BODY must be a JSON object whose keys are "
        f"{' and/or '.join(EXTRA_BODY_PARTS)}, each an object of extra request fields, "
        f"such as {EXTRA_BODY_EXAMPLE}"
    )
    try:
        parsed = json.loads(value)
    except ValueError:
        raise SettingsError(f"{fix}; it is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise SettingsError(fix)
    unknown = sorted(set(parsed) - set(EXTRA_BODY_PARTS))
    if unknown:
        raise SettingsError(f"{fix}; unknown key {unknown[0]!r}")
    if not all(isinstance(v, dict) for v in parsed.values()):
        raise SettingsError(fix)
    return parsed


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback address (``127.0.0.0/8``, ``::1``)."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _trainer_port(url: str | None, starting: bool) -> int | None:
    """TRAINER_URL's port for the trainer the bot starts (``None``: pick a free one)."""
    if url is None or not starting:
        return None
    parts = urlsplit(url)
    if not is_loopback_host(parts.hostname or ""):
        raise SettingsError(
            f"TRAINER_URL points at {parts.hostname}, but TUNECORD_START_TRAINER starts a trainer on "
            "this machine: set TUNECORD_START_TRAINER=false to use the trainer at TRAINER_URL, "
            "or leave TRAINER_URL empty (or on 127.0.0.1)"
        )
    try:
        return parts.port
    except ValueError:
        raise SettingsError(f"TRAINER_URL has an invalid port: {url!r}") from None


def load_settings(
    environ: Mapping[str, str], env_file: Path | None = Path(".env")
) -> Settings:
    """Settings from ``environ``, falling back to ``env_file`` (the environment wins)."""
    values: dict[str, str | None] = {}
    if env_file is not None and env_file.is_file():
        values.update(dotenv_values(env_file))
    values.update(environ)

    def get(name: str) -> str | None:
        value = values.get(name)
        return value if value not in (None, "") else None

    backend = (get("TUNECORD_BACKEND") or "trainer").lower()
    if backend not in BACKENDS:
        raise SettingsError(f"TUNECORD_BACKEND must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend == "openai" and not get("OPENAI_API_KEY"):
        raise SettingsError("TUNECORD_BACKEND=openai needs OPENAI_API_KEY")
    prices = get("TUNECORD_PRICES")
    try:
        start_trainer = _flag(get("TUNECORD_START_TRAINER"), backend == "trainer")
    except SettingsError as exc:
        raise SettingsError(f"TUNECORD_START_TRAINER: {exc}") from None
    trainer_url = _url(
        "TRAINER_URL", get("TRAINER_URL"), ("http", "https"), "http://127.0.0.1:8000/v1"
    )
    log_level = (get("TUNECORD_LOG_LEVEL") or "INFO").upper()
    if log_level not in LOG_LEVELS:
        raise SettingsError(
            f"TUNECORD_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {log_level!r}"
        )
    return Settings(
        discord_token=get("DISCORD_TOKEN"),
        database_path=Path(get("TUNECORD_DB") or Settings.database_path),
        backend=backend,
        trainer_url=trainer_url or Settings.trainer_url,
        trainer_api_key=get("TRAINER_API_KEY"),
        start_trainer=start_trainer,
        trainer_data_dir=Path(get("TRAINER_DATA_DIR") or Settings.trainer_data_dir),
        openai_api_key=get("OPENAI_API_KEY"),
        openai_base_url=get("OPENAI_BASE_URL"),
        default_model=get("TUNECORD_DEFAULT_MODEL") or Settings.default_model,
        prices_path=Path(prices) if prices else None,
        log_level=log_level,
        discord_api_base=_url(
            "DISCORD_API_BASE", get("DISCORD_API_BASE"), ("http", "https"),
            "http://127.0.0.1:8080/api/v10",
        ),
        discord_gateway_url=_url(
            "DISCORD_GATEWAY_URL", get("DISCORD_GATEWAY_URL"), ("ws", "wss"),
            "ws://127.0.0.1:8080/gateway",
        ),
        dev_guild_id=_snowflake("DEV_GUILD_ID", get("DEV_GUILD_ID")),
        job_poll_seconds=_number(
            "TUNECORD_JOB_POLL_SECONDS", get("TUNECORD_JOB_POLL_SECONDS"), 30.0, 1, 86_400
        ),
        provider_connect_timeout=_number(
            "TUNECORD_PROVIDER_CONNECT_TIMEOUT", get("TUNECORD_PROVIDER_CONNECT_TIMEOUT"), 5.0, 0.1, 120
        ),
        provider_timeout=_number(
            "TUNECORD_PROVIDER_TIMEOUT", get("TUNECORD_PROVIDER_TIMEOUT"), 120.0, 1, 3_600
        ),
        provider_max_retries=int(
            _number(
                "TUNECORD_PROVIDER_MAX_RETRIES", get("TUNECORD_PROVIDER_MAX_RETRIES"), 2, 0, 10,
                integer=True,
            )
        ),
        provider_extra_body=_extra_body(get("TUNECORD_PROVIDER_EXTRA_BODY")),
        trainer_port=_trainer_port(trainer_url, backend == "trainer" and start_trainer),
        trainer_start_timeout=_number(
            "TUNECORD_TRAINER_START_TIMEOUT", get("TUNECORD_TRAINER_START_TIMEOUT"), 120.0, 1, 3_600
        ),
    )
