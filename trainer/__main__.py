"""``python -m trainer``: serve the OpenAI-compatible fine-tuning API.

See :mod:`trainer.config` for flags and environment variables, e.g.::

    TRAINER_API_KEY=sk-local python -m trainer --port 8000 --data-dir ./.tunecord/trainer

The key belongs in the environment: ``--api-key`` works but shows the key to every local
user in the process list, so it prints a warning. Serving beyond loopback without a key,
or on a data folder another trainer is using, is refused (exit status 2).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from trainer.config import ConfigError, api_key_on_command_line, check_exposure, load_config
from trainer.datadir import DataDirBusy, ensure_free
from trainer.server import serve

EXIT_REFUSED = 2
"""The exit status when the trainer refuses to start (unsafe or invalid settings, a busy data folder)."""

log = logging.getLogger("trainer")


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(argv)
        warnings = check_exposure(config)
        ensure_free(config.data_dir)  # another trainer on this folder: a message, not a traceback
    except (ConfigError, DataDirBusy) as exc:
        print(f"trainer: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    if api_key_on_command_line(argv):
        warnings.append(
            "--api-key puts the key in the process list, where every local user can read it; "
            "set TRAINER_API_KEY in the environment instead"
        )
    for warning in warnings:
        log.warning("%s", warning)
    from trainer.ml.engine import LocalEngine  # torch is loaded only when serving for real

    engine = LocalEngine(config.data_dir, chat_backend=config.chat_backend, chat_format=config.chat_format)
    try:
        serve(config, engine)
    finally:
        engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
