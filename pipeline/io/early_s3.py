"""An S3 store whose s3fs client is made on a thread while obstore lists and plans the input.

Importing s3fs (aiobotocore, aiohttp and its TLS contexts) and making its client cost about
0.35 s of a run's start, before its first request. Where obstore reads (rust_reads) and the
store is opened with no options, a run needs s3fs only for its writes and the commit's
conditional requests, which come after planning. So :func:`open_early` finds obstore's
settings without s3fs (:func:`rust_reads.env_settings` where the environment alone decides
them, else :func:`rust_reads.botocore_settings`: botocore's credential chain, region and
configured endpoint, as the client s3fs makes finds them) and makes the s3fs file system on
a thread; the first call that needs it waits for it, and checks that its client's settings
are the ones obstore read with (else one error: nothing is written before that check).
"""

from __future__ import annotations

import atexit
import importlib.util
import threading
from concurrent.futures import Future

from ..errors import StorageError
from . import rust_reads
from .object_storage import FsspecStorage
from .urls import opening_error

_LOCK = threading.Lock()
# the file system being made for obstore's settings (the latest settings only: a new
# credential or endpoint, e.g. set in the environment between two library calls, makes a
# new one, as botocore would read it)
_MADE: dict[tuple, Future] = {}
_STARTED: list[Future] = []  # those not finished when the last one started, for settle()


def open_early(text: str, kwargs: dict) -> tuple[FsspecStorage, str] | None:
    """The store and path of an ``s3://`` URL opened with no options other than ours, its
    s3fs client made on a thread; None where s3fs must be made first (options to map, a
    chained or odd URL, fsspec's own configuration, no obstore or s3fs, settings obstore
    cannot take)."""
    scheme, _, rest = text.partition("://")
    if scheme not in ("s3", "s3a") or "::" in text or any(c in rest for c in "?#"):
        return None
    options = dict(kwargs)
    config = dict(options.pop("config_kwargs", None) or {})
    config.pop("max_pool_connections", None)  # ours (storage.open_storage)
    if options or config:
        return None
    import fsspec.config

    if fsspec.config.conf.get("s3") or fsspec.config.conf.get("s3a"):
        return None
    if importlib.util.find_spec("s3fs") is None:
        return None
    settings = rust_reads.env_settings() or rust_reads.botocore_settings()
    if settings is None:
        return None
    with _LOCK:
        making = _MADE.get(settings)
        if making is None or (making.done() and making.exception() is not None):
            making = Future()  # (a failure is not kept: the next run tries again)
            if not _STARTED:
                atexit.register(settle)  # a library's process too: no import at shutdown
            _STARTED[:] = [m for m in _STARTED if not m.done()] + [making]
            threading.Thread(target=_make, args=(making, text, kwargs), daemon=True,
                             name="pipeline-s3fs").start()
            _MADE.clear()
            _MADE[settings] = making
    return EarlyS3Storage(making, settings, rest.rstrip("/")), rest.rstrip("/")


def _make(made: Future, text: str, kwargs: dict) -> None:
    try:
        from fsspec.core import url_to_fs

        # a file system of its own, made from the configuration botocore reads now (not one
        # fsspec kept from before a credential or endpoint changed)
        fs = url_to_fs(text, skip_instance_cache=True, **kwargs)[0]
        fs.connect()  # its client: botocore's service model, aiohttp's session
        made.set_result(fs)
    except BaseException as exc:  # noqa: BLE001 - raised where the file system is asked for
        made.set_exception(exc)


def settle() -> None:
    """Wait for a file system still being made (a run that ends before it needed s3fs: its
    thread must not import while the interpreter shuts down)."""
    with _LOCK:
        making = [m for m in _STARTED if not m.done()]
    for m in making:
        m.exception()


class EarlyS3Storage(FsspecStorage):
    """:class:`FsspecStorage` of an S3 store whose s3fs file system is still being made:
    obstore lists and reads, paths are named as s3fs names them, and anything else waits for
    the file system."""

    def __init__(self, making: Future, settings: tuple, root: str) -> None:
        super().__init__(None, "s3")
        self._making, self._settings, self._root = making, settings, root
        self._reader = rust_reads.reader_for(settings)
        self.pending_uploads = True  # s3fs's multipart uploads (pipeline.io.multipart)

    @property
    def fs(self):
        fs = self.__dict__.get("_fs")
        if fs is None:
            fs = self._made()
            fs.invalidate_cache()  # listings cached by an earlier command are stale
            self.__dict__["_fs"] = fs
        return fs

    @fs.setter
    def fs(self, value) -> None:
        self.__dict__["_fs"] = value

    def _made(self):
        try:
            fs = self._making.result()
        except (ImportError, ValueError, TypeError) as exc:  # as open_storage words them
            raise opening_error(exc, self.url(self._root)) from None
        if rust_reads.s3_settings(fs) != self._settings:
            raise StorageError("s3fs's client and botocore's configuration disagree on the "
                               "store's credentials, region or endpoint; nothing was written")
        return fs

    def verify(self) -> None:
        """Wait for the s3fs client and check its settings (what planning ends with: an
        input read through obstore alone, its output elsewhere, is checked too, before any
        chunk runs or a task is sent to a cluster)."""
        self.fs  # noqa: B018

    def __getstate__(self) -> dict:
        self.fs  # noqa: B018 - a task carries the file system itself
        state = super().__getstate__()
        state.pop("_making", None)
        return state

    def url(self, path: str) -> str:
        return path if "://" in path else f"s3://{path}"

    def _strip(self, path: str) -> str:
        for prefix in ("s3://", "s3a://"):
            if path.startswith(prefix):
                return path[len(prefix):].rstrip("/")
        return path.rstrip("/")
