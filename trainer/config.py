"""Trainer server settings: defaults, environment variables and command-line flags.

Precedence, highest first: CLI flag, environment variable, default.

| Setting       | Flag              | Env var                 | Default                 |
|---------------|-------------------|-------------------------|-------------------------|
| host          | ``--host``        | ``TRAINER_HOST``        | ``127.0.0.1``           |
| port          | ``--port``        | ``TRAINER_PORT``        | ``8000``                |
| data dir      | ``--data-dir``    | ``TRAINER_DATA_DIR``    | ``./.tunecord/trainer`` |
| API key       | ``--api-key``     | ``TRAINER_API_KEY``     | none (loopback only)    |
| org           | ``--org``         | ``TRAINER_ORG``         | ``tunecord``            |
| extra Host names | ``--allowed-hosts`` | ``TRAINER_ALLOWED_HOSTS`` | none              |
| chats at once | ``--chat-slots``  | ``TRAINER_CHAT_SLOTS``  | 4                       |
| chats waiting | ``--chat-queue``  | ``TRAINER_CHAT_QUEUE``  | 16                      |
| chat backend  | ``--chat-backend`` | ``TRAINER_CHAT_BACKEND`` | ``auto`` (llama.cpp where it can) |
| chat format   | ``--chat-format`` | ``TRAINER_CHAT_FORMAT`` | ``q8_0`` (GGUF for llama.cpp) |

Exposure rules (:func:`check_exposure`): a server bound beyond loopback refuses to start
without a key; an empty key (``TRAINER_API_KEY=``) means "no key" and is accepted on
loopback only, with a warning. Prefer ``TRAINER_API_KEY`` to ``--api-key``: a flag is
visible to every local user in the process list.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_DATA_DIR = Path(".tunecord/trainer")
DEFAULT_ORG = "tunecord"
DEFAULT_MAX_UPLOAD_BYTES = 512 * 1024 * 1024
MAX_JSON_BODY_BYTES = 4 * 1024 * 1024
"""Largest JSON request body (chat, job creation): larger ones get a 413 before being read."""
DEFAULT_CHAT_SLOTS = 4
"""Chat completions generating at the same time."""
DEFAULT_CHAT_QUEUE = 16
"""Chat completions waiting for a slot; one more is answered 429 with ``retry-after``."""
CHAT_BACKENDS = ("auto", "llama", "torch")
CHAT_FORMATS = ("q8_0", "q4_0", "f16", "bf16", "f32")
"""GGUF formats the exporter writes (``trainer.ml.gguf_export`` takes them from here)."""
DEFAULT_CHAT_FORMAT = "q8_0"

_KEY_CHARACTERS = re.compile(r"[\x21-\x7e]+")
"""A key travels in an HTTP header: printable ASCII without spaces."""


class ConfigError(Exception):
    """A setting the server cannot start with; the message names it."""


@dataclass(frozen=True)
class TrainerConfig:
    """Everything the server needs that is not the engine."""

    data_dir: Path = DEFAULT_DATA_DIR
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_key: str | None = None
    """When set and not empty, every request but ``GET /health`` must carry
    ``Authorization: Bearer <api_key>``. ``""`` is an explicitly empty key: no key, loopback only."""
    org: str = DEFAULT_ORG
    """The organisation segment of ``ft:{base}:{org}:{suffix}:{id}`` model names."""
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_json_bytes: int = MAX_JSON_BODY_BYTES
    allowed_hosts: tuple[str, ...] = ()
    """``Host`` names accepted besides IP addresses, ``localhost`` and the bound host; ``*``: any."""
    chat_slots: int = DEFAULT_CHAT_SLOTS
    chat_queue: int = DEFAULT_CHAT_QUEUE
    chat_backend: str = "auto"
    """``auto``: llama.cpp where it can serve the model, else PyTorch (see trainer.ml.engine)."""
    chat_format: str = DEFAULT_CHAT_FORMAT
    """The GGUF format llama.cpp serves from."""

    @property
    def db_path(self) -> Path:
        return self.data_dir / "trainer.sqlite3"

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m trainer`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m trainer",
        description="tunecord trainer: an OpenAI-compatible fine-tuning and chat server.",
    )
    parser.add_argument("--host", help=f"interface to bind (env TRAINER_HOST, default {DEFAULT_HOST}); "
                                       "beyond loopback a key is required")  # fmt: skip
    parser.add_argument("--port", help=f"port (env TRAINER_PORT, default {DEFAULT_PORT})")
    parser.add_argument(
        "--data-dir", type=Path, help=f"state directory (env TRAINER_DATA_DIR, default {DEFAULT_DATA_DIR})"
    )
    parser.add_argument(
        "--api-key",
        help="require this bearer key; prefer the environment variable TRAINER_API_KEY, since a flag "
        "is visible to other local users in the process list",
    )
    parser.add_argument("--org", help=f"org segment of ft: model names (env TRAINER_ORG, default {DEFAULT_ORG})")
    parser.add_argument(
        "--allowed-hosts",
        help="comma-separated Host names to answer to besides IP addresses and localhost, '*' for any "
        "(env TRAINER_ALLOWED_HOSTS)",
    )
    parser.add_argument("--chat-slots", help=f"chat completions generating at once "
                                             f"(env TRAINER_CHAT_SLOTS, default {DEFAULT_CHAT_SLOTS})")  # fmt: skip
    parser.add_argument("--chat-queue", help=f"chat completions waiting before 429 "
                                             f"(env TRAINER_CHAT_QUEUE, default {DEFAULT_CHAT_QUEUE})")  # fmt: skip
    parser.add_argument("--chat-backend", help="auto, llama or torch (env TRAINER_CHAT_BACKEND, default auto: "
                                               "llama.cpp where it can serve the model)")  # fmt: skip
    parser.add_argument("--chat-format", help=f"GGUF format llama.cpp serves from: {', '.join(CHAT_FORMATS)} "
                                              f"(env TRAINER_CHAT_FORMAT, default {DEFAULT_CHAT_FORMAT})")  # fmt: skip
    return parser


def _choice(name: str, text: str | None, default: str, choices: Sequence[str]) -> str:
    if text is None or text.strip() == "":
        return default
    value = text.strip().lower()
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {text!r}.")
    return value


def _int(name: str, text: str | None, default: int, low: int, high: int) -> int:
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {text!r}.") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}.")
    return value


def _api_key(flag: str | None, env_value: str | None) -> str | None:
    raw, name = (flag, "--api-key") if flag is not None else (env_value, "TRAINER_API_KEY")
    if raw is None:
        return None
    key = raw.strip()
    if key and not _KEY_CHARACTERS.fullmatch(key):
        raise ConfigError(f"{name} must be printable ASCII without spaces (it is sent in an HTTP header).")
    return key


def load_config(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> TrainerConfig:
    """Build the config from ``argv`` (flags) over ``env`` over the defaults.

    Raises :class:`ConfigError` for a value that is not a number where one is needed or
    a key that cannot be sent in a header.
    """
    env = os.environ if env is None else env
    args = build_parser().parse_args(argv)

    def pick(flag: str | None, var: str) -> str | None:
        return flag if flag is not None else env.get(var)

    hosts = pick(args.allowed_hosts, "TRAINER_ALLOWED_HOSTS") or ""
    return TrainerConfig(
        host=args.host or env.get("TRAINER_HOST") or DEFAULT_HOST,
        port=_int("TRAINER_PORT (--port)", pick(args.port, "TRAINER_PORT"), DEFAULT_PORT, 0, 65535),
        data_dir=args.data_dir or Path(env.get("TRAINER_DATA_DIR") or DEFAULT_DATA_DIR),
        api_key=_api_key(args.api_key, env.get("TRAINER_API_KEY")),
        org=args.org or env.get("TRAINER_ORG") or DEFAULT_ORG,
        allowed_hosts=tuple(h.strip().lower().rstrip(".") for h in hosts.split(",") if h.strip()),
        chat_slots=_int("TRAINER_CHAT_SLOTS (--chat-slots)", pick(args.chat_slots, "TRAINER_CHAT_SLOTS"),
                        DEFAULT_CHAT_SLOTS, 1, 256),  # fmt: skip
        chat_queue=_int("TRAINER_CHAT_QUEUE (--chat-queue)", pick(args.chat_queue, "TRAINER_CHAT_QUEUE"),
                        DEFAULT_CHAT_QUEUE, 0, 10_000),  # fmt: skip
        chat_backend=_choice("TRAINER_CHAT_BACKEND (--chat-backend)",
                             pick(args.chat_backend, "TRAINER_CHAT_BACKEND"), "auto", CHAT_BACKENDS),  # fmt: skip
        chat_format=_choice("TRAINER_CHAT_FORMAT (--chat-format)",
                            pick(args.chat_format, "TRAINER_CHAT_FORMAT"), DEFAULT_CHAT_FORMAT, CHAT_FORMATS),  # fmt: skip
    )


def api_key_on_command_line(argv: Sequence[str] | None) -> bool:
    """Whether ``--api-key`` was given as a flag (then the key shows in the process list)."""
    return build_parser().parse_args(argv).api_key is not None


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (``127.0.0.0/8``, ``::1``); a wildcard is not."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_exposure(config: TrainerConfig) -> list[str]:
    """Refuse (:class:`ConfigError`) to serve beyond loopback without a key; return warnings.

    * bound beyond loopback (``0.0.0.0``, a LAN address, a host name) with no key, or an
      empty one: refused;
    * an empty key on loopback: served without a key, with a warning;
    * ``*`` in the allowed hosts without a key: refused (it would undo the DNS-rebinding check).
    """
    loopback = is_loopback(config.host)
    if not config.api_key:
        empty = "an empty TRAINER_API_KEY (--api-key)" if config.api_key == "" else "no API key"
        if not loopback:
            raise ConfigError(
                f"Refusing to serve on {config.host} with {empty}: anyone who can reach it could train, "
                "chat and read your files. Set TRAINER_API_KEY to a secret, or bind to 127.0.0.1."
            )
        if "*" in config.allowed_hosts:
            raise ConfigError("TRAINER_ALLOWED_HOSTS='*' needs an API key: set TRAINER_API_KEY.")
    warnings = []
    if config.api_key == "":
        warnings.append(
            "TRAINER_API_KEY (--api-key) is set but empty: serving WITHOUT a key, on loopback only."
        )
    return warnings
