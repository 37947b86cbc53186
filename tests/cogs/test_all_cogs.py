"""Every module in cogs/ loads as an extension, and no command is left unguarded by accident."""

from __future__ import annotations

from pathlib import Path

from discord.ext import commands

from bot.client.bot import create_bot, extension_names
from bot.dataset.pricing import PriceCatalogue
from bot.settings import Settings
from storage.store import Storage

COGS = Path(__file__).parents[2] / "cogs"


def test_every_cog_module_is_an_extension():
    modules = {p.stem for p in COGS.glob("*.py") if not p.stem.startswith("_")}
    packages = {
        p.parent.name for p in COGS.glob("*/__init__.py") if not p.parent.name.startswith("_")
    }
    assert extension_names() == sorted(f"cogs.{name}" for name in modules | packages)


async def test_cogs_load_and_every_command_is_checked_or_marked_public(tmp_path):
    storage = await Storage.open(tmp_path / "db.sqlite3")
    try:
        bot = create_bot(Settings(start_trainer=False), storage, PriceCatalogue.load())
        for name in extension_names():
            await bot.load_extension(name)
        names = [c.name for c in bot.tree.get_commands()]
        assert len(names) == len(set(names))
        for cog in bot.cogs.values():
            cog_checks = type(cog).interaction_check is not commands.Cog.interaction_check
            for command in cog.walk_app_commands():
                guarded = cog_checks or bool(getattr(command, "checks", None))
                assert guarded or command.extras.get("public"), (
                    f"/{command.qualified_name} has no run-time check; add one "
                    "(bot.client.checks) or mark it extras={'public': True}"
                )
        await bot.close()
    finally:
        await storage.close()
