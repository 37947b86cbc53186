"""``python -m bot``: start tunecord."""

from __future__ import annotations

import os
import sys

from bot.settings import SettingsError, load_settings

TOKEN_HELP = """tunecord needs a Discord bot token to start.

  1. Create an application and a bot at https://discord.com/developers/applications
  2. Copy .env.example to .env and set DISCORD_TOKEN=<your bot token>
     (or export DISCORD_TOKEN in the environment)
  3. Run the same command again.
"""


def main() -> int:
    try:
        settings = load_settings(os.environ)
    except SettingsError as exc:
        print(f"tunecord: configuration error: {exc}", file=sys.stderr)
        return 2
    if not settings.discord_token:
        print(TOKEN_HELP, file=sys.stderr)
        return 2
    print(
        "tunecord: configuration loaded; the Discord client is not part of this release yet.",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
