"""Files: atomic writes with one clear error, and temp directories that do not pile up.

:func:`atomic_write_bytes` writes to a temporary file in the same folder, fsyncs and renames, so a
reader sees the old file or the new one, never half of it. A path that cannot be written (a directory,
a missing or unwritable folder, /proc) raises a :class:`~meshfilter.errors.UsageError` naming the path
(and ``field``, the input it came from), mapped from the ``OSError`` by type.

:func:`owned_tempdir` makes a temp directory that records its owner (PID and start time). Whoever makes
the next one removes those whose owner is gone (a run killed by SIGKILL cannot clean up after itself).
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from meshfilter.errors import MeshfilterError, UsageError
from meshfilter.util.proc import pid_alive, pid_start_time


def check_writable(path: Path, *, parents: bool = True, field: str | None = None) -> None:
    """Raise the error :func:`atomic_write_bytes` would raise for ``path`` that can be told without
    writing: a directory, or (``parents`` False) a folder that does not exist. For callers that want to
    refuse before doing the work (a pull from a registry, say)."""
    path = Path(path)
    where = field or str(path)
    if path.is_dir():
        raise UsageError(f"{path} is a directory", where=where, hint=f"give a file path, such as {path / 'FILE'}")
    if not parents and not path.parent.is_dir():
        raise UsageError(f"the folder {path.parent} does not exist", where=where,
                         hint=f"create it first (mkdir -p {path.parent}), or write elsewhere")


def atomic_write_bytes(path: Path, data: bytes | bytearray, mode: int = 0o644, *, parents: bool = True,
                       field: str | None = None) -> None:
    """Write ``data`` to ``path`` atomically. ``parents``: create missing parent folders (False: a
    missing folder is an error). ``field``: the input that named ``path``, for the error's ``where``."""
    with atomic_writer(path, mode, parents=parents, field=field) as fh:
        fh.write(data)


@contextmanager
def atomic_writer(path: Path, mode: int = 0o644, *, parents: bool = True,
                  field: str | None = None) -> Iterator[BinaryIO]:
    """A binary file that becomes ``path`` (fsynced, renamed) when the block ends without an exception,
    and is removed when it raises (Ctrl-C included): for output written as it streams in. Errors as
    :func:`atomic_write_bytes`; an ``OSError`` raised inside the block is mapped the same way."""
    path = Path(path)
    where = field or str(path)
    check_writable(path, parents=parents, field=field)
    try:
        if parents:
            path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _write_error(path, exc, where) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise _write_error(path, exc, where) from None
        raise


class WriteBehind:
    """Writes to ``fh`` that ask the kernel to start writing each ``step`` bytes back to disk as soon as they
    are written (``posix_fadvise(DONTNEED)``: on Linux it starts asynchronous writeback of the range and drops
    only pages already clean), so the fsync of :func:`atomic_writer` waits for the last ``step`` bytes, not
    for the whole file. For large streamed output; measured on a 20 MB pull: about 10 ms less wall time."""

    def __init__(self, fh: BinaryIO, step: int = 4 << 20) -> None:
        self.fh, self.step = fh, step
        self.written = self.flushed = 0

    def write(self, data: bytes) -> None:
        self.fh.write(data)
        self.written += len(data)
        if self.written - self.flushed >= self.step and hasattr(os, "posix_fadvise"):
            self.fh.flush()
            os.posix_fadvise(self.fh.fileno(), self.flushed, self.written - self.flushed, os.POSIX_FADV_DONTNEED)
            self.flushed = self.written

    def restart(self) -> None:
        """Drop what was written: the file is empty again."""
        self.fh.seek(0)
        self.fh.truncate()
        self.written = self.flushed = 0


def atomic_write_text(path: Path, text: str, mode: int = 0o644, *, parents: bool = True,
                      field: str | None = None) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode, parents=parents, field=field)


def _write_error(path: Path, exc: OSError, where: str) -> MeshfilterError:
    """The one-line error for an ``OSError`` met writing ``path`` (classified by type and errno)."""
    reason = exc.strerror or type(exc).__name__
    if isinstance(exc, IsADirectoryError):
        return UsageError(f"cannot write {path}: is a directory", where=where,
                          hint=f"give a file path, such as {path / 'FILE'}")
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        return UsageError(f"cannot write {path}: {reason}", where=where,
                          hint="give a path in a folder that exists and holds ordinary files")
    if isinstance(exc, PermissionError) or exc.errno == errno.EROFS:
        return UsageError(f"cannot write {path}: {reason}", where=where,
                          hint="choose a folder you can write to")
    return MeshfilterError(f"cannot write {path}: {reason}", where=where,
                           hint="check the disk (space, quota) and retry")


# ------------------------------------------------------------------------ temp dirs with an owner

OWNER_FILE = ".meshfilter-owner"
TEMP_PREFIX = "meshfilter-"
_reaped = False
_reap_lock = threading.Lock()


class OwnedTempDir:
    """A temp directory (``name``, ``cleanup()``, context manager, like ``tempfile.TemporaryDirectory``)
    holding :data:`OWNER_FILE`: ``<pid> <start time>`` of the process that made it."""

    def __init__(self, prefix: str, dir: str | None = None) -> None:  # noqa: A002 - tempfile's name
        if not prefix.startswith(TEMP_PREFIX):
            prefix = TEMP_PREFIX + prefix
        reap_orphan_tempdirs(dir)
        self.name = tempfile.mkdtemp(prefix=prefix, dir=dir)
        pid = os.getpid()
        Path(self.name, OWNER_FILE).write_text(f"{pid} {pid_start_time(pid) or ''}\n")

    @property
    def path(self) -> Path:
        return Path(self.name)

    def cleanup(self) -> None:
        shutil.rmtree(self.name, ignore_errors=True)

    def __enter__(self) -> str:
        return self.name

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def owned_tempdir(prefix: str, dir: str | None = None) -> OwnedTempDir:  # noqa: A002
    return OwnedTempDir(prefix, dir)


def owned_tempdirs(pid: int, dir: str | None = None) -> list[Path]:  # noqa: A002
    """The meshfilter temp directories whose owner file names ``pid``."""
    out = []
    for d in Path(dir or tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*"):
        try:
            if (d / OWNER_FILE).read_text().split()[0] == str(pid):
                out.append(d)
        except (OSError, IndexError):
            continue
    return out


def owner_is_gone(directory: Path) -> bool:
    """True when ``directory`` has an owner file whose process is gone (a directory without one, or
    with an unreadable one, is not ours to judge: False)."""
    try:
        pid_text, _, start = (directory / OWNER_FILE).read_text().strip().partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError):
        return False
    return not pid_alive(pid, start or None)


def reap_orphan_tempdirs(dir: str | None = None, *, force: bool = False) -> list[Path]:  # noqa: A002
    """Remove meshfilter temp directories whose owner is gone; once per process unless ``force``.
    Returns the removed paths."""
    global _reaped
    with _reap_lock:
        if _reaped and not force:
            return []
        _reaped = True
    root = Path(dir or tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(TEMP_PREFIX):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
        except OSError:
            continue
        path = Path(entry.path)
        if owner_is_gone(path):
            shutil.rmtree(path, ignore_errors=True)
            if not path.exists():
                removed.append(path)
    return removed
