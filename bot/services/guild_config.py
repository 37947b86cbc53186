"""Reading and changing a guild's settings (the ``/config`` commands' use cases)."""

from __future__ import annotations

from decimal import Decimal

from bot.errors import InvalidInput
from storage.guilds import GuildRepository
from storage.records import GuildSettings

VOTE_THRESHOLD_RANGE = (1, 100)
"""Approving votes an example needs before it is approved (inclusive bounds)."""

MAX_PENDING_RANGE = (1, 1000)
"""How many pending examples one member may have waiting for review (inclusive bounds)."""

CAPTURE_DEPTH_RANGE = (2, 25)
"""How many messages of a reply chain "Add to dataset" follows (inclusive bounds)."""


MAX_BUDGET_USD = Decimal(1_000_000)
"""The largest monthly fine-tuning budget a server can set."""


def _check_range(what: str, value: int, bounds: tuple[int, int]) -> None:
    low, high = bounds
    if not low <= value <= high:
        raise InvalidInput(f"The {what} must be between {low} and {high}, not {value}.")


class GuildConfigService:
    """A guild's settings: every read and change goes through here."""

    def __init__(self, guilds: GuildRepository) -> None:
        self._guilds = guilds

    async def get(self, guild_id: int) -> GuildSettings:
        """The guild's settings (the defaults for a guild never configured)."""
        return await self._guilds.get(guild_id)

    async def set_review_channel(self, guild_id: int, channel_id: int | None) -> GuildSettings:
        """Where new examples are posted for review; ``None`` clears it."""
        return await self._guilds.update(guild_id, review_channel_id=channel_id)

    async def set_curator_role(self, guild_id: int, role_id: int | None) -> GuildSettings:
        """The role whose members may curate (besides Manage Messages); ``None`` clears it."""
        if role_id == guild_id:  # the @everyone role shares the guild's id
            raise InvalidInput("Pick a specific role: @everyone cannot be the curator role.")
        return await self._guilds.update(guild_id, curator_role_id=role_id)

    async def set_vote_threshold(self, guild_id: int, value: int) -> GuildSettings:
        """Approving votes an example needs to be approved."""
        _check_range("vote threshold", value, VOTE_THRESHOLD_RANGE)
        return await self._guilds.update(guild_id, vote_threshold=value)

    async def set_max_pending(self, guild_id: int, value: int) -> GuildSettings:
        """How many examples one member may have waiting for review at once."""
        _check_range("limit of pending examples per member", value, MAX_PENDING_RANGE)
        return await self._guilds.update(guild_id, max_pending_per_member=value)

    async def set_capture_depth(self, guild_id: int, value: int) -> GuildSettings:
        """How many messages of a reply chain "Add to dataset" turns into turns."""
        _check_range("capture depth", value, CAPTURE_DEPTH_RANGE)
        return await self._guilds.update(guild_id, capture_depth=value)

    async def set_trainer_role(self, guild_id: int, role_id: int | None) -> GuildSettings:
        """The role whose members may start fine-tunes (besides Manage Server); ``None``
        clears it."""
        if role_id == guild_id:
            raise InvalidInput("Pick a specific role: @everyone cannot be the trainer role.")
        return await self._guilds.update(guild_id, trainer_role_id=role_id)

    async def set_training_channel(self, guild_id: int, channel_id: int | None) -> GuildSettings:
        """Where fine-tunes are announced and followed; ``None`` clears it."""
        return await self._guilds.update(guild_id, training_channel_id=channel_id)

    async def set_budget(self, guild_id: int, usd: Decimal | None) -> GuildSettings:
        """The most the server may spend on fine-tunes per calendar month (UTC); ``None``
        removes the limit."""
        if usd is not None and not usd.is_finite():
            raise InvalidInput("The monthly budget must be a number of dollars.")
        if usd is not None and usd > MAX_BUDGET_USD:
            raise InvalidInput(f"The monthly budget can be at most ${MAX_BUDGET_USD:,}.")
        return await self._guilds.update(guild_id, monthly_budget_usd=usd)
