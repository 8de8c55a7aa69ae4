"""Where inputs and outputs live: one seam for listing, reading, writing and deleting.

:func:`open_storage` turns a path or URL (``s3://``, ``gs://``, ``abfs://``, ``file://``,
``memory://``, or a local path) into a :class:`Storage` and the path within it, as fsspec's
``url_to_fs`` does. Callers never branch on the protocol: they ask what the store can do.
:attr:`Storage.atomic_rename` decides the commit protocol of an output folder (see
:mod:`pipeline.io.writer`): a local disk renames atomically (temporary name, fsync,
rename); an object store has no rename and no append, so there an output is committed by one
PUT of its manifest.

Local paths use ``os`` directly (today's speed: memory-mapped Parquet, no fsspec layer), and
:class:`LocalStorage` also holds the primitives of the local commit protocol (fsync of a file
or a folder, atomic rename, the exchange of two folders, append): no other module touches
``os``, ``open``, ``shutil`` or ``glob`` for data or output files.
"""

from __future__ import annotations

import os

from ..errors import PipelineError
from .local_storage import LocalStorage
from .object_storage import FsspecStorage, _storage_errors
from .obstore_s3 import ObstoreS3Storage, open_obstore_s3
from .urls import is_local, is_url, opening_error, refuse_secret_url

for _cls in (FsspecStorage, ObstoreS3Storage):
    for _name in ("exists", "isdir", "find", "glob", "fingerprint", "size", "open",
                  "read_range", "read_text", "write_text", "put_file", "rm", "rm_many",
                  "copy_many", "create_text", "replace_if", "read_versioned", "remove_if",
                  "head"):
        if _name in vars(_cls):
            setattr(_cls, _name, _storage_errors(getattr(_cls, _name)))


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
    kwargs = dict(storage_options or {})
    try:
        if scheme in ("s3", "s3a"):  # botocore's pool (10) would cap the requests in flight
            config = dict(kwargs.get("config_kwargs") or {})
            config.setdefault("max_pool_connections", 128)
            kwargs["config_kwargs"] = config
            through_obstore = open_obstore_s3(text, kwargs)
            if through_obstore is not None:  # no s3fs (nor fsspec): obstore, signed requests
                return through_obstore
    except (ImportError, ValueError, TypeError) as exc:
        raise opening_error(exc, text) from None
    try:
        from fsspec.core import url_to_fs
    except ImportError:  # pragma: no cover - fsspec comes with dask
        raise PipelineError("URLs need fsspec (pip install fsspec)", path=text) from None
    try:
        fs, inner = url_to_fs(text, **kwargs)
    except (ImportError, ValueError, TypeError) as exc:
        raise opening_error(exc, text) from None
    fs.invalidate_cache()  # listings cached by an earlier command of this process are stale
    return FsspecStorage(fs, scheme), inner
