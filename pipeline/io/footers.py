"""Parquet footers, read once per file and kept for the chunk reads: one suffix GET on an
object store (a second only for a footer larger than the guess); a small file is read whole."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import PipelineError
from . import bodies
from .formats import _short
from .local_storage import LocalStorage
from .storage import Storage

# Footers read while planning, by path: a chunk read in this process opens its file with
# them, so a remote file's footer is fetched once (a Dask worker fetches its own).
_FOOTERS: dict[str, tuple[pq.FileMetaData, int]] = {}


_FOOTER_GUESS = 1 << 16


# an object-store Parquet file up to this size is read whole in one GET when its chunk runs,
# and parsed from memory (a larger one: the column chunks its row groups need, coalesced)
SMALL_FILE = 8 << 20


def _read_footer(storage: Storage, path: str):
    try:
        if isinstance(storage, LocalStorage):
            return pq.read_metadata(path)
        # one ranged GET of the file's tail holds the footer (a second one if it is larger);
        # the size comes from the listing (no HEAD)
        size = storage.size(path)
        whole = bodies.reserve(size)  # a small file: fetched whole by the same GET, kept
        try:
            tail = storage.read_range(path, 0 if whole else max(0, size - _FOOTER_GUESS), size)
        except BaseException:
            if whole:
                bodies.release(size)
            raise
        if whole:
            bodies.keep(path, tail, size)
        if len(tail) < 12 or tail[-4:] != b"PAR1":
            raise PipelineError("not a readable Parquet file (no Parquet footer)", path=path)
        need = int.from_bytes(tail[-8:-4], "little") + 8
        if need > len(tail):
            tail = storage.read_range(path, max(0, size - need), size)
        meta = pq.read_metadata(pa.BufferReader(tail[-need:]))
        _FOOTERS[path] = (meta, size)
        return meta
    except (pa.ArrowException, OSError) as exc:
        raise PipelineError(f"not a readable Parquet file ({_short(exc)})", path=path) from None
