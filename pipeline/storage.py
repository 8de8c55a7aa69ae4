"""Where inputs and outputs live: one seam for listing, reading, writing and deleting.

:func:`open_storage` turns a path or URL (``s3://``, ``gs://``, ``abfs://``, ``file://``,
``memory://``, or a local path) into a :class:`Storage` and the path within it, as fsspec's
``url_to_fs`` does. Callers never branch on the protocol: they ask what the store can do.
:attr:`Storage.atomic_rename` decides the commit protocol of an output folder (see writer.py):
a local disk renames atomically (temporary name, fsync, rename); an object store has no rename
and no append, so there an output is committed by one PUT of its manifest.

Local paths use ``os`` directly (today's speed: memory-mapped Parquet, no fsspec layer), and
:class:`LocalStorage` also holds the primitives of the local commit protocol (fsync of a file
or a folder, atomic rename, the exchange of two folders, append): no other module touches
``os``, ``open``, ``shutil`` or ``glob`` for data or output files.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import glob as _glob
import json
import os
import shutil
import sys
import uuid
from typing import IO, Any

from .errors import PipelineError, StorageError


class LockHeld(Exception):
    """Another process holds the lock; the text it wrote there is the argument."""


class PreconditionFailed(OSError):
    """A conditional write or delete found another version of the object than it named."""

# URL schemes and the extra that brings their file system.
EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "abfs": "azure", "az": "azure",
          "abfss": "azure"}
# Option names whose values are secrets (by word of the name: ``key``, ``aws_secret_access_key``,
# ``sas_token``, ``account_key``, ``connection_string``, ``credentials``): never written.
_SECRET_WORDS = ("key", "secret", "token", "password", "passwd", "sas", "credential",
                 "credentials", "connection", "signature")


def is_url(path: str | os.PathLike) -> bool:
    text = os.fspath(path)
    return "://" in text and text.split("://", 1)[0].isidentifier()


def is_local(path: str | os.PathLike) -> bool:
    """A local path or a ``file://`` URL: the local disk, with rename and fsync."""
    text = os.fspath(path)
    return not is_url(text) or text.split("://", 1)[0].lower() == "file"


def redact(options: dict | None) -> dict:
    """Storage options as they may be recorded: secret-looking values replaced."""
    out = {}
    for key, value in (options or {}).items():
        out[key] = "<redacted>" if is_secret_option(key) else _without_userinfo(value)
    return out


def _without_userinfo(value):
    """A URL value (``endpoint_url``) without the secrets it may carry (see redact_url)."""
    return redact_url(value) if isinstance(value, str) else value


# The one rule for secrets in a URL (INPUT, OUT, MODEL, a job file, an option's URL value):
# user-info with a password (``http://user:pw@host``, ``s3://key:secret@bucket``), or a query
# parameter named as a credential (a pre-signed URL's ``X-Amz-Signature``, Azure's ``sig``).
# A user name alone, or abfs's ``container@account``, is no secret. A path with a secret is
# refused (:func:`refuse_secret_url`) before anything is written; where one must be shown,
# it is shown as :func:`redact_url` writes it (``s3://***@bucket/...``).
_QUERY_SECRET_WORDS = ("sig",)


def _split_url(text: str):
    """(scheme, userinfo or None, host and the rest, query or None) of a URL, else None."""
    if not is_url(text):
        return None
    scheme, rest = text.split("://", 1)
    authority, slash, path = rest.partition("/")
    user, at, host = authority.rpartition("@")
    path, q, query = f"{host}{slash}{path}".partition("?")
    return scheme, (user if at else None), path, (query if q else None)


def _secret_query_item(item: str) -> bool:
    name = item.split("=", 1)[0]
    return is_secret_option(name) or name.lower() in _QUERY_SECRET_WORDS


def url_has_secret(text) -> bool:
    """Whether a path is a URL that carries a secret (the rule above)."""
    parts = _split_url(os.fspath(text)) if isinstance(text, str | os.PathLike) else None
    if parts is None:
        return False
    _, user, _, query = parts
    return bool((user is not None and ":" in user) or
                (query and any(_secret_query_item(i) for i in query.split("&"))))


def redact_url(text: str) -> str:
    """``text`` with the secrets of the rule above shown as ``***`` (the path as messages
    may show it); any other text unchanged."""
    if not url_has_secret(text):
        return text
    scheme, user, path, query = _split_url(text)
    shown = f"{scheme}://{'***@' if user is not None and ':' in user else ''}{path}"
    if query is not None:
        shown += "?" + "&".join(i.split("=", 1)[0] + "=***" if _secret_query_item(i) else i
                                for i in query.split("&"))
    return shown


def refuse_secret_url(text, *, what: str | None = None) -> None:
    """A :class:`PipelineError` (naming the path redacted) for a path that carries a secret:
    it would be recorded in the output and shown in messages."""
    if url_has_secret(text):
        raise PipelineError(
            "a password or credential in a URL is refused (it would be written into the "
            "output and shown in messages): give it with storage_options (a job file: its "
            "[storage] table; e.g. "
            "key=...,secret=... for s3://, username=/password= for http) or the provider's "
            "environment", path=redact_url(os.fspath(text)) + (f" ({what})" if what else ""),
            params=("storage_options",))


def is_secret_option(name) -> bool:
    """Whether an option's value is a secret: a word of its name (split at ``_``, ``-``,
    ``.``) is one of the secret words (so ``aws_secret_access_key`` is, ``max_keys`` not)."""
    import re

    words = re.split(r"[_\-.]+", str(name).lower())
    return any(w in _SECRET_WORDS for w in words) or any(
        w in str(name).lower() for w in ("secret", "password", "credential", "token"))


def parse_storage_options(items) -> dict:
    """``KEY=VALUE`` strings (``--storage-option``) to a dict; values parsed as JSON where
    they are JSON (``true``, ``3``), else kept as text."""
    options: dict[str, Any] = {}
    for item in items or ():
        if isinstance(item, dict):
            options.update(item)
            continue
        key, sep, value = str(item).partition("=")
        if not sep or not key:
            raise PipelineError("--storage-option must be KEY=VALUE; an item is not (its "
                                "text is not shown, as it may hold a secret)")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return options


# requests in flight at once on an object store, per process (--io-concurrency): measured on
# 1,000 small Parquet files behind 10-50 ms of latency (benchmarks/s3.py)
DEFAULT_IO_CONCURRENCY = 32


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

    # The local commit protocol's primitives (see writer.py): temporary name, fsync, rename.

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


class FsspecStorage:
    """Any fsspec file system: object stores (no rename, no append), memory, ...

    The same methods as :class:`LocalStorage`; parts are uploaded whole (:meth:`put_file`)
    and small files are one PUT each (:meth:`write_text`).
    """

    def __init__(self, fs, protocol: str) -> None:
        self.fs = fs
        self.protocol = protocol
        self.atomic_rename = False
        # requests in flight at once (footers at planning, the files of a chunk)
        self.io_concurrency = DEFAULT_IO_CONCURRENCY
        # what the last listing said of each object (size, ETag): no HEAD per input file
        self._listed: dict[str, dict] = {}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_listed"] = {}  # a task needs none of it: its pieces carry their sizes
        return state

    def _remember(self, detail: dict) -> list[str]:
        for name, info in detail.items():
            if info.get("type", "file") == "file":
                self._listed[name] = info
        return sorted(detail)

    def fetch_many(self, requests: list[tuple[str, int, int]]) -> list[bytes]:
        """The byte ranges ``(path, start, stop)``, up to ``io_concurrency`` requests in
        flight at once; in order."""
        if len(requests) <= 1:
            return [self.read_range(*r) for r in requests]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max(1, min(self.io_concurrency, len(requests)))) as pool:
            return list(pool.map(lambda r: self.read_range(*r), requests))

    def url(self, path: str) -> str:
        return self.fs.unstrip_protocol(path) if self.protocol != "file" else path

    def join(self, *parts: str) -> str:
        return "/".join(p.strip("/") if i else p.rstrip("/") for i, p in enumerate(parts))

    def parent(self, path: str) -> str:
        return self.fs._parent(path)

    def exists(self, path: str) -> bool:
        return self.fs.exists(path)

    def isdir(self, path: str) -> bool:
        return self.fs.isdir(path)

    def find(self, folder: str) -> list[str]:
        try:
            return self._remember(self.fs.find(folder, detail=True))
        except FileNotFoundError:  # no such bucket or container: nothing under it
            return []

    def glob(self, pattern: str) -> list[str]:
        return self._remember(self.fs.glob(pattern, detail=True))

    def _info(self, path: str) -> dict:
        info = self._listed.get(self.fs._strip_protocol(path))
        return info if info is not None else self.fs.info(path)

    def fingerprint(self, path: str) -> dict:
        info = self._info(path)
        version = _version(info)
        return {"path": self.url(path), "size": int(info.get("size") or 0), "version": version}

    def size(self, path: str) -> int:
        return int(self._info(path).get("size") or 0)

    def open(self, path: str, mode: str = "rb") -> IO:
        return self.fs.open(path, mode)

    def open_parquet(self, path: str, size: int | None = None):
        """A file for pyarrow's own coalesced reads (no fsspec read-ahead); with ``size``
        known, opening it costs no request."""
        if size is not None:
            return self.fs.open(path, "rb", cache_type="none", size=size)
        return self.fs.open(path, "rb", cache_type="none")

    def read_range(self, path: str, start: int, stop: int) -> bytes:
        return self.fs.cat_file(path, start=start, end=stop)

    def read_text(self, path: str) -> str:
        return self.fs.cat_file(path).decode()

    def write_text(self, path: str, text: str) -> None:
        self.fs.pipe_file(path, text.encode())  # one PUT: atomic per object

    def put_file(self, local: str, path: str) -> dict:
        self.fs.put_file(local, path)
        self.fs.invalidate_cache(self.parent(path))
        return self.head(path) or {}

    def head(self, path: str) -> dict | None:
        try:
            info = self.fs.info(path, refresh=True) if _takes_refresh(self.fs) else \
                self.fs.info(path)
        except (FileNotFoundError, OSError):
            return None
        return {"size": int(info.get("size") or 0), "etag": _version(info)}

    def rm(self, path: str, recursive: bool = False) -> None:
        try:
            self.fs.rm(path, recursive=recursive)
        except FileNotFoundError:
            pass
        self.fs.invalidate_cache()

    def rm_many(self, paths: list[str]) -> None:
        """One batch request per 1,000 objects on S3."""
        if paths:
            self.fs.rm(list(paths))
            self.fs.invalidate_cache()

    def makedirs(self, path: str) -> None:
        if self.protocol in ("memory", "file"):
            self.fs.makedirs(path, exist_ok=True)

    # Conditional writes (the lease, the commit): S3 passes them to the store (If-None-Match,
    # If-Match); other stores check first, then write.

    def create_text(self, path: str, text: str) -> str | None:
        """Create ``path`` only if absent (FileExistsError otherwise); returns its ETag."""
        try:
            out = self.fs.pipe_file(path, text.encode(), mode="create")
        except FileExistsError:
            raise
        except OSError as exc:
            if _precondition(exc):
                raise FileExistsError(path) from None
            raise
        self.fs.invalidate_cache(self.parent(path))
        etag = out.get("ETag") if isinstance(out, dict) else None
        return etag.strip('"') if etag else (self.head(path) or {}).get("etag")

    def replace_if(self, path: str, text: str, etag: str | None) -> str | None:
        """Replace ``path`` only if its version is still ``etag`` (else PreconditionFailed);
        returns the new ETag."""
        if _takes_if_match(self.fs):
            try:
                out = self.fs.pipe_file(path, text.encode(), IfMatch=f'"{etag}"')
            except OSError as exc:
                if _precondition(exc) or isinstance(exc, FileNotFoundError):
                    raise PreconditionFailed(path) from None
                raise
            self.fs.invalidate_cache(self.parent(path))
            new = out.get("ETag") if isinstance(out, dict) else None
            if new:
                return new.strip('"')
        else:
            if (self.head(path) or {}).get("etag") != etag:
                raise PreconditionFailed(path)
            self.fs.pipe_file(path, text.encode())
            self.fs.invalidate_cache(self.parent(path))
        return (self.head(path) or {}).get("etag")

    def read_versioned(self, path: str) -> tuple[str, str | None] | None:
        """The text of ``path`` and the ETag it had just before (None when absent)."""
        head = self.head(path)
        if head is None:
            return None
        try:
            return self.fs.cat_file(path).decode(), head.get("etag")
        except FileNotFoundError:
            return None

    def remove_if(self, path: str, etag: str | None) -> None:
        """Delete ``path`` if its version is still ``etag``."""
        if (self.head(path) or {}).get("etag") != etag:
            raise PreconditionFailed(path)
        self.rm(path)

    def abort_uploads(self, folder: str) -> int:
        """Abort the unfinished multipart uploads under ``folder`` (S3; a killed upload's
        parts are invisible but kept, and billed, until aborted); returns how many."""
        if not _takes_if_match(self.fs):
            return 0
        bucket, key, _ = self.fs.split_path(folder)
        found = self.fs.call_s3("list_multipart_uploads", Bucket=bucket,
                                Prefix=key.rstrip("/") + "/").get("Uploads", [])
        for upload in found:
            self.fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=upload["Key"],
                            UploadId=upload["UploadId"])
        return len(found)

    def copy_many(self, sources: list[str], targets: list[str]) -> None:
        """Server-side copies, batched (S3: CopyObject each, many in flight)."""
        if sources:
            self.fs.copy(list(sources), list(targets))
            self.fs.invalidate_cache()


def _version(info: dict) -> str | None:
    for key in ("ETag", "etag", "md5Hash", "generation", "mtime", "LastModified", "created"):
        if info.get(key) is not None:
            return str(info[key]).strip('"')
    return None


def _takes_if_match(fs) -> bool:
    return type(fs).__name__ == "S3FileSystem"


def _precondition(exc: BaseException) -> bool:
    """S3's 412 PreconditionFailed (or 409 ConditionalRequestConflict), as s3fs raises it."""
    text = str(exc).lower()
    return "pre-condition" in text or "precondition" in text or "conditional" in text


def _takes_refresh(fs) -> bool:
    return type(fs).__name__ in ("S3FileSystem", "GCSFileSystem", "AzureBlobFileSystem")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _storage_errors(method):
    """A store's failure, after its client's own retries, as one StorageError naming the
    operation and the object; a missing object stays FileNotFoundError."""

    @functools.wraps(method)
    def wrapper(self, path, *args, **kwargs):
        # the object a message names: put_file's is its second argument (the first is the
        # local file it uploads)
        obj = args[0] if method.__name__ == "put_file" and args else path
        try:
            return method(self, path, *args, **kwargs)
        except FileNotFoundError as exc:
            if method.__name__ not in ("write_text", "put_file", "create_text"):
                raise
            # a write finds no bucket or container (its name is the URL's first part)
            raise PipelineError(f"cannot write ({_first_line(exc)}); does the bucket or "
                                "container exist?", path=self.url(obj)) from None
        except (PipelineError, StorageError, PreconditionFailed, FileExistsError):
            raise
        except Exception as exc:  # noqa: BLE001 - botocore, aiohttp, OSError: all the store's
            detail = _first_line(exc)
            target = self.url(obj) if isinstance(obj, str) else f"{len(obj)} objects"
            raise StorageError(f"{target}: {method.__name__} failed ({detail})") from None

    return wrapper


for _name in ("exists", "isdir", "find", "glob", "fingerprint", "size", "open", "read_range",
              "read_text", "write_text", "put_file", "rm", "rm_many", "copy_many",
              "create_text", "replace_if", "read_versioned", "remove_if", "abort_uploads"):
    setattr(FsspecStorage, _name, _storage_errors(getattr(FsspecStorage, _name)))

Storage = LocalStorage | FsspecStorage
LOCAL = LocalStorage()


def open_storage(path: str | os.PathLike, storage_options: dict | None = None
                 ) -> tuple[Storage, str]:
    """The storage that holds ``path`` and the path within it.

    A local path (or ``file://``) is the local disk; any other URL goes through fsspec with
    ``storage_options``; a URL whose file system is not installed is one error naming the
    extra to install.
    """
    text = os.fspath(path)
    refuse_secret_url(text)
    if is_local(text):
        return LOCAL, text.split("://", 1)[1] if is_url(text) else text
    scheme = text.split("://", 1)[0].lower()
    try:
        from fsspec.core import url_to_fs
    except ImportError:  # pragma: no cover - fsspec comes with dask
        raise PipelineError("URLs need fsspec (pip install fsspec)", path=text) from None
    try:
        kwargs = dict(storage_options or {})
        if scheme in ("s3", "s3a"):  # botocore's pool (10) would cap the requests in flight
            config = dict(kwargs.get("config_kwargs") or {})
            config.setdefault("max_pool_connections", 128)
            kwargs["config_kwargs"] = config
        fs, inner = url_to_fs(text, **kwargs)
    except ImportError:
        extra = EXTRAS.get(scheme)
        hint = f"pip install 'pipeline[{extra}]'" if extra else "install its fsspec package"
        raise PipelineError(f"no file system for {scheme}:// is installed ({hint})",
                            path=text) from None
    except (ValueError, TypeError) as exc:
        raise PipelineError(f"cannot open this URL ({exc})", path=text) from None
    fs.invalidate_cache()  # listings cached by an earlier command of this process are stale
    return FsspecStorage(fs, scheme), inner
