import os
import subprocess
import sys

import pytest

from bot.settings import SettingsError, load_settings


def test_environment_wins_over_env_file(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("DISCORD_TOKEN=from-file\nTUNECORD_DB=/tmp/file.db\n")
    settings = load_settings({"TUNECORD_DB": "/tmp/env.db"}, env_file)
    assert settings.discord_token == "from-file"
    assert str(settings.database_path) == "/tmp/env.db"
    assert settings.backend == "trainer" and settings.start_trainer


def test_secrets_never_appear_in_repr(tmp_path):
    settings = load_settings(
        {"DISCORD_TOKEN": "tok-SECRET", "OPENAI_API_KEY": "sk-SECRET", "TUNECORD_BACKEND": "openai"}, None
    )
    assert "SECRET" not in repr(settings)
    assert settings.backend_api_key == "sk-SECRET"


def test_bad_settings_say_what_to_fix():
    with pytest.raises(SettingsError, match="TUNECORD_BACKEND must be one of"):
        load_settings({"TUNECORD_BACKEND": "azure"}, None)
    with pytest.raises(SettingsError, match="needs OPENAI_API_KEY"):
        load_settings({"TUNECORD_BACKEND": "openai"}, None)
    with pytest.raises(SettingsError, match="TUNECORD_START_TRAINER"):
        load_settings({"TUNECORD_START_TRAINER": "maybe"}, None)


def test_env_example_lists_every_setting():
    from pathlib import Path

    text = (Path(__file__).parents[1] / ".env.example").read_text()
    source = (Path(__file__).parents[1] / "bot" / "settings.py").read_text()
    import re

    used = set(re.findall(r'get\("([A-Z_]+)"\)', source))
    listed = set(re.findall(r"^([A-Z_]+)=", text, re.M))
    assert used and used <= listed


def test_running_without_a_token_asks_for_one(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"}
    proc = subprocess.run([sys.executable, "-m", "bot"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "DISCORD_TOKEN" in proc.stderr
