"""``python -m bot``: start tunecord.

The composition root: settings, logging, the database, the price catalogue, the services,
the backend (the bundled trainer started as a child process, by default), its provider and
the Discord client are made here, once, and handed to what needs them. A start-up failure
ends with one sentence on stderr and exit code 1 (2 for configuration errors); SIGTERM or
Ctrl-C lets the interactions in progress finish, then stops the trainer, closes the
database and exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from bot.backend.running import running_backend
from bot.client.bot import create_bot
from bot.client.endpoints import point_discord_at
from bot.client.lifecycle import serve, stop_event_on_signals
from bot.errors import StartupError
from bot.log_setup import configure_logging
from bot.providers import build_provider
from bot.services.registry import build_services
from bot.settings import Settings, SettingsError, load_settings
from bot.startup import load_catalogue, open_storage

log = logging.getLogger("bot")

TOKEN_HELP = """tunecord needs a Discord bot token to start.

  1. Create an application and a bot at https://discord.com/developers/applications
  2. Copy .env.example to .env and set DISCORD_TOKEN=<your bot token>
     (or export DISCORD_TOKEN in the environment)
  3. Run the same command again.
"""


async def run(settings: Settings, token: str) -> None:
    """Open everything, serve Discord until a stop signal, close everything."""
    stop = stop_event_on_signals()
    point_discord_at(settings.discord_api_base, settings.discord_gateway_url)
    storage = await open_storage(settings.database_path)
    try:
        catalogue = load_catalogue(settings.prices_path)
        async with running_backend(settings, stop) as trainer:
            provider = (
                build_provider(settings, base_url=trainer.url, api_key=trainer.api_key)
                if trainer is not None
                else build_provider(settings)
            )
            services = build_services(storage, catalogue, settings.default_model)
            bot = create_bot(settings, storage, catalogue, services, provider=provider)
            await serve(bot, token, stop)
    finally:
        await storage.close()
        log.info("database closed")


def main() -> int:
    try:
        settings = load_settings(os.environ)
    except SettingsError as exc:
        print(f"tunecord: configuration error: {exc}", file=sys.stderr)
        return 2
    if not settings.discord_token:
        print(TOKEN_HELP, file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        asyncio.run(run(settings, settings.discord_token))
    except StartupError as exc:
        print(f"tunecord: {str(exc).rstrip('.')}.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
