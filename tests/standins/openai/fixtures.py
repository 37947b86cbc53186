"""pytest fixtures for the OpenAI stand-in.

Register them once in ``tests/conftest.py`` with
``pytest_plugins = ["tests.standins.openai.fixtures"]``, or per test module (this form
keeps ruff quiet, unlike ``from … import openai_server``)::

    from tests.standins.openai import fixtures as standin_fixtures

    openai_server = standin_fixtures.openai_server
    openai_client = standin_fixtures.openai_client

``openai_server``
    an :class:`OpenAIStandin` running in the test's event loop (async tests).
``openai_client``
    ``AsyncOpenAI`` pointed at it (``max_retries=2``, 10 s timeout, the stand-in's key).
``openai_server_thread`` / ``openai_sync_client``
    the same for synchronous code: the server runs in a background thread and
    ``OpenAI`` (sync) talks to it.

At teardown every fixture server asserts that nothing inside the stand-in crashed and,
unless the test set ``server.validate_spec = False``, that every recorded exchange
conforms to the OpenAPI spec and parses with the SDK's types
(:func:`tests.standins.spec_openai.assert_exchanges_conform`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from openai import AsyncOpenAI, OpenAI

from .server import OpenAIStandin


def check_server(server: OpenAIStandin) -> None:
    """Fail if the stand-in crashed or (when enabled) any exchange violates the spec."""
    server.check_internal_errors()
    if server.validate_spec:
        from ..spec_openai import assert_exchanges_conform

        assert_exchanges_conform(list(server.exchanges))


@pytest.fixture
async def openai_server() -> AsyncIterator[OpenAIStandin]:
    """A fresh stand-in in the running event loop; checked against the spec at teardown."""
    server = OpenAIStandin()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
    check_server(server)


@pytest.fixture
async def openai_client(openai_server: OpenAIStandin) -> AsyncIterator[AsyncOpenAI]:
    """``AsyncOpenAI`` talking to :func:`openai_server` over real HTTP."""
    client = AsyncOpenAI(
        base_url=openai_server.base_url,
        api_key=openai_server.config.api_key,
        max_retries=2,
        timeout=10.0,
    )
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def openai_server_thread() -> Iterator[OpenAIStandin]:
    """A fresh stand-in in a background thread, for synchronous clients."""
    server = OpenAIStandin()
    server.start_in_thread()
    try:
        yield server
    finally:
        server.stop_thread()
    check_server(server)


@pytest.fixture
def openai_sync_client(openai_server_thread: OpenAIStandin) -> Iterator[OpenAI]:
    """Synchronous ``OpenAI`` talking to :func:`openai_server_thread`."""
    client = OpenAI(
        base_url=openai_server_thread.base_url,
        api_key=openai_server_thread.config.api_key,
        max_retries=2,
        timeout=10.0,
    )
    try:
        yield client
    finally:
        client.close()
