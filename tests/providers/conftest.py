"""A provider pointed at the OpenAI stand-in, with waits short enough for tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.providers import OpenAICompatProvider, ProviderConfig
from tests.standins.openai import fixtures as standin_fixtures
from tests.standins.openai.datasets import jsonl, qa_dataset
from tests.standins.openai.server import OpenAIStandin

openai_server = standin_fixtures.openai_server

MakeProvider = Callable[..., OpenAICompatProvider]


def config_for(server: OpenAIStandin, **overrides: Any) -> ProviderConfig:
    values: dict[str, Any] = {
        "base_url": server.base_url,
        "api_key": server.config.api_key,
        "label": "OpenAI",
        "timeout": 5.0,
        "connect_timeout": 2.0,
        "backoff": 0.01,
        "reconcile_delay": 0.2,
    }
    values.update(overrides)
    return ProviderConfig(**values)


@pytest.fixture
async def make_provider(openai_server: OpenAIStandin) -> AsyncIterator[MakeProvider]:
    """Build providers for the stand-in (``ProviderConfig`` fields as overrides); closed after."""
    made: list[OpenAICompatProvider] = []

    def make(**overrides: Any) -> OpenAICompatProvider:
        provider = OpenAICompatProvider(config_for(openai_server, **overrides))
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.close()


@pytest.fixture
def provider(make_provider: MakeProvider) -> OpenAICompatProvider:
    return make_provider()


def training_file(folder: Path, n: int = 10, name: str = "train.jsonl") -> Path:
    """``n`` question/answer examples as a JSONL file in ``folder``."""
    path = folder / name
    path.write_bytes(jsonl(qa_dataset(n)))
    return path
