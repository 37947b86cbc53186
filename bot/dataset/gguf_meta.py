"""Reading a GGUF file's metadata (its key/value header), without its tensors.

A GGUF file starts with ``GGUF``, a version, the tensor and key/value counts, then the
key/value pairs: the architecture, the context length, the tokenizer's vocabulary, merges
and token types, its special-token ids and the chat template. That is all a token count
needs, so this reads only that part and stops before the tensor table. It is plain Python
(``struct``), about a tenth of a second for a 49,152-token vocabulary; the ``gguf``
package's reader parses the whole tensor table too and takes seconds.

Only little-endian files of versions 2 and 3 are read (every file llama.cpp writes).
"""

from __future__ import annotations

import struct
from collections.abc import Container
from pathlib import Path
from typing import Any, BinaryIO

MAGIC = b"GGUF"
VERSIONS = (2, 3)

_UINT8, _INT8, _UINT16, _INT16, _UINT32, _INT32, _FLOAT32, _BOOL = range(8)
_STRING, _ARRAY, _UINT64, _INT64, _FLOAT64 = 8, 9, 10, 11, 12
_SCALAR = {
    _UINT8: "<B", _INT8: "<b", _UINT16: "<H", _INT16: "<h", _UINT32: "<I", _INT32: "<i",
    _FLOAT32: "<f", _BOOL: "<?", _UINT64: "<Q", _INT64: "<q", _FLOAT64: "<d",
}


class GGUFError(ValueError):
    """The file is not a GGUF file this reader understands."""


class _Reader:
    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def take(self, n: int) -> bytes:
        data = self.stream.read(n)
        if len(data) != n:
            raise GGUFError("truncated GGUF header")
        return data

    def scalar(self, kind: int) -> Any:
        fmt = _SCALAR[kind]
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        (length,) = struct.unpack("<Q", self.take(8))
        return self.take(length).decode("utf-8")

    def value(self, kind: int, keep: bool) -> Any:
        if kind == _STRING:
            return self.string()
        if kind in _SCALAR:
            return self.scalar(kind)
        if kind != _ARRAY:
            raise GGUFError(f"unknown GGUF value type {kind}")
        item_kind, count = struct.unpack("<IQ", self.take(12))
        if item_kind in _SCALAR:
            fmt = _SCALAR[item_kind]
            size = struct.calcsize(fmt)
            data = self.take(size * count)
            return list(struct.unpack(f"<{count}{fmt[1]}", data)) if keep else count
        if item_kind == _STRING and not keep:
            for _ in range(count):
                (length,) = struct.unpack("<Q", self.take(8))
                self.stream.seek(length, 1)
            return count
        return [self.value(item_kind, keep) for _ in range(count)]


def read_metadata(path: str | Path, arrays: Container[str] = ()) -> dict[str, Any]:
    """The key/value metadata of the GGUF file at ``path``.

    Scalars and strings are read in full; arrays only for the keys in ``arrays`` (others
    come back as their length), so a caller pays only for the vocabulary it asks for.
    """
    with open(path, "rb", buffering=1 << 20) as stream:
        reader = _Reader(stream)
        if reader.take(4) != MAGIC:
            raise GGUFError(f"{path} is not a GGUF file")
        version, _tensors, count = struct.unpack("<IQQ", reader.take(20))
        if version not in VERSIONS:
            raise GGUFError(f"{path}: GGUF version {version} is not supported")
        metadata: dict[str, Any] = {}
        for _ in range(count):
            key = reader.string()
            (kind,) = struct.unpack("<I", reader.take(4))
            metadata[key] = reader.value(kind, key in arrays)
        return metadata
