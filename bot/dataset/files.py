"""Opening the files a user names: regular files only, read within a stated size.

A path can name something that is not a file: a FIFO with no writer blocks a plain
``open()`` forever, ``/dev/zero`` never ends, a folder cannot be read. :func:`open_regular`
opens without blocking, looks at what it opened and refuses anything but a regular file
with :class:`NotARegularFile`, a message the CLI and the bot show as is.
:func:`read_small_text` reads a small text file (a price file) and refuses one larger than
its limit instead of loading it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from bot.dataset.errors import InvalidInput

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class NotARegularFile(InvalidInput):
    """The path names a folder, a pipe, a device or a socket, not a file to read. The
    message names the file by its last component only (no folders: the bot shows it to
    members); ``kind`` says what it is."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class FileTooLarge(InvalidInput):
    """The file is larger than what is read of such a file."""


def kind_of(mode: int) -> str:
    """What a ``st_mode`` describes, in words (``a folder``, ``a named pipe (FIFO)``...)."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """``path`` opened for binary reading; :class:`NotARegularFile` unless it is a regular
    file (symbolic links are followed). Never blocks on a FIFO. ``OSError`` as ``open``
    raises it (missing file, no permission)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = kind_of(mode)
            raise NotARegularFile(f"{Path(path).name or path} is {kind}, not a regular file", kind)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_small_text(path: str | os.PathLike[str], limit: int, what: str = "the file") -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes; :class:`FileTooLarge`
    beyond it, ``UnicodeDecodeError`` (a ``ValueError``) if the bytes are not UTF-8."""
    with open_regular(path) as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise FileTooLarge(f"{what} is larger than {limit:,} bytes")
    return data.decode("utf-8")
