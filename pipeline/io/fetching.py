"""A chunk's bytes on an object store: fetched together when it runs (at most
``io_concurrency`` requests in flight), or ahead while it waits for a thread; bytes kept from
planning are taken, not fetched again. A local disk is read where the chunk runs."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from ..errors import PipelineError
from . import bodies
from .chunking import Chunk, Piece
from .footers import SMALL_FILE
from .formats import _on_worker, _short
from .local_storage import LocalStorage
from .storage import Storage

# chunks whose bytes are fetched ahead at once, per process: two block sizes at most
AHEAD = 2
_AHEAD: dict = {}
_WAITING: dict = {}  # chunks asked ahead while AHEAD were held: (storage, chunk) by key
_LOCK = threading.Lock()
_POOL: list[ThreadPoolExecutor] = []


def fetch_ahead(storage: Storage, chunk: Chunk) -> None:
    """Fetch ``chunk``'s bytes ahead (a chunk waiting for a thread while others compute):
    now, or, while ``AHEAD`` chunks' bytes are held already, as soon as a chunk takes its
    own (in the order asked); :func:`chunk_bytes` takes them when it runs."""
    if isinstance(storage, LocalStorage) or chunk.streamed:
        return
    key = _chunk_key(chunk)
    with _LOCK:
        if key in _AHEAD or key in _WAITING:
            return
        _WAITING[key] = (storage, chunk)
        _start_waiting()


def _start_waiting() -> None:
    """(under _LOCK) Start the fetches asked ahead while fewer than ``AHEAD`` are held."""
    while _WAITING and len(_AHEAD) < AHEAD:
        key = next(iter(_WAITING))
        storage, chunk = _WAITING.pop(key)
        if not _POOL:
            _POOL.append(ThreadPoolExecutor(AHEAD, thread_name_prefix="pipeline-ahead"))
        _AHEAD[key] = _POOL[0].submit(_fetch, storage, chunk)


def chunk_bytes(storage: Storage, chunk: Chunk):
    """The chunk's bytes by :func:`piece_key` (``get(key)``; ``close()`` when done): fetched
    ahead, or fetched now, each piece's bytes given as soon as they arrive so that the first
    pieces are parsed while the others download (a failed fetch ahead is tried again here,
    where its error is reported); nothing for a local disk."""
    key = _chunk_key(chunk)
    with _LOCK:
        ahead = _AHEAD.pop(key, None)
        _WAITING.pop(key, None)  # asked ahead but not started: fetched here instead
        _start_waiting()
    if ahead is not None and ahead.cancel():  # queued behind others: fetched here, now
        ahead = None
    if ahead is not None:
        try:
            return _Fetched(*ahead.result())
        except Exception:  # noqa: BLE001 - fetched again: the error comes from there
            pass
    return _start(storage, chunk)


def drop_ahead() -> None:
    """Give up bytes fetched ahead for chunks that did not run (a failed run's)."""
    with _LOCK:
        _AHEAD.clear()
        _WAITING.clear()


def piece_key(fmt: str, piece: Piece):
    """What a piece's bytes are filed under: a Parquet file's path, a CSV piece's path and
    byte range."""
    return piece.path if fmt == "parquet" else (piece.path, piece.byte_range)


def _chunk_key(chunk: Chunk) -> tuple:
    return tuple((p.path, p.row_groups, p.byte_range) for p in chunk.pieces)


class _Fetched:
    """A chunk's bytes by piece key: ``got`` at hand, the others arriving in the pieces'
    order from ``arriving`` (key, bytes) as the reader asks for them."""

    def __init__(self, got: dict, parsed: dict | None = None, keys: list | None = None,
                 arriving=None) -> None:
        self.got, self.keys, self.arriving = got, set(keys or ()), arriving
        self.parsed = parsed or {}  # CSV pieces' tables kept from planning, by key

    def get(self, key):
        while key in self.keys and key not in self.got:
            k, body = next(self.arriving)
            self.got[k] = body
        return self.got.get(key)

    def all(self) -> dict:
        """Every piece's bytes (the first failure, in the pieces' order, raised)."""
        for k in self.keys:
            self.get(k)
        return self.got

    def close(self) -> None:
        """The requests not yet started are not made (a chunk that failed midway)."""
        if self.arriving is not None:
            self.arriving.close()


def _fetch(storage: Storage, chunk: Chunk) -> tuple[dict, dict]:
    """The chunk's bytes, all of them, and its kept tables (what a fetch ahead keeps)."""
    fetched = _start(storage, chunk)
    try:
        return fetched.all(), fetched.parsed
    finally:
        fetched.close()


def _start(storage: Storage, chunk: Chunk) -> _Fetched:
    """Each small Parquet file whole in one GET, each CSV piece's byte range, requested
    concurrently in the pieces' order (the bytes held are the chunk's, which its block size
    bounds; ``io_concurrency`` bounds the requests in flight)."""
    if isinstance(storage, LocalStorage):
        return _Fetched({})
    if chunk.fmt == "parquet":
        wanted = {p.path: (p.path, 0, p.file_size) for p in chunk.pieces
                  if 0 < p.file_size <= SMALL_FILE}
    else:
        wanted = {(p.path, p.byte_range): (p.path, *p.byte_range) for p in chunk.pieces}
    got, parsed, todo = {}, {}, []
    for key, request in wanted.items():
        kept = bodies.take(request[0])
        if kept is None:
            todo.append(key)
            continue
        # a CSV piece's range of the kept bytes: a view, not a copy (150 files of 200 KiB:
        # 20 ms of CPU, holding the GIL, for copies)
        got[key] = kept.body if chunk.fmt == "parquet" else \
            memoryview(kept.body)[request[1]:request[2]]
        if kept.table is not None:
            parsed[key] = kept.table
    if not todo:
        return _Fetched(got, parsed)
    where = _on_worker()  # (in this thread: the worker's task's)
    return _Fetched(got, parsed, todo, storage.imap(
        lambda k: (k, _get(storage, *wanted[k], where)), todo, rank=chunk.index))


def _get(storage: Storage, path: str, start: int, stop: int, where: str) -> bytes:
    """One object's bytes; a failure is the error naming that object."""
    try:
        return storage.read_range(path, start, stop)
    except OSError as exc:
        what = "no such file" if isinstance(exc, FileNotFoundError) else _short(exc)
        raise PipelineError(f"cannot read ({what}){where}", path=path) from None
