"""Opening what the bot needs before it connects, with one clear sentence on failure."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bot.dataset.pricing import PriceCatalogue
from bot.errors import StartupError
from storage.errors import MigrationError
from storage.store import Storage


async def open_storage(path: Path) -> Storage:
    """The database at ``path``, created (with its folder) and migrated if needed."""
    fix = "set TUNECORD_DB to a file in a folder tunecord can write to"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(
            f"cannot create the folder {path.parent} for the database ({exc.strerror or exc}): {fix}"
        ) from exc
    try:
        _probe(path)
        return await Storage.open(path)
    except MigrationError as exc:
        raise StartupError(f"the database at {path} cannot be used: {exc}") from exc
    except (OSError, sqlite3.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise StartupError(f"cannot open the database at {path} ({reason}): {fix}") from exc


def _probe(path: Path) -> None:
    """Open the file once with plain sqlite3, so an unusable path fails here.

    aiosqlite's worker thread outlives a failed connect and prints a traceback once the
    event loop has closed; a path that opens here will open there too.
    """
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA schema_version")  # reads the header: "not a database" fails here
    finally:
        conn.close()


def load_catalogue(path: Path | None) -> PriceCatalogue:
    """The price catalogue: the bundled one, or the owner's file (TUNECORD_PRICES)."""
    try:
        return PriceCatalogue.load(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StartupError(f"cannot read the price file {path} (TUNECORD_PRICES): {exc}") from exc
