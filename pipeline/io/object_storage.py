"""An object store behind the storage seam (fsspec: s3fs, gcsfs, adlfs, memory): listings
with sizes and ETags, ranged and whole reads with many requests in flight, uploads of whole
files, conditional writes, and the store's failures as one error naming the object."""

from __future__ import annotations

import functools
import threading
from typing import IO

from ..errors import PipelineError, PreconditionFailed, RangeNotSatisfiable, StorageError
from .request_slots import Slots, imap

_LAZY_LOCK = threading.Lock()  # the reader and the semaphore, made on first use


# requests in flight at once on an object store, per process (--io-concurrency): measured on
# 1,000 small Parquet files behind 10-50 ms of latency (benchmarks/s3.py)
DEFAULT_IO_CONCURRENCY = 32


class FsspecStorage:
    """Any fsspec file system: object stores (no rename, no append), memory, ...

    The same methods as :class:`LocalStorage`; parts are uploaded whole (:meth:`put_file`)
    and small files are one PUT each (:meth:`write_text`).
    """

    def __init__(self, fs, protocol: str) -> None:
        self.fs = fs
        self.protocol = protocol
        self.atomic_rename = False
        # parts uploaded to their final names, completed at the commit (S3's multipart
        # uploads: pipeline.io.multipart), rather than staged and copied
        self.pending_uploads = _takes_if_match(fs)
        # requests in flight at once (footers at planning, the files of a chunk)
        self.io_concurrency = DEFAULT_IO_CONCURRENCY
        # what the last listing said of each object (size, ETag): no HEAD per input file
        self._listed: dict[str, dict] = {}
        # reads through obstore where it can (rust_reads), else None; False: not chosen yet
        self._reader = False

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_listed"] = {}  # a task needs none of it: its pieces carry their sizes
        state["_reader"] = False  # chosen again where the task runs
        state.pop("_in_flight", None)  # each process bounds its own requests
        return state

    def _slots(self) -> Slots:
        """The process's requests in flight on this store, at most ``io_concurrency`` (the
        chunks that run and those fetched ahead share them, in chunk order: request_slots)."""
        held = self.__dict__.get("_in_flight")
        if held is not None and held[0] == self.io_concurrency:
            return held[1]
        with _LAZY_LOCK:
            held = self.__dict__.get("_in_flight")
            if held is None or held[0] != self.io_concurrency:
                held = (self.io_concurrency, Slots(self.io_concurrency))
                self._in_flight = held
            return held[1]

    def _remember(self, detail: dict) -> list[str]:
        for name, info in detail.items():
            if info.get("type", "file") == "file":
                self._listed[name] = info
        return sorted(detail)

    def map(self, fn, items: list) -> list:
        """``fn`` of each item, up to ``io_concurrency`` calls (their requests) in flight at
        once; the results in order (the first exception raised, as one call after another
        would)."""
        if len(items) <= 1:
            return [fn(item) for item in items]
        return list(self.imap(fn, items))

    def imap(self, fn, items: list, *, ahead: int | None = None, rank: int | None = None):
        """:meth:`map`'s results one by one (:func:`~pipeline.io.request_slots.imap`: each
        as soon as it and those before it are done; ``ahead``, ``rank``), on up to
        ``io_concurrency`` threads."""
        return imap(fn, items, threads=self.io_concurrency, ahead=ahead, rank=rank)

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
            reader = self._rust()
            found = reader.find(folder) if reader else None
            if found is None:
                found = self.fs.find(folder, detail=True)
            return self._remember(found)
        except FileNotFoundError:  # no such bucket or container: nothing under it
            return []

    def glob(self, pattern: str) -> list[str]:
        return self._remember(self.fs.glob(pattern, detail=True))

    def _info(self, path: str) -> dict:
        info = self._listed.get(self._strip(path))
        return info if info is not None else self.fs.info(path)

    def _strip(self, path: str) -> str:
        return self.fs._strip_protocol(path)

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
        known, opening it costs no request (and its reads go through obstore where it
        reads: less CPU per byte than s3fs's)."""
        if size is not None and self._rust():
            from .rust_reads import RangeFile

            return RangeFile(lambda a, b: self.read_range(path, a, b, copy=False), size)
        known = {} if size is None else {"size": size}
        return self.fs.open(path, "rb", cache_type="none", **known)

    def _rust(self):
        """obstore's reads and listings of this S3 store (rust_reads), or None."""
        if self._reader is False:
            with _LAZY_LOCK:
                if self._reader is False:
                    from .rust_reads import s3_reader

                    self._reader = s3_reader(self.fs)
        return self._reader

    def read_range(self, path: str, start: int, stop: int, *, copy: bool = True):
        """The bytes; with ``copy=False``, where obstore reads, its own buffer (no copy into
        a ``bytes``), which pyarrow reads through the buffer protocol."""
        reader = self._rust()
        with self._slots():
            if reader:
                return reader(path, start, stop, copy=copy)
            return self.fs.cat_file(path, start=start, end=stop)

    def read_text(self, path: str) -> str:
        return self.fs.cat_file(path).decode()

    def split(self, path: str) -> tuple[str, str]:
        """(S3) The bucket and key of ``path``."""
        return tuple(self.fs.split_path(path)[:2])

    def s3_call(self, name: str, **kwargs) -> dict:
        """(S3) One request of botocore's name (the multipart uploads), as s3fs makes it."""
        return self.fs.call_s3(name, **kwargs)

    def _forget(self) -> None:
        """Drop what the file system cached of listings (after a write)."""
        self.fs.invalidate_cache()

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


def _past_the_end(exc: BaseException) -> bool:
    """S3's 416 to a range that starts past the object's end, as obstore ("416 Range Not
    Satisfiable") or s3fs ("The requested range is not satisfiable") raises it."""
    text = str(exc)
    return "not satisfiable" in text.lower() or "InvalidRange" in text


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
            if method.__name__ not in ("write_text", "put_file", "create_text", "put_pending"):
                raise
            # a write finds no bucket or container (its name is the URL's first part)
            raise PipelineError(f"cannot write ({_first_line(exc)}); does the bucket or "
                                "container exist?", path=self.url(obj)) from None
        except (PipelineError, StorageError, PreconditionFailed, FileExistsError):
            raise
        except Exception as exc:  # noqa: BLE001 - botocore, aiohttp, OSError: all the store's
            if _past_the_end(exc):  # the object is shorter than planned: bad input
                raise RangeNotSatisfiable(self.url(obj)) from None
            detail = _first_line(exc)
            target = self.url(obj) if isinstance(obj, str) else f"{len(obj)} objects"
            raise StorageError(f"{target}: {method.__name__} failed ({detail})") from None

    return wrapper
