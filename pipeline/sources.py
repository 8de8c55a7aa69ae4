"""Input discovery, schema checks, and chunk planning for Parquet and CSV files.

A :class:`Chunk` is one unit of work: whole Parquet row groups packed up to the block size, or
a byte range of a CSV file cut at line ends. :func:`read_chunk` turns one into a
``pyarrow.Table``; nothing here knows about transforms or models.
"""

from __future__ import annotations

import glob
import io
import os
import re
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .errors import PipelineError

DEFAULT_BLOCKSIZE = 128 * 2**20
# Bytes of the first CSV file read to infer column types (later chunks are parsed with them).
_CSV_SAMPLE = 1 << 16
_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


@dataclass(frozen=True)
class Piece:
    """Part of one file: whole Parquet row groups, or a CSV byte range cut at line ends."""

    path: str
    row_groups: tuple[int, ...] = ()
    byte_range: tuple[int, int] | None = None
    rows: int | None = None  # known up front for Parquet
    size: int = 0            # input bytes (Parquet: uncompressed)


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


def pack(pieces: list[Piece], fmt: str, blocksize: int) -> list[Chunk]:
    """Consecutive pieces packed into chunks of at most ``blocksize`` input bytes (a larger
    piece is a chunk of its own): a big file is many chunks, many small files are few."""
    chunks: list[Chunk] = []
    cur: list[Piece] = []
    size = 0
    for piece in pieces:
        if cur and size + piece.size > blocksize:
            chunks.append(Chunk(len(chunks), fmt, tuple(cur)))
            cur, size = [], 0
        last = cur[-1] if cur else None
        if last is not None and last.path == piece.path and fmt == "parquet":
            cur[-1] = Piece(last.path, last.row_groups + piece.row_groups,
                            rows=(last.rows or 0) + (piece.rows or 0),
                            size=last.size + piece.size)
        else:
            cur.append(piece)
        size += piece.size
    if cur:
        chunks.append(Chunk(len(chunks), fmt, tuple(cur)))
    return chunks


@dataclass
class Source:
    """A planned input: its files, common schema and chunks."""

    paths: list[str]
    fmt: str
    schema: pa.Schema
    chunks: list[Chunk]
    csv_header: bytes | None = None
    csv_types: dict = field(default_factory=dict)

    def reader(self) -> ChunkReader:
        return ChunkReader(self.fmt, self.schema.names, self.csv_header, self.csv_types)

    @property
    def total_rows(self) -> int | None:
        if any(c.rows is None for c in self.chunks):
            return None
        return sum(c.rows for c in self.chunks)

    def fingerprint(self) -> list[dict]:
        """Paths, sizes and mtimes: what ``--resume`` checks to know the input is unchanged."""
        out = []
        for p in self.paths:
            st = os.stat(p)
            out.append({"path": p, "size": st.st_size, "mtime_ns": st.st_mtime_ns})
        return out

    def require_columns(self, columns, *, numeric: bool = True) -> None:
        for name in columns:
            if name not in self.schema.names:
                raise PipelineError("no such column in the input", path=self.paths[0], column=name)
            typ = self.schema.field(name).type
            if numeric and not (pa.types.is_floating(typ) or pa.types.is_integer(typ)):
                raise PipelineError(f"column is not numeric ({typ})", path=self.paths[0],
                                    column=name)


def discover(input_path: str | os.PathLike) -> tuple[list[str], str]:
    """Files named by INPUT (a file, a folder, or a glob) and their one format."""
    text = os.fspath(input_path)
    if any(ch in text for ch in "*?["):
        paths = sorted(glob.glob(text, recursive=True))
        if not paths:
            raise PipelineError("no file matches this pattern", path=text)
    elif os.path.isdir(text):
        paths = sorted(
            os.path.join(root, name)
            for root, dirs, names in os.walk(text)
            for name in names
        )
        paths = [p for p in paths if not any(
            part.startswith(("_", ".")) for part in os.path.relpath(p, text).split(os.sep))]
        if not paths:
            raise PipelineError("folder holds no input files (names starting with _ or . are "
                                "not input)", path=text)
    elif os.path.exists(text):
        paths = [text]
    else:
        raise PipelineError("no such file or folder", path=text)
    paths = [p for p in paths if not os.path.basename(p).startswith(("_", "."))]
    if not paths:
        raise PipelineError("no input files (names starting with _ or . are not input)", path=text)
    fmts = set()
    for p in paths:
        fmt = _FORMATS.get(os.path.splitext(p)[1].lower())
        if fmt is None:
            raise PipelineError("not a .parquet or .csv file", path=p)
        fmts.add(fmt)
    if len(fmts) > 1:
        raise PipelineError("input mixes Parquet and CSV files; use one format per input",
                            path=text)
    return paths, fmts.pop()


def plan(input_path, *, blocksize: int | None = None) -> Source:
    """Discover INPUT, check that every file has the same schema, and cut it into chunks."""
    blocksize = blocksize or DEFAULT_BLOCKSIZE
    paths, fmt = discover(input_path)
    if fmt == "parquet":
        return _plan_parquet(paths, blocksize)
    return _plan_csv(paths, blocksize)


def _plan_parquet(paths: list[str], blocksize: int) -> Source:
    pieces: list[Piece] = []
    schema = None
    for path in paths:
        try:
            meta = pq.read_metadata(path)
            file_schema = meta.schema.to_arrow_schema()
        except (pa.ArrowException, OSError) as exc:
            raise PipelineError(f"not a readable Parquet file ({_short(exc)})", path=path) from None
        file_schema = file_schema.remove_metadata()
        if schema is None:
            schema = file_schema
        elif not file_schema.equals(schema):
            raise PipelineError(f"schema differs from {paths[0]}: "
                                f"{_schema_diff(schema, file_schema)}", path=path)
        for i in range(meta.num_row_groups):
            rg = meta.row_group(i)
            pieces.append(Piece(path, (i,), rows=rg.num_rows, size=rg.total_byte_size))
        if meta.num_row_groups == 0:
            pieces.append(Piece(path, (), rows=0, size=0))
    return Source(paths, "parquet", schema, pack(pieces, "parquet", blocksize))


def _plan_csv(paths: list[str], blocksize: int) -> Source:
    header = None
    schema = None
    pieces: list[Piece] = []
    for path in paths:
        with open(path, "rb") as f:
            first = f.readline()
            if not first.strip():
                raise PipelineError("CSV file has no header line", path=path)
            if header is None:
                header = first
                sample = first + f.read(_CSV_SAMPLE)
                if b"\n" in sample[len(first):]:  # whole lines only
                    sample = sample[: sample.rfind(b"\n") + 1]
                schema = _csv_sample_schema(path, sample)
            elif first.rstrip(b"\r\n") != header.rstrip(b"\r\n"):
                raise PipelineError(f"CSV header differs from {paths[0]}: "
                                    f"{first.decode(errors='replace').strip()!r}", path=path)
            size = os.fstat(f.fileno()).st_size
            start = len(first)
            while start < size:
                stop = min(start + blocksize, size)
                if stop < size:
                    f.seek(stop)
                    rest = f.readline()  # cut after the next line end
                    stop += len(rest)
                pieces.append(Piece(path, byte_range=(start, stop), size=stop - start))
                start = stop
    return Source(paths, "csv", schema, pack(pieces, "csv", blocksize), csv_header=header,
                  csv_types={f.name: f.type for f in schema})


def _csv_sample_schema(path: str, sample: bytes) -> pa.Schema:
    try:
        table = pacsv.read_csv(io.BytesIO(sample))
    except pa.ArrowInvalid as exc:
        raise _csv_error(path, exc, None, None) from None
    fields = []
    for f in table.schema:
        typ = f.type
        if pa.types.is_null(typ):
            typ = pa.float64()
        fields.append(pa.field(f.name, typ))
    return pa.schema(fields)


@dataclass(frozen=True)
class ChunkReader:
    """What a worker needs to read any chunk of one Source (small, picklable)."""

    fmt: str
    names: list[str]
    csv_header: bytes | None = None
    csv_types: dict = field(default_factory=dict)

    def read(self, chunk: Chunk, columns: list[str] | None = None,
             numeric: tuple[str, ...] = ()) -> pa.Table:
        return read_chunk(self, chunk, columns, numeric)


def read_chunk(source: Source | ChunkReader, chunk: Chunk, columns: list[str] | None = None,
               numeric: tuple[str, ...] = ()) -> pa.Table:
    """Read one chunk as a Table. For CSV, ``numeric`` columns are parsed as float64."""
    tables = [_read_piece(source, chunk.fmt, p, columns, numeric) for p in chunk.pieces]
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


def _read_piece(source, fmt: str, piece: Piece, columns, numeric) -> pa.Table:
    try:
        if fmt == "parquet":
            f = pq.ParquetFile(piece.path, memory_map=True)
            if not piece.row_groups:
                return f.schema_arrow.empty_table().select(columns or f.schema_arrow.names)
            # Arrow's own threads decode the columns: measured 40% less CPU per chunk than
            # use_threads=False (and pyarrow.dataset would import pandas, 0.2 s).
            return f.read_row_groups(list(piece.row_groups), columns=columns, use_threads=True)
        start, stop = piece.byte_range
        with open(piece.path, "rb") as fh:
            fh.seek(start)
            body = fh.read(stop - start)
        types = dict(source.csv_types)
        for name in numeric:
            if name in types and not pa.types.is_floating(types[name]):
                types[name] = pa.float64()
        return pacsv.read_csv(
            io.BytesIO(source.csv_header + body),
            read_options=pacsv.ReadOptions(use_threads=False),
            convert_options=pacsv.ConvertOptions(column_types=types, include_columns=columns),
        )
    except pa.ArrowInvalid as exc:
        if fmt == "csv":
            raise _csv_error(piece.path, exc, source, piece) from None
        raise PipelineError(f"cannot read row groups {list(piece.row_groups)} "
                            f"({_short(exc)})", path=piece.path) from None
    except OSError as exc:
        raise PipelineError(f"cannot read ({_short(exc)})", path=piece.path) from None


_CSV_COLUMN = re.compile(r"In CSV column #(\d+)")
_CSV_ROW = re.compile(r"Row #(\d+)")


def _csv_error(path: str, exc: Exception, source, piece: Piece | None):
    text = str(exc)
    column = row = None
    m = _CSV_COLUMN.search(text)
    if m and source is not None:
        idx = int(m.group(1))
        names = source.names if isinstance(source, ChunkReader) else source.schema.names
        if idx < len(names):
            column = names[idx]
    m = _CSV_ROW.search(text)
    if m and piece is not None and piece.byte_range is not None:
        # pyarrow counts lines from 1 at the header of what it parsed; report the data row
        # of the file, counted from 1 after the header.
        with open(path, "rb") as fh:
            before = fh.read(piece.byte_range[0]).count(b"\n")  # header + earlier rows
        row = before + int(m.group(1)) - 2
    detail = text.split(": ", 1)[-1] if "CSV conversion error" in text else text
    detail = re.sub(r"^(In CSV column #\d+: )?(Row #\d+: )?", "", detail)
    return PipelineError(f"bad CSV ({_short(detail)})", path=path, column=column, row=row)


def _short(exc) -> str:
    return str(exc).strip().splitlines()[0][:200]


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
