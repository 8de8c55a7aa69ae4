"""Reading one chunk: its pieces read (a small object-store file in one GET), decoded and
typed as planned, and every parse error located to its file, column and row."""

from __future__ import annotations

import itertools
import lzma
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..errors import PipelineError, nearest_columns
from .chunking import Chunk, Piece, RowOrigin, Span, _rows_before
from .fetching import chunk_bytes, fetch_ahead, piece_key
from .footers import _FOOTERS
from .formats import (
    _STREAM_BLOCK,
    DEFAULT_BLOCKSIZE,
    _convert_options,
    _on_worker,
    _parse_options,
    _short,
    decode_dictionaries,
    is_numeric_type,
    open_input,
    parquet_schema,
    quote_count,
)
from .local_storage import LocalStorage
from .storage import LOCAL, Storage


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
                           self.storage, self.null_values,
                           (self.schema, self.paths[0]) if self.fmt == "parquet" else None)

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


@dataclass(frozen=True)
class ChunkReader:
    """What a worker needs to read any chunk of one Source (small, picklable)."""

    fmt: str
    names: list[str]
    csv_header: bytes | None = None
    csv_types: dict = field(default_factory=dict)
    storage: Storage = LOCAL
    null_values: tuple[str, ...] = ()
    # Parquet: the planned schema and the file it is from, which the footer of a file
    # planned from the listing must match when its chunk reads it
    planned: tuple[pa.Schema, str] | None = None

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
        fetched = chunk_bytes(self.storage, chunk)
        try:
            for p in chunk.pieces:
                key = piece_key(chunk.fmt, p)
                t = _read_piece(self, chunk.fmt, p, columns, numeric, used,
                                fetched.get(key), fetched.parsed.get(key))
                tables.append(t)
                if chunk.fmt == "parquet":
                    spans.append(Span(p.path, t.num_rows, first_row=p.first_row))
                else:
                    spans.append(Span(p.path, t.num_rows, byte_start=p.byte_range[0],
                                      line_end=p.line_end))
        finally:
            fetched.close()
        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        return table, RowOrigin(tuple(spans), storage=self.storage)

    def prefetch(self, chunk: Chunk) -> None:
        """Start fetching a chunk's bytes on an object store while it waits for a thread."""
        fetch_ahead(self.storage, chunk)

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
                body: bytes | memoryview | None = None, parsed: pa.Table | None = None) -> pa.Table:
    try:
        if fmt == "parquet":
            if isinstance(source.storage, LocalStorage):
                f = pq.ParquetFile(piece.path, memory_map=True)
            elif body is not None:  # a small file, fetched whole: parsed from memory
                meta, _ = _FOOTERS.get(piece.path, (None, None))
                f = pq.ParquetFile(pa.BufferReader(body), metadata=meta)
            else:  # the footer from planning where this process planned; reads coalesced
                meta, size = _FOOTERS.get(piece.path, (None, piece.file_size or None))
                f = pq.ParquetFile(source.storage.open_parquet(piece.path, size=size),
                                   metadata=meta, pre_buffer=True)
            # Arrow's own threads decode the columns: measured 40% less CPU per chunk than
            # use_threads=False (and pyarrow.dataset would import pandas, 0.2 s); but for a
            # file up to 1 MiB in memory, more (measured: 0.29 -> 0.18 ms for 110 KiB)
            threads = body is None or len(body) > _SMALL_BODY
            if piece.row_groups is None:  # planned from the listing: its footer is here
                parquet_schema(f.schema_arrow, piece.path, source.planned)
                return decode_dictionaries(f.read(columns=columns, use_threads=threads))
            if not piece.row_groups:
                return decode_dictionaries(
                    f.schema_arrow.empty_table().select(columns or f.schema_arrow.names))
            return decode_dictionaries(
                f.read_row_groups(list(piece.row_groups), columns=columns, use_threads=threads))
        if body is None:
            body = source.storage.read_range(piece.path, *piece.byte_range)
        if parsed is not None and _as_planned(parsed, source.csv_types):
            # the file's table from planning (kept where its quotes pair up): its types are
            # the planned ones, so parsing its bytes again with them would give this table
            return parsed.select(columns) if columns is not None else parsed
        # parsed with the header's names and no header line: no copy of the body to prepend
        # it, and pyarrow's threads parse the body's blocks (measured: 0.30 s -> 0.12 s for
        # 96 MiB of floats, both cores free)
        _check_quotes(body, piece)
        data = memoryview(body)
        # integer columns computed on stay integers here (exact, checked against 2**53 when
        # converted); one that shows a decimal in this chunk is read again as float64
        types = dict(source.csv_types)
        # one parse block: no thread pool (measured: 0.98 -> 0.62 ms of CPU for 64 KiB)
        block, undecoded = 1 << 20, []
        threads = len(body) > block
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
        what = "the file" if piece.row_groups is None else \
            f"row groups {list(piece.row_groups)}"
        raise PipelineError(f"cannot read {what} ({_short(exc)})", path=piece.path) from None
    except OSError as exc:
        what = "no such file" if isinstance(exc, FileNotFoundError) else _short(exc)
        raise PipelineError(f"cannot read ({what}){_on_worker()}", path=piece.path) from None


# bytes up to which a file in memory is decoded without pyarrow's thread pool
_SMALL_BODY = 1 << 20


def _as_planned(table: pa.Table, types: dict) -> bool:
    """Whether each column of ``table`` has its planned type."""
    return table.column_names == list(types) and all(
        f.type == types[f.name] for f in table.schema)


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
    if quote_count(body) % 2:
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
