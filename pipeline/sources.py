"""Input discovery, schema checks, and chunk planning for Parquet and CSV files.

A :class:`Chunk` is one unit of work: whole Parquet row groups packed up to the block size, a
byte range of a CSV file cut at line ends, or one whole compressed CSV file (streamed in
batches, never split: a compressed stream cannot be entered in the middle).
:meth:`ChunkReader.read_located` turns one into a ``pyarrow.Table`` and a :class:`RowOrigin`
that names the file and row of any of its rows; nothing here knows about transforms or models.
"""

from __future__ import annotations

import io
import itertools
import json
import lzma
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .errors import PipelineError, nearest_columns
from .storage import LOCAL, LocalStorage, Storage, is_local, open_storage

DEFAULT_BLOCKSIZE = 128 * 2**20
# On an object store a worker uploads each part whole after computing it: smaller chunks
# overlap the uploads with the next chunks' work and hold less memory (measured: 2M x 20
# s3 -> s3 in 3.0-3.2 s with 32 MiB chunks, 4.0-4.4 s with 128 MiB; peak 0.33 vs 1.0 GiB).
OBJECT_STORE_BLOCKSIZE = 32 * 2**20
_STREAM_BLOCK = 1 << 20  # the CSV parser's block on a compressed stream


def default_blocksize(*paths) -> int:
    """``--blocksize`` when not given: 128 MiB, or 32 MiB when INPUT or OUT is on an object
    store (a URL other than ``file://``)."""
    remote = any(p is not None and not is_local(p) for p in paths)
    return OBJECT_STORE_BLOCKSIZE if remote else DEFAULT_BLOCKSIZE


# Bytes of each CSV type-inference sample; three are taken per file (start, middle, end).
_CSV_SAMPLE = 1 << 16
# Bytes read at a time when counting the lines before an error (bounded memory).
_COUNT_BLOCK = 8 * 2**20
_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
# Compressed CSV: extension -> codec (pyarrow's names; xz is decoded by Python's lzma).
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".xz": "xz"}


@dataclass(frozen=True)
class Piece:
    """Part of one file: whole Parquet row groups, a CSV byte range cut at line ends, or a
    whole compressed CSV file."""

    path: str
    row_groups: tuple[int, ...] = ()
    byte_range: tuple[int, int] | None = None
    rows: int | None = None  # known up front for Parquet
    size: int = 0            # input bytes (Parquet: uncompressed)
    first_row: int = 0       # Parquet: rows of the file's earlier row groups
    compression: str | None = None


@dataclass(frozen=True)
class Chunk:
    """One unit of work: pieces of one or more consecutive files, up to the block size."""

    index: int
    fmt: str
    pieces: tuple[Piece, ...]

    @property
    def path(self) -> str:
        return self.pieces[0].path

    @property
    def source(self) -> str:
        """The input file, or the first of several small ones packed together."""
        n = len({p.path for p in self.pieces})
        return self.path if n == 1 else f"{self.path} (+{n - 1} more files)"

    @property
    def rows(self) -> int | None:
        if any(p.rows is None for p in self.pieces):
            return None
        return sum(p.rows for p in self.pieces)

    @property
    def streamed(self) -> bool:
        """A compressed CSV file: read as a stream of batches, never whole."""
        return self.pieces[0].compression is not None


def pack(pieces: list[Piece], fmt: str, blocksize: int) -> list[Chunk]:
    """Consecutive pieces packed into chunks of at most ``blocksize`` input bytes (a larger
    piece is a chunk of its own): a big file is many chunks, many small files are few. A
    compressed file is always a chunk of its own."""
    chunks: list[Chunk] = []
    cur: list[Piece] = []
    size = 0
    for piece in pieces:
        if cur and (size + piece.size > blocksize or piece.compression
                    or cur[-1].compression):
            chunks.append(Chunk(len(chunks), fmt, tuple(cur)))
            cur, size = [], 0
        last = cur[-1] if cur else None
        if last is not None and last.path == piece.path and fmt == "parquet":
            cur[-1] = Piece(last.path, last.row_groups + piece.row_groups,
                            rows=(last.rows or 0) + (piece.rows or 0),
                            size=last.size + piece.size, first_row=last.first_row)
        else:
            cur.append(piece)
        size += piece.size
    if cur:
        chunks.append(Chunk(len(chunks), fmt, tuple(cur)))
    return chunks


@dataclass(frozen=True)
class Span:
    """Consecutive rows of one file within a chunk's table."""

    path: str
    rows: int
    first_row: int | None = None   # the span's first row in its file, when known
    byte_start: int | None = None  # CSV: where the span starts, to count its row on demand


@dataclass(frozen=True)
class RowOrigin:
    """Where each row of a table read from a chunk comes from: file and row in that file.

    Rows are numbered as a user finds them: in a CSV file the data row counted from 1 after
    the header (the line number minus one); in a Parquet file the row index from 0.
    """

    spans: tuple[Span, ...]
    offset: int = 0
    storage: Storage = LOCAL

    def __str__(self) -> str:
        paths = list(dict.fromkeys(s.path for s in self.spans))
        return paths[0] if len(paths) == 1 else f"{paths[0]} (+{len(paths) - 1} more files)"

    def shifted(self, offset: int) -> RowOrigin:
        """The origin of the rows from ``offset`` on (a slice or batch of the table)."""
        return RowOrigin(self.spans, self.offset + offset, self.storage)

    def locate(self, index: int) -> tuple[str, int | None]:
        i = index + self.offset
        for s in self.spans:
            if i < s.rows:
                first = s.first_row
                if first is None and s.byte_start is not None:
                    first = _rows_before(s.path, s.byte_start, self.storage)
                return s.path, None if first is None else first + i
            i -= s.rows
        return self.spans[-1].path, None


def _rows_before(path: str, offset: int, storage: Storage = LOCAL) -> int:
    """Lines before byte ``offset`` of a CSV file (header included): the data row number, from
    1, of the row that starts there. Streamed in blocks, so memory stays bounded."""
    count = 0
    with storage.open(path, "rb") as fh:
        left = offset
        while left > 0:
            block = fh.read(min(_COUNT_BLOCK, left))
            if not block:
                break
            count += block.count(b"\n")
            left -= len(block)
    return count


@dataclass
class Source:
    """A planned input: its files, common schema and chunks."""

    paths: list[str]
    fmt: str
    schema: pa.Schema
    chunks: list[Chunk]
    csv_header: bytes | None = None
    csv_types: dict = field(default_factory=dict)
    storage: Storage = LOCAL

    def reader(self) -> ChunkReader:
        return ChunkReader(self.fmt, self.schema.names, self.csv_header, self.csv_types,
                           self.storage)

    @property
    def total_rows(self) -> int | None:
        if any(c.rows is None for c in self.chunks):
            return None
        return sum(c.rows for c in self.chunks)

    def fingerprint(self) -> list[dict]:
        """Paths, sizes and mtimes (object stores: ETags): what ``--resume`` checks to know the
        input is unchanged."""
        return [self.storage.fingerprint(p) for p in self.paths]

    def require_columns(self, columns, *, numeric: bool = True) -> None:
        """Every column exists; with ``numeric``, each is a float, integer or bool column
        (what a feature, a transformed column or a weight may be)."""
        for name in columns:
            if name not in self.schema.names:
                raise PipelineError("no such column in the input" +
                                    nearest_columns(name, self.schema.names),
                                    path=self.paths[0], column=name)
            typ = self.schema.field(name).type
            if numeric and not is_numeric_type(typ):
                raise PipelineError(f"column is not numeric ({typ})", path=self.paths[0],
                                    column=name)


def is_numeric_type(typ: pa.DataType) -> bool:
    """Float, integer or bool: converted exactly to float64 where used."""
    return pa.types.is_floating(typ) or pa.types.is_integer(typ) or pa.types.is_boolean(typ)


def input_format(path: str) -> tuple[str | None, str | None]:
    """The format of one input file and its compression: ``("csv", "gzip")`` for x.csv.gz."""
    name = path.lower()
    for ext, codec in COMPRESSIONS.items():
        if name.endswith(".csv" + ext):
            return "csv", codec
    return _FORMATS.get(os.path.splitext(name)[1]), None


def open_input(path: str, compression: str | None, storage: Storage = LOCAL):
    """A binary stream of the file's (decompressed) bytes."""
    if compression is None:
        return storage.open(path, "rb")
    if isinstance(storage, LocalStorage):
        raw = path
    else:
        raw = storage.open(path, "rb")
    if compression == "xz":
        return lzma.open(raw, "rb")
    return pa.input_stream(raw, compression=compression)


def discover(input_path: str | os.PathLike, storage_options: dict | None = None
             ) -> tuple[list[str], str, Storage]:
    """Files named by INPUT (a file, a folder, or a glob; a path or a URL) and their one
    format. A folder that is an output of this tool (its ``_SUCCESS`` lists parts) is read
    as its manifest says, not as a listing. Local paths are made absolute, so that workers
    of a cluster read the same files whatever their working folder."""
    text = os.fspath(input_path)
    storage, inner = open_storage(text, storage_options)
    if isinstance(storage, LocalStorage):  # a path, or a file:// URL's path
        inner = text = os.path.abspath(inner) if not any(c in inner for c in "*?[") else inner
    if any(ch in inner for ch in "*?["):
        paths = [storage.url(p) for p in storage.glob(inner)]
        if not paths:
            raise PipelineError("no file matches this pattern", path=text)
    else:
        # one listing answers everything: a folder's files, or the file itself
        listed = storage.find(inner)
        if not listed or listed == [inner]:
            if not storage.exists(inner):
                raise PipelineError("no such file or folder", path=text)
            if not listed and storage.isdir(inner):
                raise PipelineError("folder holds no input files (names starting with _ or "
                                    ". are not input)", path=text)
            paths = [storage.url(inner)]
        else:
            manifest = storage.join(inner, "_SUCCESS")
            parts = _manifest_parts(storage, inner) if manifest in listed else None
            if parts is not None:
                paths = [storage.url(p) for p in parts]
            else:
                root = storage.url(inner).rstrip("/") + "/"
                paths = [p for p in map(storage.url, listed) if not any(
                    part.startswith(("_", ".")) for part in p[len(root):].split("/"))]
            if not paths:
                raise PipelineError("folder holds no input files (names starting with _ or "
                                    ". are not input)", path=text)
    paths = [p for p in paths if not os.path.basename(p).startswith(("_", "."))]
    if not paths:
        raise PipelineError("no input files (names starting with _ or . are not input)", path=text)
    fmts = set()
    for p in paths:
        fmt, _ = input_format(p)
        if fmt is None:
            raise PipelineError("not a .parquet or .csv file (.csv.gz, .csv.bz2, .csv.zst and "
                                ".csv.xz are CSV)", path=p)
        fmts.add(fmt)
    if len(fmts) > 1:
        raise PipelineError("input mixes Parquet and CSV files; use one format per input",
                            path=text)
    if isinstance(storage, LocalStorage):
        paths = [os.path.abspath(p) for p in paths]
    return paths, fmts.pop(), storage


def _manifest_parts(storage: Storage, folder: str) -> list[str] | None:
    """The parts an output folder's ``_SUCCESS`` lists, or None when it is not one."""
    success = storage.join(folder, "_SUCCESS")
    try:
        parts = json.loads(storage.read_text(success))["parts"]
        return [storage.join(folder, p["part"]) for p in parts]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def plan(input_path, *, blocksize: int | None = None, dtype: dict | None = None,
         storage_options: dict | None = None) -> Source:
    """Discover INPUT, check that every file has the same schema, and cut it into chunks.

    ``dtype`` maps CSV column names to types (``pyarrow`` types or names such as ``"int64"``)
    that replace the inferred ones.
    """
    blocksize = blocksize or default_blocksize(input_path)
    paths, fmt, storage = discover(input_path, storage_options)
    if fmt == "parquet":
        source = _plan_parquet(paths, blocksize, storage)
    else:
        source = _plan_csv(paths, blocksize, parse_dtypes(dtype), storage)
    source.storage = storage
    return source


def parse_dtypes(dtype) -> dict[str, pa.DataType]:
    """``{"col": "int64"}`` or ``["col=int64", ...]`` as ``{"col": pa.int64()}``."""
    if not dtype:
        return {}
    items = dtype.items() if isinstance(dtype, dict) else []
    if not isinstance(dtype, dict):
        pairs = []
        for text in [dtype] if isinstance(dtype, str) else dtype:
            name, sep, typ = str(text).partition("=")
            if not sep or not name or not typ:
                raise PipelineError(f"dtype must be COL=TYPE (e.g. id=int64); got {text!r}",
                                    params=("dtype",))
            pairs.append((name, typ))
        items = pairs
    out = {}
    for name, typ in items:
        if isinstance(typ, pa.DataType):
            out[name] = typ
            continue
        try:
            out[name] = pa.type_for_alias(str(typ).strip())
        except (ValueError, KeyError):
            raise PipelineError(f"dtype {name}={typ}: unknown type (use int64, float64, "
                                "float32, bool, string, ...)", column=name,
                                params=("dtype",)) from None
    return out


# Footers read while planning, by path: a chunk read in this process opens its file with
# them, so a remote file's footer is fetched once (a Dask worker fetches its own).
_FOOTERS: dict[str, tuple[pq.FileMetaData, int]] = {}
_FOOTER_GUESS = 1 << 16


def _read_footer(storage: Storage, path: str):
    try:
        if isinstance(storage, LocalStorage):
            return pq.read_metadata(path)
        # one ranged GET of the file's tail holds the footer (a second one if it is larger)
        size = storage.size(path)
        tail = storage.read_range(path, max(0, size - _FOOTER_GUESS), size)
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


def _plan_parquet(paths: list[str], blocksize: int, storage: Storage = LOCAL) -> Source:
    pieces: list[Piece] = []
    schema = None
    if isinstance(storage, LocalStorage):
        footers = (_read_footer(storage, p) for p in paths)
    else:  # one footer read per file, fetched concurrently
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(16, len(paths))) as pool:
            footers = list(pool.map(lambda p: _read_footer(storage, p), paths))
    for path, meta in zip(paths, footers, strict=True):
        file_schema = meta.schema.to_arrow_schema()
        file_schema = file_schema.remove_metadata()
        if schema is None:
            schema = file_schema
        elif not file_schema.equals(schema):
            raise PipelineError(f"schema differs from {paths[0]}: "
                                f"{_schema_diff(schema, file_schema)}", path=path)
        before = 0
        for i in range(meta.num_row_groups):
            rg = meta.row_group(i)
            pieces.append(Piece(path, (i,), rows=rg.num_rows, size=rg.total_byte_size,
                                first_row=before))
            before += rg.num_rows
        if meta.num_row_groups == 0:
            pieces.append(Piece(path, (), rows=0, size=0))
    return Source(paths, "parquet", schema, pack(pieces, "parquet", blocksize))


def _plan_csv(paths: list[str], blocksize: int, dtype: dict[str, pa.DataType],
              storage: Storage = LOCAL) -> Source:
    header = None
    types: dict[str, pa.DataType | None] = {}
    pieces: list[Piece] = []
    for path in paths:
        compression = input_format(path)[1]
        try:
            with open_input(path, compression, storage) as f:
                if compression is not None:  # a stream: no readline, no seek
                    head = f.read(4 * _CSV_SAMPLE)
                    first = head[: head.find(b"\n") + 1] if b"\n" in head else head
                else:
                    first = f.readline()
                if not first.strip():
                    raise PipelineError("CSV file has no header line", path=path)
                if header is None:
                    header = first
                elif first.rstrip(b"\r\n") != header.rstrip(b"\r\n"):
                    raise PipelineError(f"CSV header differs from {paths[0]}: "
                                        f"{first.decode(errors='replace').strip()!r}", path=path)
                if compression is not None:
                    rest = head[len(first):]
                    samples = [_whole_lines(rest, at_end=len(head) < 4 * _CSV_SAMPLE)]
                    size = storage.size(path)
                    pieces.append(Piece(path, size=size, compression=compression))
                else:
                    size = storage.size(path)
                    samples = _csv_samples(f, len(first), size)
                    pieces.extend(_csv_pieces(f, path, len(first), size, blocksize))
        except (OSError, EOFError, lzma.LZMAError, pa.ArrowException) as exc:
            raise PipelineError(f"cannot read ({_short(exc)})", path=path) from None
        for sample in samples:
            for f_ in _csv_sample_schema(path, header + sample):
                types[f_.name] = _merge_types(types.get(f_.name), f_.type)
    names = pacsv.read_csv(io.BytesIO(header)).column_names
    for name in dtype:
        if name not in names:
            raise PipelineError("dtype names no column of the input" +
                                nearest_columns(name, names), path=paths[0],
                                column=name, params=("dtype",))
    fields = []
    for name in names:
        typ = types.get(name)
        if name in dtype:
            typ = dtype[name]
        elif typ is None or pa.types.is_null(typ):
            typ = pa.float64()
        fields.append(pa.field(name, typ))
    schema = pa.schema(fields)
    return Source(paths, "csv", schema, pack(pieces, "csv", blocksize), csv_header=header,
                  csv_types={f.name: f.type for f in schema})


def _csv_pieces(f, path: str, start: int, size: int, blocksize: int) -> list[Piece]:
    pieces = []
    while start < size:
        stop = min(start + blocksize, size)
        if stop < size:
            f.seek(stop)
            rest = f.readline()  # cut after the next line end
            stop += len(rest)
        pieces.append(Piece(path, byte_range=(start, stop), size=stop - start))
        start = stop
    return pieces


def _csv_samples(f, start: int, size: int) -> list[bytes]:
    """Whole-line samples at the start, the middle and the end of the file's data."""
    if size - start <= 3 * _CSV_SAMPLE:
        f.seek(start)
        return [f.read()]
    out = []
    for at in (start, (start + size) // 2, size - _CSV_SAMPLE):
        f.seek(at)
        data = f.read(_CSV_SAMPLE)
        if at > start:  # begin after the line end that the sample's first byte follows
            f.seek(at - 1)
            data = (f.read(1) + data)
            data = data[data.find(b"\n") + 1:] if b"\n" in data else b""
        out.append(_whole_lines(data, at_end=at + _CSV_SAMPLE >= size))
    return out


def _whole_lines(data: bytes, *, at_end: bool) -> bytes:
    if at_end or b"\n" not in data:
        return data
    return data[: data.rfind(b"\n") + 1]


def _csv_sample_schema(path: str, sample: bytes) -> pa.Schema:
    try:
        return pacsv.read_csv(io.BytesIO(sample), convert_options=_convert_options()).schema
    except pa.ArrowInvalid as exc:
        raise _csv_error(path, exc, None, None) from None


def _merge_types(a: pa.DataType | None, b: pa.DataType) -> pa.DataType:
    """The type of a column that two samples inferred differently: int and float make
    float64; a text sample gives way to the other's type (its odd value is then reported, with
    the ``--dtype`` that reads it, if the command uses the column); else string."""
    if a is None or pa.types.is_null(a):
        return b
    if pa.types.is_null(b) or a == b:
        return a
    if pa.types.is_string(a) or pa.types.is_string(b):
        return b if pa.types.is_string(a) else a
    numeric = (pa.types.is_integer, pa.types.is_floating)
    if any(t(a) for t in numeric) and any(t(b) for t in numeric):
        return pa.float64()
    return pa.string()


def _convert_options(**kw) -> pacsv.ConvertOptions:
    return pacsv.ConvertOptions(strings_can_be_null=True, **kw)


@dataclass(frozen=True)
class ChunkReader:
    """What a worker needs to read any chunk of one Source (small, picklable)."""

    fmt: str
    names: list[str]
    csv_header: bytes | None = None
    csv_types: dict = field(default_factory=dict)
    storage: Storage = LOCAL

    def read(self, chunk: Chunk, columns: list[str] | None = None,
             numeric: tuple[str, ...] = (), used: tuple[str, ...] = ()) -> pa.Table:
        return self.read_located(chunk, columns, numeric, used)[0]

    def read_located(self, chunk: Chunk, columns: list[str] | None = None,
                     numeric: tuple[str, ...] = (), used: tuple[str, ...] = ()
                     ) -> tuple[pa.Table, RowOrigin]:
        """The chunk as one Table and where its rows come from.

        For CSV, ``numeric`` columns are parsed as float64; a column that is neither
        ``numeric`` nor ``used`` and holds a value its type cannot hold is read as text.
        """
        if chunk.streamed:
            parts = list(self.stream(chunk, columns, numeric, used))
            tables = [t for t, _ in parts]
            return pa.concat_tables(tables), RowOrigin(
                tuple(s for _, o in parts for s in o.spans), storage=self.storage)
        tables, spans = [], []
        for p in chunk.pieces:
            t = _read_piece(self, chunk.fmt, p, columns, numeric, used)
            tables.append(t)
            if chunk.fmt == "parquet":
                spans.append(Span(p.path, t.num_rows, first_row=p.first_row))
            else:
                spans.append(Span(p.path, t.num_rows, byte_start=p.byte_range[0]))
        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        return table, RowOrigin(tuple(spans), storage=self.storage)

    def stream(self, chunk: Chunk, columns: list[str] | None = None,
               numeric: tuple[str, ...] = (), used: tuple[str, ...] = (),
               batch_bytes: int = DEFAULT_BLOCKSIZE) -> Iterator[tuple[pa.Table, RowOrigin]]:
        """A chunk as Tables of about ``batch_bytes`` input bytes each (a compressed CSV file,
        decoded as it is read); any other chunk as one Table."""
        if not chunk.streamed:
            yield self.read_located(chunk, columns, numeric, used)
            return
        piece = chunk.pieces[0]
        done = 0
        opts = _convert_options(column_types=_column_types(self.csv_types, numeric),
                                include_columns=columns)
        try:
            with open_input(piece.path, piece.compression, self.storage) as fh:
                # small parse blocks (pyarrow's default, 1 MiB) grouped into tables of about
                # batch_bytes: measured 1.4 s per 383 MiB gzip file, against 3.1-3.5 s when
                # the parser's own blocks were batch_bytes (128 MiB) large
                reader = pacsv.open_csv(fh, read_options=pacsv.ReadOptions(
                    use_threads=True, block_size=max(1 << 12, min(_STREAM_BLOCK, batch_bytes))),
                    convert_options=opts)
                pending, size = [], 0
                for batch in itertools.chain(reader, [None]):
                    if batch is not None:
                        pending.append(batch)
                        size += batch.nbytes
                    if pending and (batch is None or size >= batch_bytes):
                        table = pa.Table.from_batches(pending)
                        yield table, RowOrigin((Span(piece.path, table.num_rows, done + 1),),
                                               storage=self.storage)
                        done += table.num_rows
                        pending, size = [], 0
                if done == 0:  # a header and no rows: still one (empty) table
                    yield reader.schema.empty_table(), RowOrigin((Span(piece.path, 0, 1),),
                                                                 storage=self.storage)
        except pa.ArrowInvalid as exc:
            # the stream's errors carry no row number: name the rows read so far
            err = _csv_error(piece.path, exc, self, None, numeric)
            raise PipelineError(f"{err.detail} (after data row {done})", path=piece.path,
                                column=err.column) from None
        except (OSError, EOFError, lzma.LZMAError) as exc:
            raise PipelineError(f"cannot read ({_short(exc)}){_on_worker()}",
                                path=piece.path) from None


def _column_types(types: dict, numeric) -> dict:
    """A stream cannot re-read a batch: integer columns computed on parse as float64."""
    types = dict(types)
    for name in numeric:
        if name in types and pa.types.is_integer(types[name]):
            types[name] = pa.float64()
    return types


def _read_piece(source, fmt: str, piece: Piece, columns, numeric, used=()) -> pa.Table:
    try:
        if fmt == "parquet":
            if isinstance(source.storage, LocalStorage):
                f = pq.ParquetFile(piece.path, memory_map=True)
            else:  # the footer from planning where this process planned; reads coalesced
                meta, size = _FOOTERS.get(piece.path, (None, None))
                f = pq.ParquetFile(source.storage.open_parquet(piece.path, size=size),
                                   metadata=meta, pre_buffer=True)
            if not piece.row_groups:
                return f.schema_arrow.empty_table().select(columns or f.schema_arrow.names)
            # Arrow's own threads decode the columns: measured 40% less CPU per chunk than
            # use_threads=False (and pyarrow.dataset would import pandas, 0.2 s).
            return f.read_row_groups(list(piece.row_groups), columns=columns, use_threads=True)
        start, stop = piece.byte_range
        body = source.storage.read_range(piece.path, start, stop)
        # parsed with the header's names and no header line: no copy of the body to prepend
        # it, and pyarrow's threads parse the body's blocks (measured: 0.30 s -> 0.12 s for
        # 96 MiB of floats, both cores free)
        data = memoryview(body)
        # integer columns computed on stay integers here (exact, checked against 2**53 when
        # converted); one that shows a decimal in this chunk is read again as float64
        types = dict(source.csv_types)
        threads = True
        while True:
            try:
                return pacsv.read_csv(
                    pa.BufferReader(data), read_options=pacsv.ReadOptions(
                        use_threads=threads, column_names=source.names),
                    convert_options=_convert_options(column_types=types,
                                                     include_columns=columns))
            except pa.ArrowInvalid as exc:
                if threads:  # threaded errors carry no row number: parse again, one thread
                    threads = False
                    continue
                name = _csv_error_column(exc, source.names)
                if name in numeric and pa.types.is_integer(types[name]):
                    types[name] = pa.float64()
                elif name is None or name in numeric or name in used or \
                        types.get(name) == pa.string():
                    raise
                else:  # a column the command does not use never fails the job: text
                    types[name] = pa.string()
    except pa.ArrowInvalid as exc:
        if fmt == "csv":
            raise _csv_error(piece.path, exc, source, piece, numeric) from None
        raise PipelineError(f"cannot read row groups {list(piece.row_groups)} "
                            f"({_short(exc)})", path=piece.path) from None
    except OSError as exc:
        what = "no such file" if isinstance(exc, FileNotFoundError) else _short(exc)
        raise PipelineError(f"cannot read ({what}){_on_worker()}", path=piece.path) from None


_CSV_COLUMN = re.compile(r"In CSV column #(\d+)")
_CSV_ROW = re.compile(r"Row #(\d+)")
_CSV_CONVERSION = re.compile(r"conversion error to (\S+): invalid value '(.*)'")


def _csv_error_column(exc: Exception, names: list[str]) -> str | None:
    m = _CSV_COLUMN.search(str(exc))
    if m and int(m.group(1)) < len(names):
        return names[int(m.group(1))]
    return None


def _csv_error(path: str, exc: Exception, source, piece: Piece | None, numeric=()):
    text = str(exc)
    column = row = None
    if source is not None:
        names = source.names if isinstance(source, ChunkReader) else source.schema.names
        column = _csv_error_column(exc, names)
    m = _CSV_ROW.search(text)
    if m and piece is not None and piece.byte_range is not None:
        storage = getattr(source, "storage", LOCAL)
        # pyarrow counts the parsed lines from 1 (the body: no header line); the data row of
        # the file counts from 1 after the header
        row = _rows_before(path, piece.byte_range[0], storage) - 1 + int(m.group(1))
    m = _CSV_CONVERSION.search(text)
    if m and column is not None:
        typ, value = m.group(1), m.group(2)
        if column in numeric and typ in ("double", "float"):
            return PipelineError(f"value {value!r} is not a number", path=path,
                                 column=column, row=row)
        try:
            float(value)
            fix = "float64"
        except ValueError:
            fix = "string"
        return PipelineError(f"value {value!r} is not {typ}; set the column's type with "
                             f"dtype {column}={fix}", path=path, column=column, row=row,
                             params=("dtype",))
    detail = text.split(": ", 1)[-1] if "CSV conversion error" in text else text
    detail = re.sub(r"^(In CSV column #\d+: )?(Row #\d+: )?", "", detail)
    return PipelineError(f"bad CSV ({_short(detail)})", path=path, column=column, row=row)


def _on_worker() -> str:
    """`` on worker ADDRESS`` when this runs on a Dask worker (which may not see a path the
    client sees), else nothing."""
    if "distributed" not in sys.modules:
        return ""
    from distributed import get_worker

    try:
        return f" on worker {get_worker().address}"
    except ValueError:
        return ""


def _short(exc) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


def _schema_diff(a: pa.Schema, b: pa.Schema) -> str:
    for name in a.names:
        if name not in b.names:
            return f"column {name!r} is missing"
        if a.field(name).type != b.field(name).type:
            return f"column {name!r} is {b.field(name).type}, not {a.field(name).type}"
    extra = [n for n in b.names if n not in a.names]
    if extra:
        return f"extra column {extra[0]!r}"
    return "columns are in another order"
