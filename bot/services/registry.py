"""The services the bot's cogs call, built once by the composition root."""

from __future__ import annotations

from dataclasses import dataclass

from bot.dataset.pricing import PriceCatalogue
from bot.services.chat import ChatService
from bot.services.contributions import ContributionService
from bot.services.curation import CurationService
from bot.services.datasets import DatasetService
from bot.services.guild_config import GuildConfigService
from bot.services.imports import DatasetFileService
from bot.services.privacy import PrivacyService
from bot.services.stats import StatsService
from bot.settings import Settings
from storage.store import Storage


@dataclass(frozen=True)
class Services:
    """One instance of each use-case service; cogs reach them as ``bot.services.<name>``."""

    guild_config: GuildConfigService
    datasets: DatasetService
    contributions: ContributionService
    curation: CurationService
    privacy: PrivacyService
    stats: StatsService
    files: DatasetFileService
    chat: ChatService


def build_services(
    storage: Storage, catalogue: PriceCatalogue, default_model: str = Settings.default_model
) -> Services:
    """Every service, wired to ``storage``'s repositories and the one price catalogue the
    bot was started with (``TUNECORD_PRICES`` or the bundled file)."""
    return Services(
        guild_config=GuildConfigService(storage.guilds),
        datasets=DatasetService(storage, catalogue),
        contributions=ContributionService(storage, catalogue),
        curation=CurationService(storage),
        privacy=PrivacyService(storage),
        stats=StatsService(storage, catalogue),
        files=DatasetFileService(storage.db, catalogue),
        chat=ChatService(storage, catalogue, default_model),
    )
