"""An S3 store whose every request of a run is made by obstore, or signed here: no s3fs.

Importing s3fs (aiobotocore, aiohttp and its TLS contexts) and making its client cost about
0.4 s of CPU in every process that touches S3, the client and each cluster worker, more
than all the reads of a run of small files; on a busy machine it delays the store's answers
too. Where obstore can read what s3fs would (:func:`rust_reads.env_settings` where the
environment alone decides the settings, else :func:`rust_reads.botocore_settings`: botocore's
credential chain, region and configured endpoint, as the client s3fs makes finds them) and
the store is opened with no options, :func:`open_obstore_s3` gives an
:class:`ObstoreS3Storage`: obstore lists, reads and writes (conditional writes included: the
lease and the commit), the multipart uploads left open until the commit are signed here
(:mod:`pipeline.io.s3_signed`), and s3fs is made only for what neither does (a glob, a
streamed file, a listing with directory markers), its settings checked against obstore's
before it is used.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import threading

from ..errors import PreconditionFailed, StorageError
from . import rust_reads
from .local_storage import LocalStorage
from .object_storage import FsspecStorage
from .urls import opening_error

_LOCK = threading.Lock()
_REOPENED: dict[tuple, FsspecStorage] = {}  # a cluster task's stores, by their arguments


def open_obstore_s3(text: str, kwargs: dict) -> tuple[ObstoreS3Storage, str] | None:
    """The store and path of an ``s3://`` URL opened with no options other than ours; None
    where s3fs must be made (options to map, a chained or odd URL, fsspec's own
    configuration, no obstore or s3fs, settings obstore cannot take)."""
    found = _obstore_settings(text, kwargs, botocore=True)
    return None if found is None else (ObstoreS3Storage(found[0], text, kwargs), found[1])


def list_ahead(text: str) -> None:
    """List the folder (or object) at the plain ``s3://bucket/key`` URL ``text`` on a
    thread of its own, where obstore lists it with settings from the environment alone, for
    the store :func:`open_obstore_s3` opens with no options to find: what a command calls
    before it imports what it plans with. Anything else: nothing."""
    found = _obstore_settings(text, {}, botocore=False) if _PLAIN_S3.fullmatch(text) else None
    if found is not None:
        rust_reads.reader_for(found[0]).find_ahead(found[1])


def _obstore_settings(text: str, kwargs: dict, *, botocore: bool) -> tuple[tuple, str] | None:
    """obstore's settings for the store of ``text`` opened with ``kwargs``, and the path in
    it; None where s3fs must be made (or, without ``botocore``, where only botocore, 0.15-0.2
    s to import, would find them)."""
    scheme, _, rest = text.partition("://")
    if scheme not in ("s3", "s3a") or "::" in text or any(c in rest for c in "?#"):
        return None
    options = dict(kwargs)
    config = dict(options.pop("config_kwargs", None) or {})
    config.pop("max_pool_connections", None)  # ours (storage.open_storage)
    if options or config or _fsspec_configures_s3():
        return None
    if importlib.util.find_spec("s3fs") is None:
        return None
    settings = rust_reads.env_settings() or (rust_reads.botocore_settings() if botocore
                                             else None)
    return None if settings is None else (settings, rest.rstrip("/"))


# a URL that names only a bucket and a key (no glob, nor credentials: refused by the command)
_PLAIN_S3 = re.compile(r"s3a?://[a-z0-9][a-z0-9.-]*(/[^*?\[\]#@:]*)?")


def _fsspec_configures_s3() -> bool:
    """Whether fsspec's configuration (``FSSPEC_*`` variables, its configuration folder)
    gives S3 options, read without importing fsspec where there is none to read."""
    folder = os.environ.get("FSSPEC_CONFIG_DIR",
                            os.path.join(os.path.expanduser("~"), ".config", "fsspec"))
    if "fsspec" not in sys.modules and not LocalStorage().isdir(folder) and not any(
            name == f"FSSPEC_{p}" or name.startswith(f"FSSPEC_{p}_") for name in os.environ
            for p in ("S3", "S3A")):  # fsspec's FSSPEC_<protocol>[_<option>] variables
        return False
    import fsspec.config

    return bool(fsspec.config.conf.get("s3") or fsspec.config.conf.get("s3a"))


def _reopen(text: str, kwargs: dict, io_concurrency: int) -> FsspecStorage:
    """The storage a cluster's task opens ``text`` with where it runs: obstore's settings
    found again there (that process's credentials, as s3fs would find them), else s3fs (the
    store as ``open_storage`` opens it there: the options are the same); one per process
    and arguments, so that a worker's tasks share its requests in flight."""
    key = (text, repr(sorted(kwargs.items())), io_concurrency)
    with _LOCK:
        storage = _REOPENED.get(key)
    if storage is None:
        storage = _open_again(text, kwargs, io_concurrency)
        with _LOCK:
            storage = _REOPENED.setdefault(key, storage)
            while len(_REOPENED) > 16:
                _REOPENED.pop(next(iter(_REOPENED)))
    return storage


def _open_again(text: str, kwargs: dict, io_concurrency: int) -> FsspecStorage:
    opened = open_obstore_s3(text, kwargs)
    if opened is not None:
        storage = opened[0]
    else:
        from fsspec.core import url_to_fs

        storage = FsspecStorage(url_to_fs(text, **kwargs)[0], "s3")
    storage.io_concurrency = io_concurrency
    return storage


class ObstoreS3Storage(FsspecStorage):
    """:class:`FsspecStorage` of an S3 store through obstore (see the module): the same
    methods, each answered with obstore's requests; s3fs made only where one is not."""

    def __init__(self, settings: tuple, text: str, kwargs: dict) -> None:
        super().__init__(None, "s3")
        self._settings, self._text, self._kwargs = settings, text, kwargs
        self._reader = rust_reads.reader_for(settings)
        self._requests = None  # the signed multipart requests, made on first use
        self._requests_made = threading.Lock()  # (once, where two parts start together)
        self.pending_uploads = True  # multipart uploads completed at the commit

    def __reduce__(self):
        return _reopen, (self._text, self._kwargs, self.io_concurrency)

    # s3fs, only where obstore has no answer

    @property
    def fs(self):
        fs = self.__dict__.get("_fs")
        if fs is None:
            with _LOCK:
                fs = self.__dict__.get("_fs") or self._make_s3fs()
                self.__dict__["_fs"] = fs
        return fs

    @fs.setter
    def fs(self, value) -> None:
        self.__dict__["_fs"] = value

    def _make_s3fs(self):
        try:
            from fsspec.core import url_to_fs

            # a file system of its own, made from the configuration botocore reads now
            fs = url_to_fs(self._text, skip_instance_cache=True, **self._kwargs)[0]
        except (ImportError, ValueError, TypeError) as exc:  # as open_storage words them
            raise opening_error(exc, self._text) from None
        if rust_reads.s3_settings(fs) != self._settings:
            raise StorageError("s3fs's client and botocore's configuration disagree on the "
                               "store's credentials, region or endpoint; nothing was written")
        return fs

    def _forget(self) -> None:
        if self.__dict__.get("_fs") is not None:
            self.fs.invalidate_cache()

    # paths

    def url(self, path: str) -> str:
        return path if "://" in path else f"s3://{path}"

    def _strip(self, path: str) -> str:
        for prefix in ("s3://", "s3a://"):
            if path.startswith(prefix):
                return path[len(prefix):].rstrip("/")
        return path.rstrip("/")

    def parent(self, path: str) -> str:
        return self._strip(path).rpartition("/")[0]

    def _at(self, path: str):
        """obstore's store of ``path``'s bucket, and its key."""
        bucket, key = self.split(path)
        return self._reader.store(bucket), key

    def split(self, path: str) -> tuple[str, str]:
        bucket, _, key = self._strip(path).partition("/")
        return bucket, key

    # reads

    def _info(self, path: str) -> dict:
        info = self._listed.get(self._strip(path))
        if info is not None:
            return info
        import obstore

        store, key = self._at(path)
        meta = obstore.head(store, key)
        return {"name": self._strip(path), "type": "file", "size": meta["size"],
                "ETag": meta.get("e_tag")}

    def exists(self, path: str) -> bool:
        store, key = self._at(path)
        if not key:
            return self.fs.exists(path)  # a bucket
        return self.head(path) is not None or self._any_under(store, key)

    def isdir(self, path: str) -> bool:
        store, key = self._at(path)
        return self.fs.isdir(path) if not key else self._any_under(store, key)

    @staticmethod
    def _any_under(store, key: str) -> bool:
        import obstore

        try:
            for batch in obstore.list(store, key.rstrip("/") + "/", chunk_size=1):
                return bool(batch)
        except FileNotFoundError:
            return False
        except Exception as exc:  # no such bucket: nothing there, as s3fs answers
            if "NoSuchBucket" in str(exc) or " 404 " in str(exc):
                return False
            raise
        return False

    def read_text(self, path: str) -> str:
        import obstore

        store, key = self._at(path)
        return bytes(obstore.get(store, key).bytes()).decode()

    def head(self, path: str) -> dict | None:
        import obstore

        store, key = self._at(path)
        try:
            meta = obstore.head(store, key)
        except FileNotFoundError:
            return None
        return {"size": int(meta["size"]), "etag": _etag(meta.get("e_tag"))}

    def read_versioned(self, path: str) -> tuple[str, str | None] | None:
        """The text of ``path`` and its ETag, from one GET (None when absent)."""
        import obstore

        store, key = self._at(path)
        try:
            got = obstore.get(store, key)
        except FileNotFoundError:
            return None
        return bytes(got.bytes()).decode(), _etag(got.meta.get("e_tag"))

    # writes

    def write_text(self, path: str, text: str) -> None:
        import obstore

        store, key = self._at(path)
        obstore.put(store, key, text.encode(), mode="overwrite")  # one PUT: atomic per object

    def create_text(self, path: str, text: str) -> str | None:
        """Create ``path`` only if absent (If-None-Match; FileExistsError otherwise)."""
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        store, key = self._at(path)
        try:
            out = obstore.put(store, key, text.encode(), mode="create")
        except (AlreadyExistsError, PreconditionError):
            raise FileExistsError(self.url(path)) from None
        return _etag(out.get("e_tag"))

    def replace_if(self, path: str, text: str, etag: str | None) -> str | None:
        """Replace ``path`` only if its version is still ``etag`` (If-Match; else
        PreconditionFailed, as where it is gone); returns the new ETag."""
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        store, key = self._at(path)
        try:
            out = obstore.put(store, key, text.encode(), mode={"e_tag": f'"{etag}"'})
        except (PreconditionError, FileNotFoundError, AlreadyExistsError):  # (409: a race)
            raise PreconditionFailed(self.url(path)) from None
        return _etag(out.get("e_tag"))

    def remove_if(self, path: str, etag: str | None) -> None:
        if (self.head(path) or {}).get("etag") != etag:
            raise PreconditionFailed(path)
        self.rm(path)

    def rm(self, path: str, recursive: bool = False) -> None:
        if recursive:  # a prefix, directory markers and all: s3fs's
            return super().rm(path, recursive=True)
        import obstore

        store, key = self._at(path)
        obstore.delete(store, key)  # (a missing object is no error)
        self._forget()

    def rm_many(self, paths: list[str]) -> None:
        """One batch request per 1,000 objects, per bucket."""
        import obstore

        by_bucket: dict[str, list[str]] = {}
        for path in paths:
            bucket, key = self.split(path)
            by_bucket.setdefault(bucket, []).append(key)
        for bucket, keys in by_bucket.items():
            obstore.delete(self._reader.store(bucket), keys)
        if paths:
            self._forget()

    # S3's multipart uploads (pipeline.io.multipart)

    def s3_call(self, name: str, **kwargs) -> dict:
        return self._signed().call(name, **kwargs)

    def prepare_writes(self) -> None:
        """The multipart requests' client made now: its imports (http.client, email, xml)
        hold the GIL for 20-30 ms, while the first parts compute where made on their first
        request; made instead while the run waits on the store (OUT surveyed as the input is
        planned: :class:`pipeline.io.writer.EarlyOutput`)."""
        self._signed()

    def _signed(self):
        with self._requests_made:
            if self._requests is None:
                from .s3_signed import S3Requests

                self._requests = S3Requests(self._settings)
        return self._requests


def _etag(value: str | None) -> str | None:
    return value.strip('"') if value else None
