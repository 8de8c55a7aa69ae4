"""Planning Parquet input: every file's footer (many in flight on an object store), its row
groups packed into chunks, one schema across the files."""

from __future__ import annotations

from .chunking import Piece, pack
from .footers import _FOOTERS, SMALL_FILE, _read_footer
from .formats import parquet_schema
from .local_storage import LocalStorage
from .reading import Source
from .storage import LOCAL, Storage

# planned from the listing: at least this many small files on an object store
LISTED_FILES = 16


def _plan_parquet(paths: list[str], blocksize: int, storage: Storage = LOCAL) -> Source:
    if (not isinstance(storage, LocalStorage) and len(paths) >= LISTED_FILES
            and all(0 < storage.size(p) <= SMALL_FILE for p in paths)):
        return _plan_listed(paths, blocksize, storage)
    pieces: list[Piece] = []
    schema = None
    if isinstance(storage, LocalStorage):
        footers = (_read_footer(storage, p) for p in paths)
    else:  # one footer read per file, fetched concurrently
        footers = storage.map(lambda p: _read_footer(storage, p), paths)
    for path, meta in zip(paths, footers, strict=True):
        file_size = 0 if isinstance(storage, LocalStorage) else _FOOTERS[path][1]
        file_schema = parquet_schema(meta.schema.to_arrow_schema(), path,
                                     None if schema is None else (schema, paths[0]))
        schema = schema or file_schema
        before = 0
        for i in range(meta.num_row_groups):
            rg = meta.row_group(i)
            pieces.append(Piece(path, (i,), rows=rg.num_rows, size=rg.total_byte_size,
                                first_row=before, file_size=file_size))
            before += rg.num_rows
        if meta.num_row_groups == 0:
            pieces.append(Piece(path, (), rows=0, size=0))
    return Source(paths, "parquet", schema, pack(pieces, "parquet", blocksize))


def _plan_listed(paths: list[str], blocksize: int, storage: Storage) -> Source:
    """Many small files on an object store, planned from the listing and the first file's
    footer: each file whole, packed by its listed size times the first file's ratio of
    decoded to stored bytes. A file's own footer comes with its bytes when its chunk runs
    (one GET per file in all, and the chunks' GETs overlap the computing of others); a
    schema that differs from the first file's is an error then, naming the file, before
    anything is committed."""
    meta = _read_footer(storage, paths[0])
    schema = parquet_schema(meta.schema.to_arrow_schema(), paths[0])
    sizes = [storage.size(p) for p in paths]
    decoded = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    ratio = max(1.0, decoded / sizes[0])
    pieces = [Piece(p, None, size=int(n * ratio), file_size=n)
              for p, n in zip(paths, sizes, strict=True)]
    return Source(paths, "parquet", schema, pack(pieces, "parquet", blocksize))
