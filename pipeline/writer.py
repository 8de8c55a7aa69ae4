"""The one output writer: atomic parts, a per-chunk log, and ``_SUCCESS`` written last.

Layout of an output folder (see the README):

- ``part-00000.parquet`` …: one part per input chunk, written under a temporary name, fsynced,
  then renamed, so a part is either absent or complete.
- ``_job.json``: the job's parameters and input fingerprint, written first; ``--resume``
  checks it.
- ``_chunks.jsonl``: one record per chunk, appended as chunks finish.
- ``_SUCCESS``: the manifest, written last and atomically; until it exists the folder is not
  an output.

``--overwrite`` builds the new output in a hidden sibling folder and swaps it in only when it
is complete, so the old output stays whole until then. Every run first takes the output's
lease (:mod:`pipeline.lease`): one writer per output.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
import uuid
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .errors import PipelineError
from .identity import job_difference
from .lease import hold
from .monitor import RssSampler
from .storage import LOCAL, PreconditionFailed, is_local, is_url, open_storage

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
            for table in tables:
                if writer is None:
                    writer = (pq.ParquetWriter(fh, table.schema, **parquet_options(table.schema))
                              if fmt == "parquet" else pacsv.CSVWriter(fh, table.schema))
                writer.write_table(table)
                rows += table.num_rows
            if writer is not None:
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
    bytes; the commit copies it to ``folder`` under its final name.
    """

    folder: str
    fmt: str = "parquet"
    storage: object = None
    attempt: str = ""
    stage: str = ""  # object store: where the part is uploaded until the commit copies it

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
    final, or None when the part is already uploaded whole, and what the upload reports)."""
    if target.storage is None:
        tmp, rows = write_part_file(data, target.folder, index, target.fmt)
        return rows, tmp, {}
    local, rows = write_part_file(data, tempfile.gettempdir(), index, target.fmt)
    try:
        uploaded = target.storage.put_file(local, target.staged(index))
    finally:
        LOCAL.rm(local)
    return rows, None, uploaded


def read_job(folder: str | os.PathLike) -> dict | None:
    """The ``_job.json`` of an output of this tool, or None when ``folder`` is not one."""
    try:
        job = json.loads(LOCAL.read_text(LOCAL.join(folder, JOB)))
    except (OSError, ValueError):
        return None
    return job if isinstance(job, dict) and isinstance(job.get("command"), str) else None


# What --resume compares, with the words of its refusal.
_IDENTITY = {
    "command": "command",
    "params": "parameters",
    "input": "input files (paths, sizes or times)",
    "plan": "chunk plan (another blocksize?)",
    "device": "device",
}


def _differing_key(old: dict, job: dict) -> str | None:
    """The first part of the job identity in which ``old`` differs from ``job``, or None."""
    return next((k for k in _IDENTITY if old.get(k) != job.get(k)), None)


def _resume_refused(old: dict, job: dict, path: str) -> PipelineError:
    """The refusal of a resume whose job identity differs from ``old``'s, naming what
    differs first (a parameter with both values, an input file, the plan, ...)."""
    what, named = job_difference(old, job, _IDENTITY)
    return PipelineError(f"cannot resume: {what}; rerun with overwrite=True", path=path,
                         params=(*named, "overwrite"))


def _is_empty_dir(p: Path) -> bool:
    return LOCAL.isdir(p) and not LOCAL.listdir(p)


def _matching(folder: Path, pattern: str) -> list[Path]:
    return [folder / name for name in LOCAL.listdir(folder) if fnmatch(name, pattern)]


@dataclass
class OutputFolder:
    """Decides where a run writes, from what is already at ``path`` and the flags.

    ``path`` is resolved (``..`` and symlinks) before anything is decided; ``display`` is
    the user's spelling, used in messages.
    """

    path: Path
    job: dict
    overwrite: bool = False
    resume: bool = False

    def __post_init__(self) -> None:
        self.display = os.fspath(self.path)
        self.path = Path(LOCAL.realpath(self.path))
        self.staging: Path | None = None
        self.kept: dict[int, dict] = {}
        self.complete_manifest: dict | None = None
        self.fresh = False  # OUT was absent or empty: it holds nothing of the user's
        self.made = False   # this run made OUT (else it was the user's empty folder)
        self.lease = None

    def release(self) -> None:
        """Give up the lease on OUT (the end of the run, whatever its outcome)."""
        if self.lease is not None:
            self.lease.release()

    @property
    def folder(self) -> Path:
        return self.staging or self.path

    @property
    def _new(self) -> Path:
        """This attempt's staging folder (--overwrite): a name unique to the attempt."""
        return self.path.parent / f".{self.path.name}.pipeline-new-{self.lease.attempt}"

    def _staged(self) -> list[Path]:
        """Staging folders of earlier attempts beside OUT (a killed --overwrite's), those
        of the same job first."""
        prefix = f".{self.path.name}.pipeline-new"
        found = [self.path.parent / n for n in LOCAL.listdir(self.path.parent)
                 if n.startswith(prefix) and read_job(self.path.parent / n) is not None]
        return sorted(found, key=lambda f: not self._same_job(read_job(f)))

    def _drop_staged(self, keep: Path | None = None) -> None:
        for folder in self._staged():
            if folder != keep:
                LOCAL.rmtree(folder)

    @property
    def _old(self) -> Path:
        return self.path.parent / f".{self.path.name}.pipeline-old"

    def _error(self, message: str, *params: str) -> PipelineError:
        return PipelineError(message, path=self.display, params=params)

    def open(self, expected_rows: dict[int, int | None], fmt: str = "parquet") -> None:
        """Take the lease on OUT, check the flags against what exists, then make the folder
        ready to write."""
        self.lease = hold(LOCAL, os.fspath(self.path), self.display)
        p = self.path
        if LOCAL.exists(p) and not LOCAL.isdir(p):
            raise self._error("output exists and is not a folder")
        self._finish_interrupted_swap()
        if not LOCAL.exists(p) or _is_empty_dir(p):
            self._drop_staged()  # a stale half-built --overwrite of a folder gone since
            self.fresh = True
            self.made = not LOCAL.exists(p)
            LOCAL.makedirs(p)
            write_json_atomic(p / JOB, self.job)
            return
        current = read_job(p)
        if self.resume:
            if current is not None and LOCAL.exists(p / SUCCESS) and self._same_job(current):
                # complete already (an --overwrite killed after its swap leaves the old
                # output in the hidden sibling: it is ours, and replaced)
                self.complete_manifest = json.loads(LOCAL.read_text(p / SUCCESS))
                self._drop_staged()
                return
            staged = self._staged()
            if staged:  # an interrupted --overwrite: continue it
                self.staging = staged[0]
                self._drop_staged(keep=self.staging)
            self._open_resume(expected_rows, fmt)
            return
        if not self.overwrite:
            raise self._error("output already exists; pass overwrite=True to replace it or "
                              "resume=True to continue it", "overwrite", "resume")
        if current is None:
            raise self._error(f"overwrite=True replaces only an output of this tool, and "
                              f"this folder has no readable {JOB}; not touched", "overwrite")
        self._drop_staged()
        self.staging = self._new
        LOCAL.makedirs(self.staging)
        write_json_atomic(self.staging / JOB, self.job)

    def _same_job(self, old: dict) -> bool:
        return _differing_key(old, self.job) is None

    def _finish_interrupted_swap(self) -> None:
        """Without RENAME_EXCHANGE the swap is two renames; a kill between them leaves no
        OUT and a complete new output beside it: finish the swap. Only then (the old output
        moved aside to ``.OUT.pipeline-old``): after a RENAME_EXCHANGE the sibling holds the
        *old* output, which must not come back if the user has since deleted OUT."""
        if LOCAL.exists(self.path) or not LOCAL.exists(self._old):
            return
        for new in self._staged():
            if LOCAL.exists(new / SUCCESS):
                LOCAL.replace(new, self.path)
                LOCAL.fsync(self.path.parent)
                LOCAL.rmtree(self._old, ignore_errors=True)
                return

    def _open_resume(self, expected_rows: dict[int, int | None], fmt: str) -> None:
        p = self.folder
        old = read_job(p)
        if old is None:
            raise self._error(f"cannot resume: no readable {JOB}, so this is not an output "
                              "of this tool")
        if _differing_key(old, self.job) is not None:
            raise _resume_refused(old, self.job, self.display)
        if LOCAL.exists(p / SUCCESS):
            self.complete_manifest = json.loads(LOCAL.read_text(p / SUCCESS))
            return
        for stray in _matching(p, "*.tmp"):  # parts, _chunks.jsonl or _SUCCESS cut short
            LOCAL.rm(stray)
        records = {}
        if LOCAL.exists(p / CHUNKS):
            for line in LOCAL.read_text(p / CHUNKS).splitlines():
                try:
                    rec = json.loads(line)
                    records[int(rec["chunk"])] = rec
                except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                    continue  # a line cut by the interruption
        planned = {part_name(i, fmt): i for i in expected_rows}
        for part in _matching(p, "part-*"):
            index = planned.get(part.name)
            if index is None:  # not a part of this plan: never left beside the manifest
                LOCAL.rm(part)
                continue
            # A part under its final name was renamed after fsync, so it is complete; its
            # footer and row count are checked all the same, against the plan's count
            # (Parquet) or the chunk's record (CSV input: no count before reading).
            num_rows = _part_rows(part, fmt)
            rec = records.get(index)
            expected = _expected_part_rows(expected_rows[index], rec)
            if num_rows is None or expected is None or num_rows != expected:
                LOCAL.rm(part)
                continue
            self.kept[index] = rec or {"chunk": index, "part": part.name, "rows": num_rows}
        # Keep only the records of the parts kept, in one atomic rewrite.
        LOCAL.write_text(p / CHUNKS, "".join(json.dumps(self.kept[i]) + "\n"
                                             for i in sorted(self.kept)))

    def discard(self, *, bad_input: bool) -> None:
        """A run that failed (not interrupted: Ctrl-C and SIGKILL leave it for --resume).

        A half-built --overwrite output is dropped (the old one is untouched), and so is a
        folder this very run created and that failed on bad input: it held nothing of the
        user's, and the corrected rerun needs no flag. A folder that was the user's and
        empty is kept, emptied of what this run wrote, for the same reason.
        """
        if self.staging is not None:
            LOCAL.rmtree(self.staging, ignore_errors=True)
            self.staging = None
        elif bad_input and self.fresh and self.made:
            LOCAL.rmtree(self.path, ignore_errors=True)
        elif bad_input and self.fresh:  # the user's empty folder: kept, emptied of this run's
            for name in LOCAL.listdir(self.path):
                if name in (JOB, CHUNKS, SUCCESS) or fnmatch(name, "part-*") or \
                        name.endswith(".tmp"):
                    LOCAL.rm(LOCAL.join(self.path, name))

    def target(self, fmt: str) -> PartTarget:
        return PartTarget(str(self.folder), fmt)

    def marker(self) -> tuple[object, str]:
        """(storage, path) of a file this run wrote, that every worker must see."""
        return LOCAL, str(self.folder / JOB)

    def append_record(self, record: dict) -> None:
        LOCAL.append_text(self.folder / CHUNKS, json.dumps(record) + "\n")

    def finish(self, manifest: dict, extras: dict | None = None, *,
               records: dict[int, dict] | None = None) -> None:
        LOCAL.fsync(self.folder)  # the parts' renames are durable before _SUCCESS
        for name, obj in (extras or {}).items():
            write_json_atomic(self.folder / name, obj)
        crash_point("before-success")
        write_json_atomic(self.folder / SUCCESS, manifest, crash_before_rename="success-tmp")
        crash_point("after-success")
        self.swap_in()

    def swap_in(self) -> None:
        """Put the complete new output built beside OUT in its place (--overwrite).

        On Linux one ``renameat2(RENAME_EXCHANGE)`` swaps the two folders, so there is no
        moment without an output at OUT; elsewhere two renames, whose interruption
        :meth:`_finish_interrupted_swap` completes.
        """
        if self.staging is None:
            return
        if LOCAL.exchange(self.staging, self.path):
            crash_point("swap-exchanged")
            LOCAL.fsync(self.path.parent)
            LOCAL.rmtree(self.staging)  # the old output, now in the hidden sibling
        else:
            if LOCAL.exists(self._old):
                LOCAL.rmtree(self._old)
            LOCAL.replace(self.path, self._old)
            crash_point("swap-moved-old")
            LOCAL.replace(self.staging, self.path)
            LOCAL.fsync(self.path.parent)
            LOCAL.rmtree(self._old)
        self.staging = None


PENDING = "_pending"


class ManifestFolder:
    """An output on a store without rename or append (S3, GCS, Azure): committed by one PUT
    of its manifest, ``_SUCCESS``, which lists every part with its size, ETag and rows.

    Steps (README, "The commit on object stores"):

    0. The lease on OUT (:mod:`pipeline.lease`): one writer at a time.
    1. A run (an *attempt*, with a random id) writes ``_pending/<id>/_job.json``. Nothing
       at OUT's top level changes, so an existing output stays whole and readable.
    2. Each part is uploaded whole, staged, as ``_pending/<id>/part-NNNNN-<id>.parquet.staged``
       (invisible to plain listing readers); then its record is one object,
       ``_pending/<id>/NNNNN.json`` (rows, size, ETag).
    3. The lease renewed, the staged parts are copied to ``part-NNNNN-<id>.parquet``.
    4. Commit: ``_SUCCESS``, one PUT, conditional on the ``_SUCCESS`` the run started from.
    5. Publish and clean up: ``_chunks.jsonl`` (the records merged), ``_job.json`` and the
       extra files (``_truth.json``, under ``_pending/<id>/`` until the commit) are PUT;
       objects the new manifest does not list (an old output's parts, other attempts) and
       ``_pending/<id>`` are deleted.

    ``--resume`` finds the attempt with the same identity, keeps each staged part whose
    record and object (HEAD: size and ETag) agree, and redoes the rest; after step 4 it only
    cleans up.
    """

    def __init__(self, storage, root: str, job: dict, *, overwrite: bool = False,
                 resume: bool = False, display: str | None = None) -> None:
        self.storage = storage
        self.root = root.rstrip("/")
        self.job = job
        self.overwrite = overwrite
        self.resume = resume
        self.display = display or storage.url(root)
        self.kept: dict[int, dict] = {}
        self.complete_manifest: dict | None = None
        self.attempt = ""
        self.fresh = False
        self.listing: set[str] = set()   # OUT's objects when the run started
        self.written: list[str] = []     # the records this run wrote
        self.success_etag: str | None = None  # the _SUCCESS this run started from
        self.lease = None

    def release(self) -> None:
        """Give up the lease on OUT (the end of the run, whatever its outcome)."""
        if self.lease is not None:
            self.lease.release()

    @property
    def folder(self) -> str:
        return self.root

    def _path(self, *names: str) -> str:
        return self.storage.join(self.root, *names)

    def _error(self, message: str, *params: str) -> PipelineError:
        return PipelineError(message, path=self.display, params=params)

    def _read_json(self, path: str) -> dict | None:
        try:
            obj = json.loads(self.storage.read_text(path))
        except (OSError, ValueError):
            return None
        return obj if isinstance(obj, dict) else None

    def _name(self, path: str) -> str:
        return path[len(self.root):].lstrip("/")

    def _attempts(self) -> dict[str, dict]:
        """The interrupted attempts in the listing, by id, with their identities."""
        found = {}
        for name in self.listing:
            parts = name.split("/")
            if len(parts) == 3 and parts[0] == PENDING and parts[2] == JOB:
                job = self._read_json(self._path(name))
                if job is not None:
                    found[parts[1]] = job
        return found

    def _same_job(self, old: dict) -> bool:
        return _differing_key(old, self.job) is None

    def open(self, expected_rows: dict[int, int | None], fmt: str = "parquet") -> None:
        self.lease = hold(self.storage, self.root, self.display)
        # one listing of OUT answers what is there: requests cost more than bytes here
        self.listing = {self._name(p) for p in self.storage.find(self.root)}
        current = None
        if SUCCESS in self.listing:
            found = self.storage.read_versioned(self._path(SUCCESS))
            if found is not None:
                self.success_etag = found[1]
                try:
                    current = json.loads(found[0])
                except ValueError:
                    current = None
                current = current if isinstance(current, dict) else None
        attempts = self._attempts()
        if attempts:  # an earlier attempt was cut short: its unfinished uploads are dead
            self.storage.abort_uploads(self._path(PENDING))  # (this run holds the lease)
        if self.resume:
            if current is not None and self._same_job(current):
                self.complete_manifest = current  # killed after its commit: finish up
                # the attempt whose parts _SUCCESS lists (another attempt of the same job,
                # interrupted earlier, may be pending too)
                listed = [str(p.get("part")) for p in current.get("parts", [])
                          if isinstance(p, dict)]
                attempt = next((a for a, job in attempts.items() if self._same_job(job) and
                                any(f"-{a}." in name for name in listed)), None)
                if attempt is not None:
                    self._publish(attempt)
                self._cleanup(current)
                return
            for attempt, job in attempts.items():
                if self._same_job(job):
                    self.attempt = attempt
                    self._open_resume(expected_rows, fmt)
                    return
            if attempts:
                old = next(iter(attempts.values()))
                raise _resume_refused(old, self.job, self.display)
        exists = bool(self.listing)
        if exists and not (self.overwrite or self.resume):
            raise self._error("output already exists; pass overwrite=True to replace it or "
                              "resume=True to continue it", "overwrite", "resume")
        ours = current is not None or attempts or (
            JOB in self.listing and self._read_json(self._path(JOB)) is not None)
        if exists and not ours:
            raise self._error(f"overwrite=True replaces only an output of this tool, and "
                              f"this folder has no readable {JOB}; not touched", "overwrite")
        if exists and self.resume and current is not None:
            raise self._error("cannot resume: the output is complete with other parameters; "
                              "rerun with overwrite=True", "overwrite")
        self.fresh = not exists
        self.attempt = uuid.uuid4().hex[:12]
        self.storage.makedirs(self._path(PENDING, self.attempt))
        self.storage.write_text(self._path(PENDING, self.attempt, JOB),
                                json.dumps({**self.job, "attempt": self.attempt}))

    def _open_resume(self, expected_rows: dict[int, int | None], fmt: str) -> None:
        target = self.target(fmt)
        prefix = f"{PENDING}/{self.attempt}/"
        for name in sorted(self.listing):
            if not name.startswith(prefix) or not name.endswith(".json") or \
                    name.endswith("/" + JOB):
                continue
            rec = self._read_json(self._path(name))
            try:
                index = int(rec["chunk"])
            except (TypeError, KeyError, ValueError):
                continue
            if index not in expected_rows or rec.get("part") != target.name(index):
                continue
            if _expected_part_rows(expected_rows[index], rec) is None:
                continue
            head = self.storage.head(target.staged(index))
            if head is None or head.get("size") != rec.get("size") or (
                    rec.get("etag") is not None and head.get("etag") != rec.get("etag")):
                continue
            self.kept[index] = rec

    def target(self, fmt: str) -> PartTarget:
        return PartTarget(self.root, fmt, self.storage, self.attempt,
                          stage=self._path(PENDING, self.attempt))

    def marker(self) -> tuple[object, str]:
        """(storage, path) of a file this run wrote, that every worker must see."""
        return self.storage, self._path(PENDING, self.attempt, JOB)

    def append_record(self, record: dict) -> None:
        self.storage.write_text(self._path(PENDING, self.attempt, f"{record['chunk']:05d}.json"),
                                json.dumps(record))
        self.written.append(f"{PENDING}/{self.attempt}/{record['chunk']:05d}.json")

    def finish(self, manifest: dict, extras: dict | None = None, *,
               records: dict[int, dict] | None = None) -> None:
        # extras (``_truth.json``) describe the new output: kept with the attempt until the
        # commit, then published, so that the old output stays whole until then
        texts = {name: json.dumps(obj, indent=1, default=str)
                 for name, obj in (extras or {}).items()}
        for name, text in texts.items():
            self.storage.write_text(self._path(PENDING, self.attempt, name), text)
            self.written.append(f"{PENDING}/{self.attempt}/{name}")
        self.lease.check()
        crash_point("before-copy")
        # the parts, staged under _pending/<id>/, copied to their final names at OUT's top
        # level (server-side): plain listing readers see them from here on
        names = [p["part"] for p in manifest.get("parts", [])]
        stage = self._path(PENDING, self.attempt)
        self.storage.copy_many([self.storage.join(stage, n + STAGED) for n in names],
                               [self._path(n) for n in names])
        crash_point("before-success")
        self._commit(manifest, names)
        crash_point("after-success")
        self._publish(self.attempt, records, texts)
        self._cleanup(manifest)

    def _commit(self, manifest: dict, names: list[str]) -> None:
        """``_SUCCESS``, written only over the state this run started from: If-Match the
        ETag it read (If-None-Match when there was none); else nothing is committed and the
        copied parts are deleted."""
        text = json.dumps(manifest, indent=1, default=str)
        try:
            if self.success_etag is None:
                self.storage.create_text(self._path(SUCCESS), text)
            else:
                self.storage.replace_if(self._path(SUCCESS), text, self.success_etag)
        except (FileExistsError, PreconditionFailed):
            self.storage.rm_many([self._path(n) for n in names])
            raise self._error("another run committed this output since this run started; "
                              "not committed (its parts are kept for resume=True)",
                              "resume") from None

    def _publish(self, attempt: str, records: dict[int, dict] | None = None,
                 extras: dict[str, str] | None = None) -> None:
        """After the commit: the attempt's records merged into ``_chunks.jsonl``, its extra
        files and its ``_job.json`` at the top (before the commit they would have described
        an output that was not yet the output). ``records`` and ``extras``: this run's, in
        memory; else read back."""
        job = dict(self.job)
        if records is None:
            records, extras = {}, {}
            prefix = f"{PENDING}/{attempt}/"
            for name in sorted(self.listing):
                if not name.startswith(prefix):
                    continue
                base = name[len(prefix):]
                if base.endswith(STAGED):
                    continue
                if base.startswith("_") and base != JOB:
                    extras[base] = self.storage.read_text(self._path(name))
                    continue
                obj = self._read_json(self._path(name))
                if obj is not None and base == JOB:
                    job = obj
                elif obj is not None and "chunk" in obj:
                    records[int(obj["chunk"])] = obj
        for name, text in (extras or {}).items():
            self.storage.write_text(self._path(name), text)
        self.storage.write_text(self._path(CHUNKS), "".join(
            json.dumps(records[i]) + "\n" for i in sorted(records)))
        job.pop("attempt", None)
        self.storage.write_text(self._path(JOB), json.dumps(job, indent=1))

    def _cleanup(self, manifest: dict) -> None:
        """After the commit: delete what the manifest does not list (an old output's parts,
        other attempts) and the pending records, in batches, with no new listing."""
        listed = {p["part"] for p in manifest.get("parts", [])}
        mine = {f"{PENDING}/{self.attempt}/{JOB}", *self.written,
                *(f"{PENDING}/{self.attempt}/{name}{STAGED}" for name in listed)
                } if self.attempt else set()
        stale = [self._path(name) for name in sorted(self.listing | mine)
                 if name.startswith(PENDING + "/") or (name.startswith("part-") and
                                                       name not in listed)]
        self.storage.rm_many(stale)

    def discard(self, *, bad_input: bool) -> None:
        """A failed run (not interrupted): an --overwrite's or a bad input's attempt is
        deleted, parts and records; the old output is untouched. Other failures keep the
        attempt for --resume, as on a local disk."""
        if not self.attempt or not (bad_input or self.overwrite):
            return
        ours = [self._name(p) for p in self.storage.find(self.root)]
        self.storage.rm_many([self._path(name) for name in ours
                              if name.startswith(f"{PENDING}/{self.attempt}/") or
                              (name.startswith("part-") and f"-{self.attempt}." in name)])

    def swap_in(self) -> None:
        """Nothing to swap: the manifest PUT was the commit."""


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


def _expected_part_rows(planned: int | None, rec: dict | None) -> int | None:
    """The rows a kept part must have: its record's (which, with the rows it dropped, must
    add up to the plan's count where the plan knows it), else the plan's."""
    if rec is None or not isinstance(rec.get("rows"), int):
        return planned
    if planned is not None and rec["rows"] + rec.get("rows_dropped", 0) != planned:
        return None
    return rec["rows"]


def _part_rows(part: Path, fmt: str) -> int | None:
    try:
        if fmt == "parquet":
            return pq.read_metadata(part).num_rows
        return pacsv.read_csv(part).num_rows
    except (pa.ArrowException, OSError):
        return None


def open_output(out: str | os.PathLike, job: dict, *, overwrite: bool = False,
                resume: bool = False, storage_options: dict | None = None
                ) -> OutputFolder | ManifestFolder:
    """The output folder OUT, by what its store can do: renamed parts on a local disk
    (:class:`OutputFolder`), a manifest commit on an object store (:class:`ManifestFolder`)."""
    storage, root = open_storage(out, storage_options)
    if storage.atomic_rename:
        return OutputFolder(Path(root), job, overwrite=overwrite, resume=resume)
    return ManifestFolder(storage, root, job, overwrite=overwrite, resume=resume,
                          display=os.fspath(out))


def build_manifest(job: dict, records: dict[int, dict], sources: dict[int, str], *,
                   fmt: str, seconds: float, resumed_parts: int, kept=()) -> dict:
    """``_SUCCESS``: the job, each part with its rows and source, the totals."""
    parts = []
    for i in sorted(records):
        rec = records[i]
        part = {"part": rec.get("part") or part_name(i, fmt), "rows": rec["rows"],
                "source": sources[i]}
        part.update({k: rec[k] for k in ("size", "etag") if rec.get(k) is not None})
        parts.append(part)
    peaks = [r.get("peak_rss_bytes", 0) for r in records.values()]
    manifest = {
        **job,
        "parts": parts,
        "rows": sum(p["rows"] for p in parts),
        "seconds": round(seconds, 6),
        "peak_rss_bytes": max(peaks + [RssSampler.get().rss()]),
        "resumed_parts": resumed_parts,
        # the rows of the parts kept: the report's rate counts only this run's rows
        "resumed_rows": sum(records[i]["rows"] for i in kept),
    }
    dropped = [r["rows_dropped"] for r in records.values() if "rows_dropped" in r]
    if dropped:
        manifest["rows_dropped"] = sum(dropped)
    return manifest


def job_identity(command: str, params: dict, fingerprint) -> dict:
    return {"command": command, "params": params, "input": fingerprint}


def refuse_overlap(out: str | os.PathLike, inputs: list[str], *, input_arg=None,
                   what: str = "OUT") -> None:
    """OUT equal to, inside or containing the input is refused before any work (after
    resolving ``..`` and symlinks): --overwrite would delete the data it reads, and a
    folder input would read its own output.

    ``inputs`` are the input files; ``input_arg`` the INPUT as given (a folder counts as
    the input, a glob as its files). URLs are compared as written, but for the scheme
    (``s3a://`` is ``s3://``, ...; ``file://`` is the local disk: resolved as a path).
    """
    target = _resolved(out)
    roots = [_resolved(p) for p in inputs]
    if input_arg is not None and not is_url(input_arg) and LOCAL.isdir(input_arg):
        roots.append(_resolved(input_arg))
    elif input_arg is not None and is_url(input_arg) and not any(c in str(input_arg)
                                                                 for c in "*?["):
        roots.append(_resolved(input_arg))
    for root in roots:
        if target == root or _inside(target, root) or _inside(root, target):
            relation = ("is" if target == root else
                        "is inside" if _inside(target, root) else "contains")
            raise PipelineError(f"{what} {relation} the input {root}; choose another "
                                f"{what}", path=os.fspath(out))


# Schemes that name the same store (one fsspec file system each): compared as the first.
_SAME_STORE = {"s3a": "s3", "gcs": "gs", "az": "abfs", "abfss": "abfs"}


def _resolved(path) -> str:
    text = os.fspath(path)
    if is_local(text):  # a path, or file:// (the local disk)
        return LOCAL.realpath(open_storage(text)[1])
    scheme, rest = text.split("://", 1)
    scheme = scheme.lower()
    return f"{_SAME_STORE.get(scheme, scheme)}://{rest.rstrip('/')}"


def _inside(child: str, parent: str) -> bool:
    sep = "/" if is_url(parent) else os.sep
    return child.startswith(parent.rstrip(sep) + sep)
