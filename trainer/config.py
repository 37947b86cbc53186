"""Trainer server settings: defaults, environment variables and command-line flags.

Precedence, highest first: CLI flag, environment variable, default.

| Setting    | Flag           | Env var            | Default               |
|------------|----------------|--------------------|-----------------------|
| host       | ``--host``     | ``TRAINER_HOST``   | ``127.0.0.1``         |
| port       | ``--port``     | ``TRAINER_PORT``   | ``8000``              |
| data dir   | ``--data-dir`` | ``TRAINER_DATA_DIR`` | ``./.tunecord/trainer`` |
| API key    | ``--api-key``  | ``TRAINER_API_KEY``| none (no auth)        |
| org        | ``--org``      | ``TRAINER_ORG``    | ``tunecord``          |
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_DATA_DIR = Path(".tunecord/trainer")
DEFAULT_ORG = "tunecord"
DEFAULT_MAX_UPLOAD_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class TrainerConfig:
    """Everything the server needs that is not the engine."""

    data_dir: Path = DEFAULT_DATA_DIR
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_key: str | None = None
    """When set, every request must carry ``Authorization: Bearer <api_key>``."""
    org: str = DEFAULT_ORG
    """The organisation segment of ``ft:{base}:{org}:{suffix}:{id}`` model names."""
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES

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
    parser.add_argument("--host", help=f"interface to bind (env TRAINER_HOST, default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, help=f"port (env TRAINER_PORT, default {DEFAULT_PORT})")
    parser.add_argument(
        "--data-dir", type=Path, help=f"state directory (env TRAINER_DATA_DIR, default {DEFAULT_DATA_DIR})"
    )
    parser.add_argument("--api-key", help="require this bearer key (env TRAINER_API_KEY)")
    parser.add_argument("--org", help=f"org segment of ft: model names (env TRAINER_ORG, default {DEFAULT_ORG})")
    return parser


def load_config(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> TrainerConfig:
    """Build the config from ``argv`` (flags) over ``env`` over the defaults."""
    env = os.environ if env is None else env
    args = build_parser().parse_args(argv)
    port_text = env.get("TRAINER_PORT")
    return TrainerConfig(
        host=args.host or env.get("TRAINER_HOST") or DEFAULT_HOST,
        port=args.port if args.port is not None else int(port_text) if port_text else DEFAULT_PORT,
        data_dir=args.data_dir or Path(env.get("TRAINER_DATA_DIR") or DEFAULT_DATA_DIR),
        api_key=args.api_key or env.get("TRAINER_API_KEY") or None,
        org=args.org or env.get("TRAINER_ORG") or DEFAULT_ORG,
    )
