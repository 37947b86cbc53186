"""Logging for the bot process: one format, on stderr, at TUNECORD_LOG_LEVEL."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)-8s %(name)s: %(message)s"
QUIET_LOGGERS = ("httpx", "httpx2", "httpcore")


def configure_logging(level: str) -> None:
    """Send every logger (discord.py's too) to stderr at ``level`` (a validated level name)."""
    logging.basicConfig(level=level, format=FORMAT, stream=sys.stderr, force=True)
    logging.captureWarnings(True)
    for chatty in QUIET_LOGGERS:  # a line per HTTP request: job polling would flood the log
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLevelName(level)))
