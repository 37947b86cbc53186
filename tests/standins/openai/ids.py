"""Deterministic OpenAI-style identifiers (``file-…``, ``ftjob-…``, ``chatcmpl-…``).

Real ids are random; the stand-in derives them from a per-server seed and a counter so
that two runs of the same test produce the same ids, while ids still look like OpenAI's
(prefix plus base62 body of the usual length).
"""

from __future__ import annotations

import hashlib
import itertools
import threading

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62(data: bytes, length: int) -> str:
    """Encode ``data`` as a base62 string of exactly ``length`` characters."""
    n = int.from_bytes(data, "big")
    out = []
    for _ in range(length):
        n, r = divmod(n, 62)
        out.append(_ALPHABET[r])
    return "".join(out)


def short_hash(text: str, length: int = 8) -> str:
    """Stable short hex digest used to tag system prompts in base-model answers."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


class IdFactory:
    """Produces unique, reproducible ids: ``new("ftjob-", 24)`` → ``ftjob-3kF…``."""

    def __init__(self, seed: str = "tunecord-standin") -> None:
        self._seed = seed
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def new(self, prefix: str, length: int = 24) -> str:
        """Next id with ``prefix`` and a ``length``-character base62 body."""
        with self._lock:
            n = next(self._counter)
        digest = hashlib.sha256(f"{self._seed}:{prefix}:{n}".encode()).digest()
        return prefix + base62(digest, length)
