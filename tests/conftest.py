"""Suite-wide guards: no test may reach beyond loopback, and tiktoken stays offline."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from storage.store import Storage

_SHARED_TIKTOKEN = Path(__file__).resolve().parents[2] / "shared" / "tiktoken"
if "TIKTOKEN_CACHE_DIR" not in os.environ and _SHARED_TIKTOKEN.is_dir():
    os.environ["TIKTOKEN_CACHE_DIR"] = str(_SHARED_TIKTOKEN)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# One Hypothesis profile for the whole suite: no per-example deadline (the first example of
# a test may be the one that loads a BPE file or a tokenizer, whichever test runs first)
# and a derandomized search, so a run tests the same examples whatever the order of tests.
hypothesis_settings.register_profile("tunecord", deadline=None, derandomize=True)
hypothesis_settings.load_profile("tunecord")

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _check_address(sock: socket.socket, address: object) -> None:
    if sock.family == socket.AF_UNIX:
        return
    host = address[0] if isinstance(address, tuple) else address
    try:
        ip = ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        ok = host in ("localhost",)
    else:
        ok = ip.is_loopback
    if not ok:
        raise ConnectionRefusedError(f"tests may only connect to loopback, not {address!r}")


def _guarded_connect(self: socket.socket, address: object) -> None:
    _check_address(self, address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    _check_address(self, address)
    return _real_connect_ex(self, address)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]


@pytest.fixture
def tmp_db_path(tmp_path: Path) -> Path:
    return tmp_path / "tunecord.sqlite3"


@pytest.fixture
async def store(tmp_db_path: Path) -> AsyncIterator[Storage]:
    """A real, migrated SQLite database in a temporary folder, closed after the test."""
    storage = await Storage.open(tmp_db_path)
    yield storage
    await storage.close()
