"""Input formats: which files are Parquet or CSV (and how compressed), opening them, column
types (numeric, dictionary-encoded), ``--dtype`` and ``--null-values``, the CSV parser's
options, and the default chunk size."""

from __future__ import annotations

import lzma
import os
import sys

import pyarrow as pa
import pyarrow.csv as pacsv

from ..errors import PipelineError
from .local_storage import LocalStorage
from .storage import LOCAL, Storage
from .urls import is_local

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


_BOM = b"\xef\xbb\xbf"


_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


# Compressed CSV: extension -> codec (pyarrow's names; xz is decoded by Python's lzma).
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".xz": "xz"}


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
    schema = table.schema  # (each access makes a new object: compared as the one passed)
    decoded = decoded_schema(schema)
    return table if decoded is schema else table.cast(decoded)


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


def _require_unique(names: list[str], path: str) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise PipelineError(f"duplicate column name {name!r}: each column needs its own "
                                "name", path=path)
        seen.add(name)


def _whole_lines(data: bytes, eol: bytes = b"\n", *, at_end: bool) -> bytes:
    if at_end or eol not in data:
        return data if at_end else b""
    return data[: data.rfind(eol) + 1]


def _convert_options(null_values=(), **kw) -> pacsv.ConvertOptions:
    """Only empty cells are null, and the texts the user names: ``NA`` stays text, ``NaN``
    and ``inf`` in a float column are IEEE values (not pyarrow's default null markers)."""
    return pacsv.ConvertOptions(strings_can_be_null=True, null_values=["", *null_values],
                                **kw)


def _parse_options(data) -> pacsv.ParseOptions:
    """Line ends inside quoted fields are data where the bytes hold a quote (pyarrow's
    parser finds its blocks' ends more slowly then)."""
    return pacsv.ParseOptions(newlines_in_values=quote_count(data, stop_at_one=True) > 0)


def quote_count(data, *, stop_at_one: bool = False) -> int:
    """The double quotes in ``data``: bytes, or a memoryview of bytes kept from planning
    (counted without a copy of them; ``in`` on a memoryview would compare single bytes
    with the quote and find none); with ``stop_at_one``, 0 or 1."""
    if isinstance(data, memoryview):
        import numpy as np

        found = np.frombuffer(data, np.uint8) == 0x22
        return int(found.any()) if stop_at_one else int(np.count_nonzero(found))
    if b'"' not in data:
        return 0
    return 1 if stop_at_one else data.count(b'"')


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


def parquet_schema(arrow_schema: pa.Schema, path: str,
                   planned: tuple[pa.Schema, str] | None = None) -> pa.Schema:
    """A Parquet file's schema as every command sees it (categoricals decoded, no metadata),
    each name once; with ``planned`` (the schema and the file it is from), the same as it."""
    schema = decoded_schema(arrow_schema.remove_metadata())
    _require_unique(schema.names, path)
    if planned is not None and not schema.equals(planned[0]):
        raise PipelineError(f"schema differs from {planned[1]}: "
                            f"{_schema_diff(planned[0], schema)}", path=path)
    return schema


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
