"""What a hostile body costs the trainer in memory, measured on a real server process.

The server runs in a subprocess (``tests.trainer.test_server.ServerProcess``: the real
``serve`` with the tiny engine and a key). Before each case its peak RSS (``VmHWM``) is
reset through ``/proc/<pid>/clear_refs``; after the case, the peak may not exceed the RSS
at the reset by more than :data:`MARGIN`. Each body is 300 MB, sent in full.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.trainer.test_server import API_KEY, ServerProcess

MB = 1024 * 1024
BODY = 300 * MB
MARGIN = 64 * MB
"""Allowed peak growth: a fifth of the body, far below what buffering it would cost."""


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _reset_peak(pid: int) -> int:
    """Reset ``VmHWM`` to the current RSS (Linux ``clear_refs`` 5); returns that RSS."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return _kib(pid, "VmRSS")


def _send(port: int, head: str, *, chunked: bool) -> int:
    """Send ``head`` and a :data:`BODY`-byte body in full; the status of the answer."""
    piece = b"a" * MB
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(f"{head}Host: 127.0.0.1:{port}\r\n".encode())
        sock.sendall(b"Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {BODY}\r\n\r\n".encode())
        try:
            for _ in range(BODY // MB):
                sock.sendall(f"{MB:x}\r\n".encode() + piece + b"\r\n" if chunked else piece)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed: it did not want the rest
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            assert chunk, "no answer"
            answer += chunk
    return int(answer.split()[1])


@pytest.fixture(scope="module")
def server_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """``(pid, port)`` of one trainer process shared by this module's cases."""
    import asyncio

    process = ServerProcess(tmp_path_factory.mktemp("memory") / "data")
    try:
        url = asyncio.run(process.url())
        yield process.process.pid, int(url.rsplit(":", 1)[1].split("/")[0])
    finally:
        process.stop()


JSON = "Content-Type: application/json\r\n"
KEY = f"Authorization: Bearer {API_KEY}\r\n"


@pytest.mark.parametrize(
    ("head", "chunked", "status"),
    [
        (f"POST /v1/chat/completions HTTP/1.1\r\n{JSON}", True, 401),  # no key, no length: counted as read
        (f"POST /v1/chat/completions HTTP/1.1\r\n{JSON}", False, 401),
        ("POST /v1/files HTTP/1.1\r\nContent-Type: multipart/form-data; boundary=x\r\n", False, 401),
        (f"POST /v1/chat/completions HTTP/1.1\r\n{JSON}{KEY}", True, 413),  # a key, then too large
        (f"POST /v1/fine_tuning/jobs HTTP/1.1\r\n{JSON}{KEY}", False, 413),
    ],
    ids=["chunked-no-key", "json-no-key", "upload-no-key", "chunked-json-with-key", "json-with-key"],
)
def test_a_300_mb_body_does_not_grow_the_server(server_process: tuple[int, int], head: str, chunked: bool,
                                                status: int) -> None:  # fmt: skip
    pid, port = server_process
    before = _reset_peak(pid)
    assert _send(port, head, chunked=chunked) == status
    growth = _kib(pid, "VmHWM") - before
    print(f"peak growth {growth / MB:.1f} MB for a {BODY // MB} MB body")  # shown with -s
    assert growth < MARGIN, f"peak RSS grew {growth / MB:.0f} MB"


def test_an_accepted_large_upload_is_streamed_not_held(server_process: tuple[int, int]) -> None:
    """A keyed 300 MB upload within the limit: stored whole, with flat memory."""
    pid, port = server_process
    before = _reset_peak(pid)
    preamble = (b"--x\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nassistants\r\n"
                b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n"
                b"Content-Type: application/octet-stream\r\n\r\n")  # fmt: skip
    epilogue = b"\r\n--x--\r\n"
    piece = b"a" * MB
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall((f"POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{KEY}"
                      f"Content-Type: multipart/form-data; boundary=x\r\n"
                      f"Content-Length: {len(preamble) + BODY + len(epilogue)}\r\n\r\n").encode() + preamble)  # fmt: skip
        for _ in range(BODY // MB):
            sock.sendall(piece)
        sock.sendall(epilogue)
        answer = b""
        while not answer.endswith(b"}"):
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
    assert answer.split()[1] == b"200" and f'"bytes":{BODY}'.encode() in answer
    growth = _kib(pid, "VmHWM") - before
    print(f"peak growth {growth / MB:.1f} MB for a {BODY // MB} MB upload")
    assert growth < MARGIN, f"peak RSS grew {growth / MB:.0f} MB"
