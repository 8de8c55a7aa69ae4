"""Parts: the Parquet/CSV file of one chunk, written whole under a temporary name and
committed by rename (a disk) or staged for the manifest (an object store); the output's
file names; JSON files written atomically; the fault-injection hook of the commit tests."""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
import uuid
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .multipart import drop_started, put_pending, start_pending
from .storage import LOCAL, open_storage

SUCCESS = "_SUCCESS"
# The suffix of a part staged under ``_pending/<attempt>/`` on an object store: not
# ``.parquet``, so that readers which list recursively by extension (dask) skip it.
STAGED = ".staged"
JOB = "_job.json"
CHUNKS = "_chunks.jsonl"

# Random floats gain nothing from dictionary encoding, which made part writes ~5x slower
# when measured; snappy is nearly free.
PARQUET_OPTIONS = {"compression": "snappy", "use_dictionary": False}


def parquet_options(schema: pa.Schema) -> dict:
    """The writer's options for a part of ``schema``: floating-point columns are written
    BYTE_STREAM_SPLIT (a standard Parquet encoding that pyarrow, Polars, DuckDB and Spark 3.2+
    read), which lets snappy find the exponent bytes: sigmoid outputs came out 14% smaller at
    the same write time (measured on 500,000 x 20), so fewer bytes reach the disk and the
    fsync. float16 columns are left PLAIN: DuckDB reads BYTE_STREAM_SPLIT for float and
    double only (the encoding of FIXED_LEN_BYTE_ARRAY came to the format in 2024)."""
    floats = [f.name for f in schema if f.type in (pa.float32(), pa.float64())]
    return {**PARQUET_OPTIONS, "use_byte_stream_split": floats or False}


def part_name(index: int, fmt: str = "parquet") -> str:
    return f"part-{index:05d}.{fmt}"


def write_part_file(data, folder: str, index: int, fmt: str = "parquet") -> tuple[str, int]:
    """Write one part under a temporary name in ``folder``; returns (temporary path, rows).

    ``data`` is a ``pyarrow.Table`` or an iterator of Tables (streamed, one row group each,
    so a part can be larger than memory). :func:`commit_part` makes it final.
    """
    tmp = LOCAL.join(folder, f".{part_name(index, fmt)}.{uuid.uuid4().hex}.tmp")
    tables = [data] if isinstance(data, pa.Table) else data
    rows = 0
    try:
        with LOCAL.open(tmp, "wb") as fh:
            writer = None
            try:
                for table in tables:
                    if writer is None:
                        writer = (pq.ParquetWriter(fh, table.schema,
                                                   **parquet_options(table.schema))
                                  if fmt == "parquet" else pacsv.CSVWriter(fh, table.schema))
                    writer.write_table(table)
                    rows += table.num_rows
            finally:  # (a failed chunk's too: its writer never closed after its file would
                if writer is not None:  # print an error when collected)
                    writer.close()
    except BaseException:
        LOCAL.rm(tmp)
        raise
    return tmp, rows


def commit_part(tmp: str, folder: str, index: int, fmt: str = "parquet") -> None:
    """fsync the temporary part, then rename it to its final name: absent or complete.

    The writer's loop calls this as records arrive, so the wait for the disk overlaps the
    workers' next chunks instead of holding a worker thread.
    """
    LOCAL.fsync(tmp)
    LOCAL.replace(tmp, LOCAL.join(folder, part_name(index, fmt)))


def write_json_atomic(path: str | os.PathLike, obj, *, crash_before_rename: str = "") -> None:
    path = os.fspath(path)
    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
    LOCAL.write_synced(tmp, json.dumps(obj, indent=1, default=str) + "\n")
    crash_point(crash_before_rename)
    LOCAL.replace(tmp, path)
    LOCAL.fsync(LOCAL.parent(path))


def write_json(path: str | os.PathLike, obj, storage_options: dict | None = None) -> None:
    """A JSON file at a path or URL, written whole: on a local disk a temporary name, fsync
    and rename; on an object store one PUT, which readers see whole or not at all."""
    storage, key = open_storage(path, storage_options)
    if storage.atomic_rename:
        write_json_atomic(key, obj)
    else:
        storage.write_text(key, json.dumps(obj, indent=1, default=str) + "\n")


@dataclass(frozen=True)
class PartTarget:
    """Where a worker puts a part (small, picklable).

    Local disk (``storage`` None): under a temporary name in ``folder``, which the writer
    loop fsyncs and renames. Object store: written to the worker's local temporary disk,
    then uploaded whole, staged under ``stage`` as ``part-NNNNN-<attempt>.parquet.staged``
    (one PUT, or a multipart upload completed only at the end), so a part object is absent
    or complete, and a retried or duplicated task rewrites the same object with the same
    bytes; the commit copies it to ``folder`` under its final name. S3 (``pending``): uploaded
    to its final name as a multipart upload left unfinished, invisible until the commit
    completes it (:mod:`pipeline.io.multipart`).
    """

    folder: str
    fmt: str = "parquet"
    storage: object = None
    attempt: str = ""
    stage: str = ""  # object store: where the part is uploaded until the commit copies it
    # S3: uploaded to its final name, the multipart upload completed at the commit
    pending: bool = False
    # object store, chunks on threads of this process: the part is left on the local disk and
    # the writer loop uploads it (:func:`upload_part`) while the chunk threads go on
    defer_upload: bool = False

    def staged(self, index: int) -> str:
        """Where the part is uploaded: staged until the commit, or its final place."""
        if self.stage:
            return self.storage.join(self.stage, self.name(index) + STAGED)
        return self.storage.join(self.folder, self.name(index))

    def name(self, index: int) -> str:
        if not self.attempt:
            return part_name(index, self.fmt)
        return f"part-{index:05d}-{self.attempt}.{self.fmt}"


def write_part(data, target: PartTarget, index: int) -> tuple[int, str | None, dict]:
    """Write one part of ``target`` from ``data`` (a ``pyarrow.Table`` or an iterator of
    Tables) on a worker; returns (rows, the temporary path that :func:`commit_part` makes
    final or :func:`upload_part` uploads (``defer_upload``), or None when the part is already
    uploaded whole, and what the upload reports)."""
    if target.storage is None:
        tmp, rows = write_part_file(data, target.folder, index, target.fmt)
        return rows, tmp, {}
    if target.pending:  # S3: the upload's first request made while the part is computed
        start_pending(target.storage, target.staged(index))
    try:
        local, rows = write_part_file(data, tempfile.gettempdir(), index, target.fmt)
    except BaseException:
        if target.pending:
            drop_started(target.storage, target.staged(index))
        raise
    if target.defer_upload:
        return rows, local, {}
    return rows, None, upload_part(local, target, index)


def upload_part(local: str, target: PartTarget, index: int) -> dict:
    """Upload a part written on the local disk to its staged place (one PUT, or a multipart
    upload completed only at the end; ``pending``: to its final name, left unfinished), then
    delete the local file; returns what the upload reports (size, ETag or the upload's id)."""
    try:
        if target.pending:
            return put_pending(target.storage, target.staged(index), local)
        return target.storage.put_file(local, target.staged(index))
    finally:
        LOCAL.rm(local)


def crash_point(name: str) -> None:
    """Fault injection for the crash-consistency tests: SIGKILL this process at the named
    step when ``PIPELINE_KILL_AT`` names it (``part-K``: after the K-th part this run
    commits; ``before-copy`` (object stores), ``before-success``, ``success-tmp``,
    ``after-success``, ``swap-exchanged``, ``swap-moved-old``). ``PIPELINE_PAUSE_AT``: at
    that step, create the file ``PIPELINE_PAUSE_FILE`` and wait until it is deleted (the
    concurrency tests hold a run there)."""
    if os.environ.get("PIPELINE_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
    flag = os.environ.get("PIPELINE_PAUSE_FILE")
    if flag and os.environ.get("PIPELINE_PAUSE_AT") == name:
        LOCAL.write_text(flag, str(os.getpid()))
        while LOCAL.exists(flag):
            time.sleep(0.02)
