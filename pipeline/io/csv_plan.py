"""Planning CSV input: the header, line ends and BOM of each file, the types from samples
across it, and cut points that never fall inside a quoted field."""

from __future__ import annotations

import io
import itertools
import lzma

import pyarrow as pa
import pyarrow.csv as pacsv

from ..errors import PipelineError, nearest_columns
from . import bodies
from .chunking import _COUNT_BLOCK, Piece, pack
from .formats import (
    _BOM,
    _CSV_SAMPLE,
    _convert_options,
    _line_end,
    _parse_options,
    _require_unique,
    _short,
    _to_line_end,
    _whole_lines,
    input_format,
    open_input,
)
from .local_storage import LocalStorage
from .reading import Source, _csv_error
from .storage import LOCAL, Storage


def _plan_csv(paths: list[str], blocksize: int, dtype: dict[str, pa.DataType],
              storage: Storage = LOCAL, null_values: tuple[str, ...] = ()) -> Source:
    header = None
    types: dict[str, pa.DataType | None] = {}
    numbers: list[dict] = [{}]  # the number columns' types so far: the hint of later files
    pieces: list[Piece] = []
    for path, (first, file_pieces, sample_schemas, hinted) in zip(
            paths, _planned_files(paths, blocksize, storage, null_values, numbers),
            strict=True):
        if header is None:
            header = _check_header(first.rstrip(b"\r\n") + b"\n", path)
        elif first.rstrip(b"\r\n") != header.rstrip(b"\n"):
            raise PipelineError(f"CSV header differs from {paths[0]}: "
                                f"{first.decode(errors='replace').strip()!r}", path=path)
        if hinted and not _typed_alike(hinted, types):  # typed again by its own rows
            sample_schemas = _plan_csv_file(path, blocksize, storage, null_values,
                                            raw=bodies.peek(path))[2]
        pieces.extend(file_pieces)
        for sample_schema in sample_schemas:
            if isinstance(sample_schema, PipelineError):
                raise sample_schema
            for f_ in sample_schema or ():
                types[f_.name] = _merge_types(types.get(f_.name), f_.type)
        numbers[0] = {name: typ for name, typ in types.items() if typ in _HINTED}
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


def _planned_files(paths: list[str], blocksize: int, storage: Storage,
                   null_values: tuple[str, ...], numbers: list[dict]):
    """Each file's plan, in order; on an object store the files' requests and their samples'
    parsing concurrently, ``io_concurrency`` at once, a sliding window of a few times that
    many files planned ahead of the one merged (only their header lines and sample types are
    held until merged, so memory stays bounded whatever the number of files). ``numbers[0]``:
    the number columns' types of the files merged so far, the hint a file fetched whole is
    parsed with (:func:`_typed_alike`)."""
    def plan(path):
        return _plan_csv_file(path, blocksize, storage, null_values, hint=numbers[0])

    if isinstance(storage, LocalStorage):
        yield from map(plan, paths)
        return
    yield from storage.imap(plan, paths, ahead=4 * storage.io_concurrency)


def _plan_csv_file(path: str, blocksize: int, storage: Storage, null_values: tuple[str, ...],
                   *, hint: dict | None = None, raw: bytes | None = None):
    """One CSV file's header line, pieces, the types inferred from each of its samples
    (parsed under the file's own header line; a sample that cannot be parsed gives None where
    it is only a part of the file, else the error, raised when the file's plan is merged, after
    its header is checked), and the ``hint`` its samples were parsed with (or {}).

    On an object store a small file is fetched whole in one request (``raw``: its bytes,
    kept already, typed again), its cuts found by counting quotes as on a local disk, and its
    bytes kept for the chunk that reads it when it is one piece; a larger object is read
    where needed. A kept file is parsed with ``hint``'s types where they hold its values."""
    compression = input_format(path)[1]
    local = isinstance(storage, LocalStorage)
    kept = False
    size = reserved = 0
    try:
        size = storage.size(path)
        whole = raw is not None or (not local and 0 < size and bodies.reserve(size))
        if whole:
            if raw is None:
                reserved, raw = size, storage.read_range(path, 0, size)
            stream = io.BytesIO(raw) if compression is None else (
                lzma.open(io.BytesIO(raw), "rb") if compression == "xz"
                else pa.input_stream(pa.BufferReader(raw), compression=compression))
        else:
            stream = open_input(path, compression, storage)
        with stream as f:
            head = f.read(4 * _CSV_SAMPLE if compression else _CSV_SAMPLE)
            # a BOM is stripped from each file's header; the line end is the file's own
            bom = len(_BOM) if head.startswith(_BOM) else 0
            eol, head = _line_end(f, head)
            end = head.find(eol, bom)
            first = head[bom:end + 1] if end >= 0 else head[bom:]
            start = bom + len(first)
            if not first.strip():
                raise PipelineError("CSV file has no header line", path=path)
            if compression is not None:
                rest = _to_line_end(f, head[start:], eol)
                samples = [_whole_lines(rest, eol, at_end=not f.read(1))]
                pieces = [Piece(path, size=size, compression=compression, line_end=eol)]
            else:
                cuts, samples = _csv_cuts(f, start, size, blocksize, eol,
                                          scan=local or whole)
                pieces = [Piece(path, byte_range=(a, b), size=b - a, line_end=eol)
                          for a, b in itertools.pairwise([start, *cuts, size]) if b > a]
        header = first.rstrip(b"\r\n") + b"\n"
        partial = len(samples) > 1 or bool(compression)
        keeps = whole and compression is None and len(pieces) == 1
        hinted = (hint or {}) if keeps else {}
        tables = _file_tables(path, header, samples, null_values, partial, whole=whole,
                              threads=local, hint=hinted)
        if hinted and not all(isinstance(t, pa.Table) for t in tables):
            hinted = {}  # a value the hint does not hold: typed by the file's own rows
            tables = _file_tables(path, header, samples, null_values, partial, whole=whole,
                                  threads=local)
        if keeps:
            # the samples hold every record (the data is at most 1 MiB): where they agree on
            # the types, together they are the file's table, kept for its chunk where its
            # quotes pair up (else the chunk's check of them reports where)
            table = _one_table(tables)
            if raw.count(b'"', start) % 2:  # (as the chunk's check counts them)
                table = None
            bodies.keep(path, raw, reserved, table)
            kept = True
    except (OSError, EOFError, lzma.LZMAError, pa.ArrowException) as exc:
        raise PipelineError(f"cannot read ({_short(exc)})", path=path) from None
    finally:
        if reserved and not kept:
            bodies.release(reserved)
    return first, pieces, [t.schema if isinstance(t, pa.Table) else t for t in tables], hinted


def _file_tables(path: str, header: bytes, samples: list[bytes], null_values, partial: bool,
                 *, whole: bool, threads: bool, hint: dict | None = None) -> list:
    """A file's samples parsed. Samples that hold every record (a file fetched whole) are
    parsed as one, in one call, where each column is then null, int64 or float64 (the types
    that merging theirs gives, :func:`_merge_types`); else each alone (planning's threads
    parse one sample each: no thread pool of pyarrow's beside them where the file is not
    local). With ``hint``, [None] where a value does not parse as its type."""
    if whole and len(samples) > 1:
        table = _sample_table(path, header + b"".join(samples), null_values, True,
                              threads=False, hint=hint)
        if isinstance(table, pa.Table) and all(f.type in _SAME_WHEN_MERGED
                                               for f in table.schema):
            return [table]
        if hint and table is None:
            return [None]
    return [_sample_table(path, header + sample, null_values, partial, threads=threads,
                          hint=hint) for sample in samples]


# the types a later file is parsed with where the files before it agree on them
_HINTED = (pa.int64(), pa.float64())


def _typed_alike(hinted: dict, types: dict) -> bool:
    """Whether a file whose samples all parsed with the ``hinted`` types (those of the files
    merged before it was parsed) merges into ``types`` (those merged before it now) as its
    own inferred types would: a column that parses as float64 infers as int64, float64 or
    null (all merge into a float64 alike), one that parses as int64 infers as int64 or null
    (alike into int64 or float64). Parsing with known types costs 20-25% less CPU than
    inferring them (measured: 1.02 against 1.2-1.36 ms for a file of 200 KiB)."""
    return all(types.get(name) == pa.float64() or
               (typ == pa.int64() and types.get(name) == pa.int64())
               for name, typ in hinted.items())


# types inferred from all records that the samples' own types merge to, whatever the samples
# (not bool: pyarrow reads 0 and 1 as bool, where a sample of them alone is int64)
_SAME_WHEN_MERGED = (pa.null(), pa.int64(), pa.float64())


def _one_table(tables: list) -> pa.Table | None:
    """The samples' tables as one, where each parsed and all have the same types."""
    if not tables or not all(isinstance(t, pa.Table) and t.schema.equals(tables[0].schema)
                             for t in tables):
        return None
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


def _sample_table(path: str, sample: bytes, null_values, partial: bool, *, threads: bool,
                  hint: dict | None = None) -> pa.Table | PipelineError | None:
    if hint:  # a value the hint does not hold: None (the file is parsed again without it)
        return _csv_sample_table(path, sample, null_values, partial=True, threads=threads,
                                 column_types=hint)
    try:
        return _csv_sample_table(path, sample, null_values, partial=partial, threads=threads)
    except PipelineError as exc:
        return exc


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


def _csv_cuts(f, start: int, size: int, blocksize: int, eol: bytes, *, scan: bool
              ) -> tuple[list[int], list[bytes]]:
    """Cut points of about ``blocksize`` bytes at record ends, and type samples of whole
    records: data up to ``3 * _CSV_SAMPLE`` bytes is one sample; data up to
    ``bodies.WHOLE_AT_PLANNING`` bytes, three consecutive samples holding every record (each
    typed on its own, as any sample is); larger data, samples of ``_CSV_SAMPLE`` bytes at
    its start, its middle and its end.

    With ``scan`` (a local file) the record ends are found by counting quotes from the data's
    start: a line end is outside quotes where the quotes before it are even in number (RFC
    4180 doubles a quote inside a quoted field), so a quoted line end is never a cut. An
    object is not read twice: its cuts follow the next line end, and a piece whose quotes are
    odd in number is an error when read (:func:`_check_quotes`).
    """
    cuts = list(range(start + blocksize, size, blocksize))
    n = size - start
    if n <= 3 * _CSV_SAMPLE:
        cuts = _record_ends(f, start, size, cuts, eol) if scan else [
            _next_line_end(f, c, size, eol) for c in cuts]
        f.seek(start)
        return cuts, [f.read()]
    if n <= bodies.WHOLE_AT_PLANNING:
        starts = [start, start + n // 3, start + 2 * n // 3]
        stops = [*starts[1:], size]
    else:
        starts = [start, (start + size) // 2, size - _CSV_SAMPLE]
        stops = [a + _CSV_SAMPLE for a in starts]
    marks = sorted({*cuts, *starts, *stops})
    if scan:
        ends = dict(zip(marks, _record_ends(f, start, size, marks, eol), strict=True))
    else:
        ends = {m: _next_line_end(f, m, size, eol) for m in marks}
    ends[start] = start
    samples = []
    for a, b in zip(starts, stops, strict=True):
        lo, hi = ends[a], ends[b]
        if hi > lo:
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


def _csv_sample_table(path: str, sample: bytes, null_values=(), *, partial: bool = False,
                      threads: bool = True, column_types: dict | None = None
                      ) -> pa.Table | None:
    """A sample parsed with the types pyarrow infers (but ``column_types``); None for a part
    of the file that does not parse on its own (it may begin or end inside quotes: the
    reader reports what is wrong)."""
    try:
        return pacsv.read_csv(pa.BufferReader(sample), parse_options=_parse_options(sample),
                              read_options=pacsv.ReadOptions(use_threads=threads),
                              convert_options=_convert_options(
                                  null_values, column_types=column_types or {}))
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
