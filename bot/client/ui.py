"""Base classes for the bot's views and modals: their errors go to the one error handler.

Subclass :class:`TunecordView` and :class:`TunecordModal` instead of discord.py's. A
subclass overriding ``interaction_check`` calls ``super().interaction_check(interaction)``
first, so shutdown waits for the interaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import discord

from bot.client.error_handler import handle_interaction_error
from bot.client.inflight import InFlight


def _track(interaction: discord.Interaction) -> None:
    in_flight = getattr(interaction.client, "in_flight", None)
    if isinstance(in_flight, InFlight):
        in_flight.track_current()


async def run_component(
    interaction: discord.Interaction, source: str, action: Callable[[], Awaitable[None]]
) -> None:
    """Run a component's ``action`` as views run theirs: counted as in flight (shutdown
    waits for it) and its errors sent to the one error handler. For callbacks discord.py
    runs outside any view, such as a ``DynamicItem``'s."""
    _track(interaction)
    try:
        await action()
    except Exception as exc:
        await handle_interaction_error(interaction, exc, source=source)


class TunecordView(discord.ui.View):
    """A view whose callbacks' errors are handled like app commands' errors."""

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        _track(interaction)
        return True

    async def on_error(
        self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[Any], /
    ) -> None:
        custom_id = getattr(item, "custom_id", None) or type(item).__name__
        await handle_interaction_error(interaction, error, source=f"component {custom_id}")


class TunecordModal(discord.ui.Modal):
    """A modal whose ``on_submit`` errors are handled like app commands' errors."""

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        _track(interaction)
        return True

    # discord.py's Modal.on_error itself drops the ``item`` argument of BaseView.on_error.
    async def on_error(self, interaction: discord.Interaction, error: Exception, /) -> None:  # type: ignore[override]
        await handle_interaction_error(interaction, error, source=f"modal {self.title}")
