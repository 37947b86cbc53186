"""What the composition root enters around the bot: the trainer child, when it is ours to run."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from bot.backend.trainer_child import TrainerChild
from bot.settings import Settings


def starts_trainer(settings: Settings) -> bool:
    """``TUNECORD_BACKEND=trainer`` with ``TUNECORD_START_TRAINER`` on (the defaults)."""
    return settings.backend == "trainer" and settings.start_trainer


def trainer_child(settings: Settings) -> TrainerChild:
    """The child for ``settings`` (not started)."""
    return TrainerChild(
        data_dir=settings.trainer_data_dir,
        port=settings.trainer_port,
        api_key=settings.trainer_api_key,
        start_timeout=settings.trainer_start_timeout,
    )


@contextlib.asynccontextmanager
async def running_backend(
    settings: Settings, abort: asyncio.Event | None = None
) -> AsyncIterator[TrainerChild | None]:
    """The started trainer child (stopped on exit), or ``None`` when the bot runs none.

    Raises :class:`~bot.errors.StartupError` when the child cannot start. When ``abort``
    (a stop signal) is set while waiting for it, yields ``None`` with nothing running.
    """
    if not starts_trainer(settings):
        yield None
        return
    child = trainer_child(settings)
    try:
        started = await child.start(abort)
        yield child if started else None
    finally:
        await child.stop()
