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
# Bytes read at a time when counting the lines before an error, or scanning for the record
# ends outside quotes (bounded memory).
_COUNT_BLOCK = 8 * 2**20
_BOM = b"\xef\xbb\xbf"
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
    line_end: bytes = b"\n"  # CSV: the byte that ends a line (b"\r" in a CR-only file)
    file_size: int = 0       # Parquet on an object store: the whole file's bytes


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
    line_end: bytes = b"\n"


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
                    first = _rows_before(s.path, s.byte_start, self.storage, s.line_end)
                return s.path, None if first is None else first + i
            i -= s.rows
        return self.spans[-1].path, None


def _rows_before(path: str, offset: int, storage: Storage = LOCAL, line_end: bytes = b"\n"
                 ) -> int:
    """Lines before byte ``offset`` of a CSV file (header included): the data row number, from
    1, of the row that starts there. Streamed in blocks, so memory stays bounded."""
    count = 0
    with storage.open(path, "rb") as fh:
        left = offset
        while left > 0:
            block = fh.read(min(_COUNT_BLOCK, left))
            if not block:
                break
            count += block.count(line_end)
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
    null_values: tuple[str, ...] = ()

    def reader(self) -> ChunkReader:
        return ChunkReader(self.fmt, self.schema.names, self.csv_header, self.csv_types,
                           self.storage, self.null_values)

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


def decoded_schema(schema: pa.Schema) -> pa.Schema:
    """The schema with each dictionary-encoded column (a pandas or Polars categorical) as
    the type of its values: such a column is what its values are, in every command."""
    if not any(pa.types.is_dictionary(f.type) for f in schema):
        return schema
    return pa.schema([f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f
                      for f in schema], metadata=schema.metadata)


def decode_dictionaries(table: pa.Table) -> pa.Table:
    """``table`` with its dictionary-encoded columns decoded (see :func:`decoded_schema`)."""
    schema = decoded_schema(table.schema)
    return table if schema is table.schema else table.cast(schema)


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
            if parts is None and _incomplete_output(storage, inner, listed):
                raise PipelineError("incomplete output (no _SUCCESS): finish it with --resume",
                                    path=text)
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


def _incomplete_output(storage: Storage, folder: str, listed: list[str]) -> bool:
    """An output folder of this tool that has not committed: its ``_job.json`` (local
    disk) or an attempt under ``_pending/`` (object store), no ``_SUCCESS``, and no data
    file but its parts (``part-*``)."""
    pending = storage.join(folder, "_pending") + "/"
    if storage.join(folder, "_job.json") not in listed and not any(
            p.startswith(pending) for p in listed):
        return False
    names = [p[len(folder):].lstrip("/") for p in listed]
    return all(n.startswith(("_", ".", "part-")) for n in names if "/" not in n)


def _manifest_parts(storage: Storage, folder: str) -> list[str] | None:
    """The parts an output folder's ``_SUCCESS`` lists, or None when it is not one."""
    success = storage.join(folder, "_SUCCESS")
    try:
        parts = json.loads(storage.read_text(success))["parts"]
        return [storage.join(folder, p["part"]) for p in parts]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def plan(input_path, *, blocksize: int | None = None, dtype: dict | None = None,
         storage_options: dict | None = None, null_values=None,
         io_concurrency: int | None = None) -> Source:
    """Discover INPUT, check that every file has the same schema, and cut it into chunks.

    ``dtype`` maps CSV column names to types (``pyarrow`` types or names such as ``"int64"``)
    that replace the inferred ones. ``null_values`` are the CSV texts read as null besides
    the empty cell (``"NA,N/A"`` or a list); by default only empty cells are null.
    """
    blocksize = blocksize or default_blocksize(input_path)
    paths, fmt, storage = discover(input_path, storage_options)
    if io_concurrency and not isinstance(storage, LocalStorage):
        storage.io_concurrency = io_concurrency
    if fmt == "parquet":
        source = _plan_parquet(paths, blocksize, storage)
    else:
        source = _plan_csv(paths, blocksize, parse_dtypes(dtype), storage,
                           parse_null_values(null_values))
    source.storage = storage
    return source


def parse_null_values(null_values) -> tuple[str, ...]:
    """``"NA,N/A"`` or ``["NA", "N/A"]`` as ``("NA", "N/A")``: the texts read as null besides
    the empty cell."""
    if not null_values:
        return ()
    items = null_values.split(",") if isinstance(null_values, str) else null_values
    if isinstance(items, (bytes, dict)) or not all(isinstance(v, str) for v in items):
        raise PipelineError("null_values must be text, e.g. \"NA,N/A\"",
                            params=("null_values",))
    return tuple(dict.fromkeys(v for v in items if v))


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

        with ThreadPoolExecutor(max(1, min(storage.io_concurrency, len(paths)))) as pool:
            footers = list(pool.map(lambda p: _read_footer(storage, p), paths))
    for path, meta in zip(paths, footers, strict=True):
        file_size = 0 if isinstance(storage, LocalStorage) else _FOOTERS[path][1]
        file_schema = meta.schema.to_arrow_schema()
        file_schema = decoded_schema(file_schema.remove_metadata())
        _require_unique(file_schema.names, path)
        if schema is None:
            schema = file_schema
        elif not file_schema.equals(schema):
            raise PipelineError(f"schema differs from {paths[0]}: "
                                f"{_schema_diff(schema, file_schema)}", path=path)
        before = 0
        for i in range(meta.num_row_groups):
            rg = meta.row_group(i)
            pieces.append(Piece(path, (i,), rows=rg.num_rows, size=rg.total_byte_size,
                                first_row=before, file_size=file_size))
            before += rg.num_rows
        if meta.num_row_groups == 0:
            pieces.append(Piece(path, (), rows=0, size=0))
    return Source(paths, "parquet", schema, pack(pieces, "parquet", blocksize))


def _plan_csv(paths: list[str], blocksize: int, dtype: dict[str, pa.DataType],
              storage: Storage = LOCAL, null_values: tuple[str, ...] = ()) -> Source:
    header = None
    types: dict[str, pa.DataType | None] = {}
    pieces: list[Piece] = []
    for path in paths:
        compression = input_format(path)[1]
        try:
            with open_input(path, compression, storage) as f:
                head = f.read(4 * _CSV_SAMPLE if compression else _CSV_SAMPLE)
                # a BOM is stripped from each file's header; the line end is the file's own
                bom = len(_BOM) if head.startswith(_BOM) else 0
                eol, head = _line_end(f, head)
                end = head.find(eol, bom)
                first = head[bom:end + 1] if end >= 0 else head[bom:]
                start = bom + len(first)
                if not first.strip():
                    raise PipelineError("CSV file has no header line", path=path)
                if header is None:
                    header = _check_header(first.rstrip(b"\r\n") + b"\n", path)
                elif first.rstrip(b"\r\n") != header.rstrip(b"\n"):
                    raise PipelineError(f"CSV header differs from {paths[0]}: "
                                        f"{first.decode(errors='replace').strip()!r}", path=path)
                size = storage.size(path)
                if compression is not None:
                    rest = _to_line_end(f, head[start:], eol)
                    samples = [_whole_lines(rest, eol, at_end=not f.read(1))]
                    pieces.append(Piece(path, size=size, compression=compression,
                                        line_end=eol))
                else:
                    cuts, samples = _csv_cuts(f, start, size, blocksize, eol,
                                              scan=isinstance(storage, LocalStorage))
                    pieces.extend(Piece(path, byte_range=(a, b), size=b - a, line_end=eol)
                                  for a, b in itertools.pairwise([start, *cuts, size]) if b > a)
        except (OSError, EOFError, lzma.LZMAError, pa.ArrowException) as exc:
            raise PipelineError(f"cannot read ({_short(exc)})", path=path) from None
        for sample in samples:
            sample_schema = _csv_sample_schema(path, header + sample, null_values,
                                               partial=len(samples) > 1 or bool(compression))
            for f_ in sample_schema or ():
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
                  csv_types={f.name: f.type for f in schema}, null_values=null_values)


def _line_end(f, head: bytes) -> tuple[bytes, bytes]:
    """The byte that ends this file's lines (``\\n`` for LF and CRLF, ``\\r`` for CR-only,
    told by the header's line end) and the head read so far, extended to that line end."""
    head = _to_line_end(f, head, b"\n\r")
    cr, lf = head.find(b"\r"), head.find(b"\n")
    if cr >= 0 and (lf < 0 or cr < lf) and head[cr + 1:cr + 2] != b"\n":
        if cr + 1 < len(head) or not (more := f.read(1)):
            return b"\r", head
        head += more
        return (b"\n" if more == b"\n" else b"\r"), head
    return b"\n", head


def _to_line_end(f, data: bytes, ends: bytes) -> bytes:
    """``data`` and what follows it up to the first of ``ends`` (or the end of the file):
    a line longer than a sample is read whole."""
    while not any(e in data for e in ends):
        more = f.read(_CSV_SAMPLE)
        if not more:
            break
        data += more
    return data


def _check_header(header: bytes, path: str) -> bytes:
    """The header line, if it is UTF-8 and names each column once."""
    try:
        header.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PipelineError(f"CSV header is not UTF-8 (byte {exc.start} of the header line "
                            f"is {header[exc.start]:#04x}); save the file as UTF-8",
                            path=path) from None
    try:
        names = pacsv.read_csv(io.BytesIO(header)).column_names
    except pa.ArrowInvalid as exc:
        raise PipelineError(f"bad CSV header ({_short(exc)})", path=path) from None
    _require_unique(names, path)
    return header


def _require_unique(names: list[str], path: str) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise PipelineError(f"duplicate column name {name!r}: each column needs its own "
                                "name", path=path)
        seen.add(name)


def _csv_cuts(f, start: int, size: int, blocksize: int, eol: bytes, *, scan: bool
              ) -> tuple[list[int], list[bytes]]:
    """Cut points of about ``blocksize`` bytes at record ends, and type samples of whole
    records at the start, the middle and the end of the file's data.

    With ``scan`` (a local file) the record ends are found by counting quotes from the data's
    start: a line end is outside quotes where the quotes before it are even in number (RFC
    4180 doubles a quote inside a quoted field), so a quoted line end is never a cut. An
    object is not read twice: its cuts follow the next line end, and a piece whose quotes are
    odd in number is an error when read (:func:`_check_quotes`).
    """
    cuts = list(range(start + blocksize, size, blocksize))
    if size - start <= 3 * _CSV_SAMPLE:
        cuts = _record_ends(f, start, size, cuts, eol) if scan else [
            _next_line_end(f, c, size, eol) for c in cuts]
        f.seek(start)
        return cuts, [f.read()]
    at = [start, (start + size) // 2, size - _CSV_SAMPLE]
    marks = sorted({*cuts, *at, *(a + _CSV_SAMPLE for a in at)})
    if scan:
        ends = dict(zip(marks, _record_ends(f, start, size, marks, eol), strict=True))
    else:
        ends = {m: _next_line_end(f, m, size, eol) for m in marks}
    ends[start] = start
    samples = []
    for a in at:
        lo, hi = ends[a], ends[a + _CSV_SAMPLE]
        f.seek(lo)
        samples.append(f.read(hi - lo))
    return [ends[c] for c in cuts], samples


def _next_line_end(f, at: int, size: int, eol: bytes) -> int:
    """The offset after the first line end at or after ``at`` (quotes not counted)."""
    f.seek(max(at - 1, 0))
    pos = max(at - 1, 0)
    while pos < size:
        block = f.read(_CSV_SAMPLE)
        if not block:
            break
        i = block.find(eol)
        if i >= 0:
            return pos + i + 1
        pos += len(block)
    return size


def _no_quotes(*_) -> int:
    return 0


def _record_ends(f, start: int, size: int, targets: list[int], eol: bytes) -> list[int]:
    """For each offset of ``targets`` (ascending), the offset after the first line end at or
    after it that is outside quotes; ``size`` where there is none. One read of the file from
    ``start``, in blocks."""
    out: list[int] = []
    todo = list(targets)
    f.seek(start)
    pos, odd = start, 0
    while todo and pos < size:
        block = f.read(_COUNT_BLOCK)
        if not block:
            break
        k = 0  # parity known up to block[k]
        # counting is ~10x slower than finding: a block without quotes (the common case)
        # is not counted
        quotes = block.count if b'"' in block else _no_quotes
        while todo and todo[0] - 1 < pos + len(block):
            j = max(todo[0] - 1 - pos, k)  # the line end may be the byte before the target
            odd ^= quotes(b'"', k, j) & 1
            k = j
            i = block.find(eol, k)
            while i >= 0:
                odd ^= quotes(b'"', k, i) & 1
                k = i + 1
                if not odd:
                    break
                i = block.find(eol, k)
            if i < 0:
                break
            end = pos + i + 1
            while todo and todo[0] <= end:
                out.append(end)
                todo.pop(0)
        odd ^= quotes(b'"', k) & 1
        pos += len(block)
    return out + [size] * len(todo)


def _whole_lines(data: bytes, eol: bytes = b"\n", *, at_end: bool) -> bytes:
    if at_end or eol not in data:
        return data if at_end else b""
    return data[: data.rfind(eol) + 1]


def _csv_sample_schema(path: str, sample: bytes, null_values=(), *, partial: bool = False
                       ) -> pa.Schema | None:
    """The types pyarrow infers from a sample; None for a part of the file that does not
    parse on its own (it may begin or end inside quotes: the reader reports what is wrong)."""
    try:
        return pacsv.read_csv(io.BytesIO(sample), parse_options=_parse_options(sample),
                              convert_options=_convert_options(null_values)).schema
    except pa.ArrowInvalid as exc:
        if partial:
            return None
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


def _convert_options(null_values=(), **kw) -> pacsv.ConvertOptions:
    """Only empty cells are null, and the texts the user names: ``NA`` stays text, ``NaN``
    and ``inf`` in a float column are IEEE values (not pyarrow's default null markers)."""
    return pacsv.ConvertOptions(strings_can_be_null=True, null_values=["", *null_values],
                                **kw)


def _parse_options(data) -> pacsv.ParseOptions:
    """Line ends inside quoted fields are data where the bytes hold a quote (pyarrow's
    parser finds its blocks' ends more slowly then)."""
    return pacsv.ParseOptions(newlines_in_values=b'"' in data)


@dataclass(frozen=True)
class ChunkReader:
    """What a worker needs to read any chunk of one Source (small, picklable)."""

    fmt: str
    names: list[str]
    csv_header: bytes | None = None
    csv_types: dict = field(default_factory=dict)
    storage: Storage = LOCAL
    null_values: tuple[str, ...] = ()

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
        whole = self._small_files(chunk)
        for p in chunk.pieces:
            t = _read_piece(self, chunk.fmt, p, columns, numeric, used, whole.get(p.path))
            tables.append(t)
            if chunk.fmt == "parquet":
                spans.append(Span(p.path, t.num_rows, first_row=p.first_row))
            else:
                spans.append(Span(p.path, t.num_rows, byte_start=p.byte_range[0],
                                  line_end=p.line_end))
        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        return table, RowOrigin(tuple(spans), storage=self.storage)

    def _small_files(self, chunk: Chunk) -> dict[str, bytes]:
        """The chunk's small Parquet files on an object store, each in one GET, fetched
        concurrently (at most ``io_concurrency`` in flight; the bytes held are the chunk's
        files, which its block size bounds)."""
        if chunk.fmt != "parquet" or isinstance(self.storage, LocalStorage):
            return {}
        small = list(dict.fromkeys(p.path for p in chunk.pieces
                                   if 0 < p.file_size <= SMALL_FILE))
        if not small:
            return {}
        sizes = {p.path: p.file_size for p in chunk.pieces}
        try:
            bodies = self.storage.fetch_many([(p, 0, sizes[p]) for p in small])
        except OSError as exc:
            what = "no such file" if isinstance(exc, FileNotFoundError) else _short(exc)
            raise PipelineError(f"cannot read ({what}){_on_worker()}", path=chunk.path
                                ) from None
        return dict(zip(small, bodies, strict=True))

    def stream(self, chunk: Chunk, columns: list[str] | None = None,
               numeric: tuple[str, ...] = (), used: tuple[str, ...] = (),
               batch_bytes: int = DEFAULT_BLOCKSIZE) -> Iterator[tuple[pa.Table, RowOrigin]]:
        """A chunk as Tables of about ``batch_bytes`` input bytes each (a compressed CSV file,
        decoded as it is read); any other chunk as one Table."""
        if not chunk.streamed:
            yield self.read_located(chunk, columns, numeric, used)
            return
        piece = chunk.pieces[0]
        skip = 0
        opts = _convert_options(self.null_values,
                                column_types=_column_types(self.csv_types, numeric),
                                include_columns=columns)
        # small parse blocks (pyarrow's default, 1 MiB) grouped into tables of about
        # batch_bytes: measured 1.4 s per 383 MiB gzip file, against 3.1-3.5 s when the
        # parser's own blocks were batch_bytes (128 MiB) large; a longer line than a block
        # reads the stream again with blocks that hold it, past the rows already given
        block = max(1 << 12, min(_STREAM_BLOCK, batch_bytes))
        while True:
            try:
                yield from self._stream_batches(piece, opts, block, batch_bytes, skip, numeric)
                return
            except _Restart as again:
                skip, block = again.done, block * 8
            except (OSError, EOFError, lzma.LZMAError) as exc:
                raise PipelineError(f"cannot read ({_short(exc)}){_on_worker()}",
                                    path=piece.path) from None

    def _stream_batches(self, piece: Piece, opts, block: int, batch_bytes: int, skip: int,
                        numeric) -> Iterator[tuple[pa.Table, RowOrigin]]:
        done = 0
        with open_input(piece.path, piece.compression, self.storage) as fh:
            try:
                reader = pacsv.open_csv(fh, read_options=pacsv.ReadOptions(
                    use_threads=True, block_size=block), parse_options=pacsv.ParseOptions(
                    newlines_in_values=True), convert_options=opts)
                pending, size = [], 0
                for batch in itertools.chain(reader, [None]):
                    if batch is not None and skip:  # rows given before a restart
                        cut = min(skip, batch.num_rows)
                        batch, skip, done = batch.slice(cut), skip - cut, done + cut
                    if batch is not None and batch.num_rows:
                        pending.append(batch)
                        size += batch.nbytes
                    if pending and (batch is None or size >= batch_bytes):
                        table = pa.Table.from_batches(pending)
                        yield table, RowOrigin((Span(piece.path, table.num_rows, done + 1),),
                                               storage=self.storage)
                        done += table.num_rows
                        pending, size = [], 0
            except pa.ArrowInvalid as exc:
                if _STRADDLE in str(exc) and block < (1 << 31):
                    raise _Restart(done) from None
                # the stream's errors carry no row number: name the rows read so far
                err = _csv_error(piece.path, exc, self, None, numeric)
                raise PipelineError(f"{err.detail} (after data row {done})", path=piece.path,
                                    column=err.column) from None
            if done == 0:  # a header and no rows: still one (empty) table
                yield reader.schema.empty_table(), RowOrigin((Span(piece.path, 0, 1),),
                                                             storage=self.storage)


_STRADDLE = "straddling object straddles two block boundaries"


class _Restart(Exception):
    """A line longer than the parse block: read the stream again from the start."""

    def __init__(self, done: int) -> None:
        self.done = done


def _column_types(types: dict, numeric) -> dict:
    """A stream cannot re-read a batch: integer columns computed on parse as float64."""
    types = dict(types)
    for name in numeric:
        if name in types and pa.types.is_integer(types[name]):
            types[name] = pa.float64()
    return types


def _read_piece(source, fmt: str, piece: Piece, columns, numeric, used=(),
                body: bytes | None = None) -> pa.Table:
    try:
        if fmt == "parquet":
            if isinstance(source.storage, LocalStorage):
                f = pq.ParquetFile(piece.path, memory_map=True)
            elif body is not None:  # a small file, fetched whole: parsed from memory
                meta, _ = _FOOTERS.get(piece.path, (None, None))
                f = pq.ParquetFile(pa.BufferReader(body), metadata=meta)
            else:  # the footer from planning where this process planned; reads coalesced
                meta, size = _FOOTERS.get(piece.path, (None, None))
                f = pq.ParquetFile(source.storage.open_parquet(piece.path, size=size),
                                   metadata=meta, pre_buffer=True)
            if not piece.row_groups:
                return decode_dictionaries(
                    f.schema_arrow.empty_table().select(columns or f.schema_arrow.names))
            # Arrow's own threads decode the columns: measured 40% less CPU per chunk than
            # use_threads=False (and pyarrow.dataset would import pandas, 0.2 s).
            return decode_dictionaries(
                f.read_row_groups(list(piece.row_groups), columns=columns, use_threads=True))
        start, stop = piece.byte_range
        body = source.storage.read_range(piece.path, start, stop)
        # parsed with the header's names and no header line: no copy of the body to prepend
        # it, and pyarrow's threads parse the body's blocks (measured: 0.30 s -> 0.12 s for
        # 96 MiB of floats, both cores free)
        _check_quotes(body, piece)
        data = memoryview(body)
        # integer columns computed on stay integers here (exact, checked against 2**53 when
        # converted); one that shows a decimal in this chunk is read again as float64
        types = dict(source.csv_types)
        threads, block, undecoded = True, 1 << 20, []
        while True:
            try:
                table = pacsv.read_csv(
                    pa.BufferReader(data), read_options=pacsv.ReadOptions(
                        use_threads=threads, column_names=source.names, block_size=block),
                    parse_options=_parse_options(body),
                    convert_options=_convert_options(source.null_values, column_types=types,
                                                     include_columns=columns))
                return _decoded(table, undecoded)
            except pa.ArrowInvalid as exc:
                if _STRADDLE in str(exc) and block <= len(body):
                    block = len(body) + 1  # a line longer than a parse block: one block
                    continue
                if threads:  # threaded errors carry no row number: parse again, one thread
                    threads = False
                    continue
                name = _csv_error_column(exc, source.names)
                if name in numeric and pa.types.is_integer(types[name]):
                    types[name] = pa.float64()
                elif (name is not None and name not in numeric and name not in used
                      and types.get(name) == pa.string() and "UTF8" in str(exc)):
                    # text the command only passes through: bytes that are not UTF-8 are
                    # written as U+FFFD, the column stays text in every part
                    types[name] = pa.binary()
                    undecoded.append(name)
                else:  # every part has the planned schema: the error names the --dtype
                    raise
    except pa.ArrowInvalid as exc:
        if fmt == "csv":
            raise _csv_error(piece.path, exc, source, piece, numeric) from None
        raise PipelineError(f"cannot read row groups {list(piece.row_groups)} "
                            f"({_short(exc)})", path=piece.path) from None
    except OSError as exc:
        what = "no such file" if isinstance(exc, FileNotFoundError) else _short(exc)
        raise PipelineError(f"cannot read ({what}){_on_worker()}", path=piece.path) from None


def _decoded(table: pa.Table, names: list[str]) -> pa.Table:
    """Binary columns read for text that is not all UTF-8, as text (U+FFFD for bad bytes)."""
    for name in names:
        if name in table.column_names:
            i = table.column_names.index(name)
            values = [None if v is None else v.decode("utf-8", "replace")
                      for v in table[name].to_pylist()]
            table = table.set_column(i, name, pa.array(values, pa.string()))
    return table


def _check_quotes(body: bytes, piece: Piece) -> None:
    """A piece whose quotes are odd in number was cut inside a quoted field (a cut that the
    planner could not place by a quote scan, or quotes that are not RFC 4180): one error
    naming the byte, never a wrong row."""
    if b'"' in body and body.count(b'"') % 2:
        raise PipelineError(f"a quoted field holds a line end at a chunk cut near byte "
                            f"{piece.byte_range[0]} (or a quote is not doubled inside quotes); "
                            "copy the file to a local disk, or give a --blocksize larger than "
                            "the file", path=piece.path, params=("blocksize",))


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
