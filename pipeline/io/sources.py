"""Input discovery and the chunk plan: which files INPUT names (a file, a folder, a glob, a
URL; an incomplete output of this tool refused), and :func:`plan`, which hands Parquet to
:mod:`pipeline.io.parquet_plan` and CSV to :mod:`pipeline.io.csv_plan`.

A :class:`~pipeline.io.chunking.Chunk` is one unit of work: whole Parquet row groups packed up to
the block size, a byte range of a CSV file cut at record ends, or one whole compressed CSV
file (streamed, never split). :meth:`~pipeline.io.reading.ChunkReader.read_located` turns one
into a ``pyarrow.Table`` and a :class:`~pipeline.io.chunking.RowOrigin` that names the file and
row of any of its rows; nothing here knows about transforms or models.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from ..errors import PipelineError
from . import bodies
from .csv_plan import _plan_csv
from .fetching import drop_ahead
from .formats import default_blocksize, input_format, parse_dtypes, parse_null_values
from .local_storage import LocalStorage
from .parquet_plan import _plan_parquet
from .reading import Source
from .storage import Storage, open_storage


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
         io_concurrency: int | None = None, listed: Callable[[list[str]], None] | None = None
         ) -> Source:
    """Discover INPUT, check that every file has the same schema, and cut it into chunks.

    ``dtype`` maps CSV column names to types (``pyarrow`` types or names such as ``"int64"``)
    that replace the inferred ones. ``null_values`` are the CSV texts read as null besides
    the empty cell (``"NA,N/A"`` or a list); by default only empty cells are null.
    ``listed`` is called with INPUT's files once they are known, before they are read.
    """
    blocksize = blocksize or default_blocksize(input_path)
    paths, fmt, storage = discover(input_path, storage_options)
    if listed is not None:
        listed(paths)
    if io_concurrency and not isinstance(storage, LocalStorage):
        storage.io_concurrency = io_concurrency
    bodies.drop_all()  # bytes kept by an earlier plan of this process
    drop_ahead()
    if fmt == "parquet":
        source = _plan_parquet(paths, blocksize, storage)
    else:
        source = _plan_csv(paths, blocksize, parse_dtypes(dtype), storage,
                           parse_null_values(null_values))
    source.storage = storage
    return source
