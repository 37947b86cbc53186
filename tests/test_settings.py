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


def test_discord_endpoints_and_dev_guild():
    settings = load_settings(
        {
            "DISCORD_API_BASE": "http://127.0.0.1:8080/api/v10/",
            "DISCORD_GATEWAY_URL": "ws://127.0.0.1:8080/gateway",
            "DEV_GUILD_ID": "123456789012345678",
        },
        None,
    )
    assert settings.discord_api_base == "http://127.0.0.1:8080/api/v10"
    assert settings.discord_gateway_url == "ws://127.0.0.1:8080/gateway"
    assert settings.dev_guild_id == 123456789012345678
    defaults = load_settings({}, None)
    assert (defaults.discord_api_base, defaults.discord_gateway_url, defaults.dev_guild_id) == (
        None,
        None,
        None,
    )
    with pytest.raises(SettingsError, match="DISCORD_API_BASE must be a http or https URL"):
        load_settings({"DISCORD_API_BASE": "127.0.0.1:8080"}, None)
    with pytest.raises(SettingsError, match="DISCORD_GATEWAY_URL must be a ws or wss URL"):
        load_settings({"DISCORD_GATEWAY_URL": "http://127.0.0.1/gateway"}, None)
    with pytest.raises(SettingsError, match="DEV_GUILD_ID must be a Discord server ID"):
        load_settings({"DEV_GUILD_ID": "my-server"}, None)


def test_log_level_must_be_a_level_name():
    assert load_settings({"TUNECORD_LOG_LEVEL": "warning"}, None).log_level == "WARNING"
    with pytest.raises(SettingsError, match="TUNECORD_LOG_LEVEL must be one of DEBUG, INFO"):
        load_settings({"TUNECORD_LOG_LEVEL": "chatty"}, None)


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


def test_backend_timeouts_retries_and_polling():
    defaults = load_settings({}, None)
    assert defaults.job_poll_seconds == 30
    assert (defaults.provider_connect_timeout, defaults.provider_timeout) == (5, 120)
    assert defaults.provider_max_retries == 2 and defaults.trainer_start_timeout == 120
    assert defaults.provider_extra_body == {}
    settings = load_settings(
        {
            "TUNECORD_JOB_POLL_SECONDS": "5",
            "TUNECORD_PROVIDER_CONNECT_TIMEOUT": "1.5",
            "TUNECORD_PROVIDER_TIMEOUT": "300",
            "TUNECORD_PROVIDER_MAX_RETRIES": "0",
            "TUNECORD_TRAINER_START_TIMEOUT": "600",
        },
        None,
    )
    assert (settings.job_poll_seconds, settings.provider_connect_timeout) == (5, 1.5)
    assert (settings.provider_timeout, settings.provider_max_retries) == (300, 0)
    assert settings.trainer_start_timeout == 600
    with pytest.raises(SettingsError, match="TUNECORD_JOB_POLL_SECONDS must be between 1 and 86400"):
        load_settings({"TUNECORD_JOB_POLL_SECONDS": "0.5"}, None)
    with pytest.raises(SettingsError, match="TUNECORD_PROVIDER_MAX_RETRIES must be a whole number"):
        load_settings({"TUNECORD_PROVIDER_MAX_RETRIES": "2.5"}, None)
    with pytest.raises(SettingsError, match="TUNECORD_PROVIDER_TIMEOUT must be a number"):
        load_settings({"TUNECORD_PROVIDER_TIMEOUT": "soon"}, None)


def test_provider_extra_body_is_json_per_request_kind():
    settings = load_settings(
        {"TUNECORD_PROVIDER_EXTRA_BODY": '{"jobs": {"trainingType": "GlobalStandard"}, "chat": {"top_k": 4}}'},
        None,
    )
    assert settings.provider_extra_body == {"jobs": {"trainingType": "GlobalStandard"}, "chat": {"top_k": 4}}
    for bad, why in [
        ("{jobs", "it is not valid JSON"),
        ('{"trainingType": "GlobalStandard"}', "unknown key 'trainingType'"),
        ('{"jobs": 3}', "such as"),
        ("[]", "such as"),
    ]:
        with pytest.raises(SettingsError, match="TUNECORD_PROVIDER_EXTRA_BODY must be a JSON object") as err:
            load_settings({"TUNECORD_PROVIDER_EXTRA_BODY": bad}, None)
        assert why in str(err.value)


def test_the_started_trainer_uses_trainer_url_only_on_loopback():
    assert load_settings({}, None).trainer_port is None  # a free port, picked at start
    assert load_settings({"TRAINER_URL": "http://localhost:9100/v1"}, None).trainer_port == 9100
    assert load_settings({"TRAINER_URL": "http://127.0.0.1/v1"}, None).trainer_port is None
    with pytest.raises(SettingsError, match="TRAINER_URL points at gpu.example.org, but TUNECORD_START_TRAINER"):
        load_settings({"TRAINER_URL": "https://gpu.example.org/v1"}, None)
    remote = load_settings(
        {"TRAINER_URL": "https://gpu.example.org/v1/", "TUNECORD_START_TRAINER": "false"}, None
    )
    assert remote.trainer_url == "https://gpu.example.org/v1" and remote.trainer_port is None
    with pytest.raises(SettingsError, match="TRAINER_URL must be a http or https URL"):
        load_settings({"TRAINER_URL": "127.0.0.1:8000"}, None)
