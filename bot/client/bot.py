"""The bot: one ``commands.Bot`` holding the settings, storage, prices, services and the
backend's provider."""

from __future__ import annotations

import asyncio
import importlib
import logging
import pkgutil
from collections.abc import Callable, Coroutine
from typing import Any

import discord
from discord.ext import commands

from bot.client.inflight import InFlight
from bot.client.permissions import INVITE_PERMISSIONS, invite_url, permission_names
from bot.client.sync import sync_commands
from bot.client.tree import TunecordTree
from bot.dataset.pricing import PriceCatalogue
from bot.providers import Provider, build_provider
from bot.services.registry import Services, build_services
from bot.settings import Settings
from storage.store import Storage

log = logging.getLogger(__name__)

COGS_PACKAGE = "cogs"

MessageReader = Callable[[discord.Message], Coroutine[Any, Any, None] | None]
"""Reads each message the gateway delivers: cheap checks, then the work to do for it (a
coroutine, awaited in the bot's own ``on_message`` task) or None when there is none."""


def bot_intents() -> discord.Intents:
    """The gateway intents the bot needs, and no others."""
    intents = discord.Intents.none()
    intents.guilds = True  # channels, roles and the bot's own member: permission checks
    intents.guild_messages = True  # messages posted in chat channels
    intents.message_content = True  # privileged: their text, for chat and "Add to dataset"
    return intents


def extension_names(package: str = COGS_PACKAGE) -> list[str]:
    """Every cog module in ``package`` (names starting with ``_`` are helpers, not cogs)."""
    root = importlib.import_module(package)
    return sorted(
        f"{package}.{module.name}"
        for module in pkgutil.iter_modules(root.__path__)
        if not module.name.startswith("_")
    )


class TunecordBot(commands.Bot):
    """Slash commands only: cogs reach everything through the typed attributes."""

    settings: Settings
    storage: Storage
    catalogue: PriceCatalogue
    services: Services
    provider: Provider
    in_flight: InFlight

    def __init__(
        self,
        *,
        settings: Settings,
        storage: Storage,
        catalogue: PriceCatalogue,
        services: Services,
        provider: Provider,
        **options: Any,
    ) -> None:
        options.setdefault("intents", bot_intents())
        # tunecord has no voice features: no start-up warnings about voice libraries.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        super().__init__(
            command_prefix=commands.when_mentioned,
            help_command=None,
            tree_cls=TunecordTree,
            allowed_mentions=discord.AllowedMentions.none(),
            **options,
        )
        self.settings = settings
        self.storage = storage
        self.catalogue = catalogue
        self.services = services
        self.provider = provider
        self.in_flight = InFlight()
        self.message_readers: list[MessageReader] = []

    async def setup_hook(self) -> None:
        for name in extension_names():
            await self.load_extension(name)
        assert self.application_id is not None  # set by login
        await sync_commands(
            self.tree, self.storage.command_syncs, self.application_id, self.settings.dev_guild_id
        )
        log.info(
            "invite link (scopes bot, applications.commands; permissions %s): %s",
            ", ".join(permission_names(INVITE_PERMISSIONS)),
            invite_url(self.application_id),
        )

    async def close(self) -> None:
        """Stop background work (counting for stats comparisons), disconnect, then close the
        backend's connections."""
        try:
            await self.services.stats.close()
            await super().close()
        finally:
            await self.provider.close()

    async def on_ready(self) -> None:
        log.info("tunecord is online as %s in %d server(s)", self.user, len(self.guilds))

    async def on_message(self, message: discord.Message, /) -> None:
        """No prefix commands. Cogs that read messages register a :data:`MessageReader` in
        :attr:`message_readers` rather than an ``on_message`` listener: discord.py starts a
        task per listener per message, and most messages need nothing (chat is off where
        they are), so one task for all readers keeps a busy server's message rate at a bare
        client's (``bench.bench_message_throughput``)."""
        work = [w for reader in self.message_readers if (w := reader(message)) is not None]
        if not work:
            return
        self.in_flight.track_current()
        if len(work) == 1:
            await work[0]  # in this task: gather would start another
        else:
            await asyncio.gather(*work)


def create_bot(
    settings: Settings,
    storage: Storage,
    catalogue: PriceCatalogue,
    services: Services | None = None,
    *,
    provider: Provider | None = None,
    **options: Any,
) -> TunecordBot:
    """The bot, ready for ``await bot.start(token)``; ``options`` go to ``commands.Bot``.

    Without ``provider``, one is built for ``settings``' backend at its configured URL (the
    composition root passes the one pointed at the trainer it started). The bot closes it.
    """
    return TunecordBot(
        settings=settings,
        storage=storage,
        catalogue=catalogue,
        services=services or build_services(storage, catalogue, settings.default_model),
        provider=provider or build_provider(settings),
        **options,
    )
