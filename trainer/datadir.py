"""The trainer's data folder: one process at a time, private to its user, no half-written files.

* **One process.** :class:`DataDirLock` holds an exclusive ``flock`` on ``trainer.lock`` in
  the folder while a job manager runs; a second trainer process on the same folder gets
  :class:`DataDirBusy`, whose message names the folder and the process holding it. The
  kernel drops the lock when the holder exits, even after ``kill -9``.
* **Private.** Everything the trainer writes is its user's only: folders ``0700``, files
  ``0600`` (:func:`make_private` also mends a folder written by an older version).
* **No half-written files.** Files and folders are written under a temporary sibling name
  (:func:`partial_name`: ``<name>.partial-<random>``) and renamed into place, so a crash
  leaves either the old entry or the new one, plus at most a temporary one, which
  :func:`remove_partials` deletes on the next start.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import shutil
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

LOCK_FILE = "trainer.lock"
PARTIAL_MARK = ".partial-"
"""What every temporary name contains; nothing else the trainer writes does."""
LEGACY_PARTIAL_SUFFIXES = (".tmp", ".old")
"""Temporary folder names of earlier versions: checkpoints and adapters (``epoch-001.tmp``),
converted base models (``<id>.tmp-<pid>``)."""
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


class DataDirBusy(RuntimeError):
    """Another process holds the data folder's lock."""


class DataDirLock:
    """An exclusive lock on a data folder; see the module docstring.

    The lock is an ``flock`` on an open file description, so it also excludes a second
    holder in the same process (two job managers on one folder are refused as well)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._fd: int | None = None
        self._guard = threading.Lock()

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, creating the folder (private) if needed; :class:`DataDirBusy` if
        another holder has it."""
        with self._guard:
            if self._fd is not None:
                return
            self.data_dir.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
            fd = os.open(self.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _read_pid(fd)
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                raise DataDirBusy(busy_message(self.data_dir, holder)) from None
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            self._fd = fd

    def release(self) -> None:
        """Give the lock back (the file stays; only the lock matters)."""
        with self._guard:
            if self._fd is not None:
                os.close(self._fd)  # closing the only descriptor releases the flock
                self._fd = None

    def __enter__(self) -> DataDirLock:
        self.acquire()
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


def busy_message(data_dir: Path, holder: int | None) -> str:
    """What a second trainer on ``data_dir`` is told."""
    who = f"process {holder}" if holder else "another process"
    return (
        f"The trainer data folder {data_dir.resolve()} is in use by another trainer ({who}). "
        "Two trainers on one folder would corrupt its jobs: stop the other one, "
        "or give this one its own folder (--data-dir or TRAINER_DATA_DIR)."
    )


def ensure_free(data_dir: Path) -> None:
    """Raise :class:`DataDirBusy` now if another process holds ``data_dir`` (a check for a
    clean message before serving; the job manager's own lock is what excludes)."""
    with DataDirLock(data_dir):
        pass


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


# ----------------------------------------------------------------------------- privacy


def make_private(root: Path) -> None:
    """``root`` and everything under it: folders 0700, files 0600 (symlinks left alone)."""
    _chmod(root, PRIVATE_DIR if root.is_dir() else PRIVATE_FILE)
    if not root.is_dir() or root.is_symlink():
        return
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            _chmod(Path(dirpath, name), PRIVATE_DIR)
        for name in filenames:
            _chmod(Path(dirpath, name), PRIVATE_FILE)


def private_dirs(path: Path) -> None:
    """Create ``path`` and any missing parents, each 0700 (``mkdir(parents=True)`` would give
    the parents the default mode)."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        folder.mkdir(mode=PRIVATE_DIR, exist_ok=True)


def _chmod(path: Path, mode: int) -> None:
    try:
        info = path.lstat()
        if not stat.S_ISLNK(info.st_mode) and stat.S_IMODE(info.st_mode) != mode:
            path.chmod(mode)
    except FileNotFoundError:
        pass


# ----------------------------------------------------------------------------- atomic writes


def partial_name(path: Path) -> Path:
    """A fresh temporary sibling of ``path``, removed by :func:`remove_partials` if left over."""
    return path.with_name(f"{path.name}{PARTIAL_MARK}{secrets.token_hex(6)}")


def is_partial(name: str) -> bool:
    return PARTIAL_MARK in name


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[IO[bytes]]:
    """Write ``path`` (mode 0600) under a temporary name, renamed into place on success;
    on any error the temporary file is removed and ``path`` is untouched."""
    tmp = partial_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_private(path: Path, content: bytes) -> None:
    """``path`` holds ``content`` (0600), written atomically."""
    with atomic_writer(path) as out:
        out.write(content)


def share_file(source: Path, target: Path, *, link: bool = True) -> None:
    """``target`` becomes the same content as ``source`` without a second copy on disk: a hard
    link (deleting ``source`` later leaves ``target`` whole). Where links are impossible
    (another file system), or with ``link=False``, the content is copied, atomically."""
    target.unlink(missing_ok=True)
    try:
        if link:
            os.link(source, target)
            return
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    with atomic_writer(target) as out, open(source, "rb") as src:
        shutil.copyfileobj(src, out, 1 << 20)


def replace_dir(tmp: Path, target: Path) -> None:
    """Move the finished folder ``tmp`` to ``target``, replacing any folder there; a crash
    leaves the old folder or the new one (plus a temporary name :func:`remove_partials` cleans)."""
    make_private(tmp)
    if target.exists():
        old = partial_name(target)
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)


def remove_partials(root: Path, *, legacy: bool = False) -> list[Path]:
    """Delete every temporary entry under ``root`` (and, with ``legacy``, folders named
    ``*.tmp``, ``*.old`` and ``*.tmp-<pid>``, the temporary names of earlier versions);
    returns what went."""
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames]:
            if is_partial(name) or (legacy and _is_legacy_partial(name)):
                path = Path(dirpath, name)
                shutil.rmtree(path, ignore_errors=True)
                dirnames.remove(name)
                removed.append(path)
        for name in filenames:
            if is_partial(name):
                path = Path(dirpath, name)
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def _is_legacy_partial(name: str) -> bool:
    return name.endswith(LEGACY_PARTIAL_SUFFIXES) or ".tmp-" in name
