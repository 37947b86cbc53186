"""Logging for the bot process: one format, on stderr, at TUNECORD_LOG_LEVEL."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)-8s %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    """Send every logger (discord.py's too) to stderr at ``level`` (a validated level name)."""
    logging.basicConfig(level=level, format=FORMAT, stream=sys.stderr, force=True)
    logging.captureWarnings(True)
