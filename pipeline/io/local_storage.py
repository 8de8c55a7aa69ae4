"""A local disk behind the storage seam: ``os`` directly (memory-mapped Parquet, no fsspec
layer), and the primitives of the local commit (fsync of a file or a folder, atomic rename,
the exchange of two folders, append, an exclusive lock)."""

from __future__ import annotations

import ctypes
import errno
import functools
import glob as _glob
import os
import shutil
import sys
import uuid
from typing import IO

from ..errors import LockHeld

# URL schemes and the extra that brings their file system.


class LocalStorage:
    """A local disk: ``os`` calls, atomic rename, fsync."""

    atomic_rename = True
    protocol = "file"

    def url(self, path: str) -> str:
        """The path as the user would write it (messages, manifests)."""
        return path

    def join(self, *parts: str) -> str:
        return os.path.join(*parts)

    def parent(self, path: str) -> str:
        return os.path.dirname(path.rstrip("/")) or "."

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def isdir(self, path: str) -> bool:
        return os.path.isdir(path)

    def find(self, folder: str) -> list[str]:
        """Every file under ``folder``, sorted."""
        return sorted(os.path.join(root, name) for root, _, names in os.walk(folder)
                      for name in names)

    def glob(self, pattern: str) -> list[str]:
        return sorted(_glob.glob(pattern, recursive=True))

    def fingerprint(self, path: str) -> dict:
        st = os.stat(path)
        return {"path": path, "size": st.st_size, "mtime_ns": st.st_mtime_ns}

    def size(self, path: str) -> int:
        return os.path.getsize(path)

    def open(self, path: str, mode: str = "rb") -> IO:
        return open(path, mode)

    def open_parquet(self, path: str, size: int | None = None):
        """What ``pyarrow.parquet.ParquetFile`` reads from."""
        return path

    def read_range(self, path: str, start: int, stop: int) -> bytes:
        with open(path, "rb") as fh:
            fh.seek(start)
            return fh.read(stop - start)

    def read_text(self, path: str) -> str:
        with open(path) as fh:
            return fh.read()

    def write_text(self, path: str, text: str) -> None:
        """Atomically: temporary name, fsync, rename."""
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        self.write_synced(tmp, text)
        self.replace(tmp, path)

    # The local commit protocol's primitives (see :mod:`pipeline.io.writer`): temporary name,
    # fsync, rename.

    def write_synced(self, path: str, text: str) -> None:
        """Write ``path`` (under a name no reader takes for complete) and fsync it."""
        with open(path, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    def append_text(self, path: str, text: str) -> None:
        with open(path, "a") as fh:
            fh.write(text)

    def fsync(self, path: str) -> None:
        """Make a file's data, or a folder's entries (its renames), durable."""
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def replace(self, src: str, dst: str) -> None:
        """Rename ``src`` to ``dst`` atomically, replacing a file there."""
        os.replace(src, dst)

    def exchange(self, a: str, b: str) -> bool:
        """Swap two folders atomically; False where this platform cannot (nothing done)."""
        return exchange_paths(a, b)

    def rmtree(self, path: str, *, ignore_errors: bool = False) -> None:
        shutil.rmtree(path, ignore_errors=ignore_errors)

    def listdir(self, path: str) -> list[str]:
        """The names in a folder, sorted."""
        return sorted(os.listdir(path))

    def realpath(self, path: str) -> str:
        """``..`` and symlinks resolved."""
        return os.path.realpath(path)

    # The lease of an output on a local disk (see lease.py): an exclusive flock.

    def lock(self, path: str, text: str) -> int:
        """Take an exclusive ``flock`` on ``path`` (made if absent), write ``text`` in it and
        return its descriptor, held until :meth:`unlock`. Another process holding it:
        :class:`LockHeld` with that holder's text."""
        import fcntl

        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 4096).decode(errors="replace")
                os.close(fd)
                raise LockHeld(holder) from None
            try:  # the file may have been released (unlinked) between open and flock
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode(), 0)
        return fd

    def unlock(self, path: str, fd: int) -> None:
        """Delete the lock file while still holding it (the next run makes a new one), then
        let it go."""
        try:
            os.unlink(path)
        except OSError:
            pass
        os.close(fd)

    def put_file(self, local: str, path: str) -> dict:
        """Upload a finished local file whole; returns its size and version."""
        shutil.copyfile(local, path)
        return {"size": os.path.getsize(path)}

    def head(self, path: str) -> dict | None:
        try:
            return {"size": os.path.getsize(path)}
        except OSError:
            return None

    def rm(self, path: str, recursive: bool = False) -> None:
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.exists(path):
            os.unlink(path)

    def rm_many(self, paths: list[str]) -> None:
        for path in paths:
            self.rm(path)

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)


def exchange_paths(a, b) -> bool:
    """Atomically swap two paths (Linux ``renameat2`` with ``RENAME_EXCHANGE``).

    Returns False where the platform or the file system cannot, and nothing was changed.
    """
    rename = _renameat2()
    if rename is None or os.environ.get("PIPELINE_NO_RENAME_EXCHANGE"):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if rename(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), os.fspath(a), None, os.fspath(b))


@functools.cache
def _renameat2():
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):  # glibc < 2.28, musl
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn
