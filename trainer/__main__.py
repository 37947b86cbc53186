"""``python -m trainer``: serve the OpenAI-compatible fine-tuning API.

See :mod:`trainer.config` for flags and environment variables, e.g.::

    python -m trainer --port 8000 --data-dir ./.tunecord/trainer --api-key sk-local
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from trainer.config import load_config
from trainer.server import serve


def main(argv: Sequence[str] | None = None) -> int:
    config = load_config(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if config.api_key is None and config.host not in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger("trainer").warning(
            "serving on %s without an API key: anyone who can reach it can train and chat", config.host
        )
    from trainer.ml.engine import LocalEngine  # torch is loaded only when serving for real

    serve(config, LocalEngine(config.data_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
