"""Chunk tasks: the protocol every task kind follows, and the code that runs one, measures
it and hands its tables to the writer.

A task is small and picklable: it names its chunk and how to produce its table, and runs the
same in a thread of this process or on a Dask worker. The kinds: ``FileChunkTask`` and
``PartitionTask`` (:mod:`pipeline.run.tasks`), ``TrainChunk`` (:mod:`pipeline.api`),
``GenerateTask`` (:mod:`pipeline.run.synthetic`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from ..config.exec_options import validate_exec_options
from ..errors import PipelineError
from ..io.fetching import drop_ahead
from ..io.parts import PartTarget, commit_part, crash_point, upload_part, write_part
from ..io.storage import LOCAL
from ..io.urls import redact
from ..io.writer import build_manifest, open_output
from .monitor import ChunkTimer, RssSampler
from .progress import Progress


@runtime_checkable
class ChunkTask(Protocol):
    """What every chunk task has.

    ``produce()`` returns a ``pyarrow.Table`` or an iterable of Tables (a part larger than
    memory is streamed); an iterable may carry ``record_extras``, a dict added to the chunk's
    record when it is exhausted (``rows_dropped``).
    """

    @property
    def index(self) -> int:
        """The chunk's place in the input order (its part's number)."""

    @property
    def source_path(self) -> str:
        """Where its rows come from, in words (a file, a partition, generated rows)."""

    @property
    def rows(self) -> int | None:
        """The rows of its part, when known before the run (what ``resume`` checks)."""

    @property
    def plan_key(self) -> Any:
        """What it reads, as JSON: part of the job's identity (another blocksize, another
        plan)."""

    def produce(self) -> pa.Table | Iterable[pa.Table]:
        """The chunk's table(s)."""


def run_chunk_task(task: ChunkTask, *, target: PartTarget, device: str
                   ) -> tuple[dict, str | None]:
    """Produce one chunk's tables and write its part (on a worker), measured; returns its
    record and the temporary path the writer loop commits (None when already uploaded)."""
    with ChunkTimer() as timer:
        data = task.produce()
        rows, tmp, uploaded = write_part(data, target, task.index)
    rec = timer.record(chunk=task.index, part=target.name(task.index),
                       source=task.source_path, rows=rows, device=device).to_dict()
    rec.update(uploaded)
    rec.update(getattr(data, "record_extras", {}))  # e.g. rows_dropped
    return rec, tmp


def plan_digest(tasks: list[ChunkTask]) -> dict:
    """The chunk plan in a few bytes: the number of chunks and a hash of what each reads
    (files and row groups or byte ranges); another blocksize gives another plan."""
    keys = json.dumps([[t.index, t.plan_key] for t in tasks], default=str)
    return {"chunks": len(tasks), "sha256": hashlib.sha256(keys.encode()).hexdigest()}


def _require_workers_see(folder, executor) -> None:
    """Before any work: the workers write the parts into OUT, so each must see it (a local
    folder of the client is not on a cluster's other machines); else nothing is left."""
    worker = executor.worker_not_seeing(folder.marker)
    if worker is None:
        return
    if not folder.resume:  # a resumed run's folder holds an earlier run's work: kept
        folder.discard(bad_input=True)
    raise PipelineError(f"the output folder cannot be seen on worker {worker}, which would "
                        "write its parts there; choose an OUT that every worker sees (a "
                        "shared disk, or a URL such as s3://...)", path=str(folder.display))


def write_parts(tasks: list[ChunkTask], out: str | os.PathLike, *, executor, job: dict,
                overwrite: bool = False, resume: bool = False, device: str = "cpu",
                progress: bool = False, total_rows: int | None = None,
                fmt: str = "parquet", extras: dict | None = None,
                storage_options: dict | None = None, early=None) -> dict:
    """Run every chunk task through ``executor``, writing one part each; return the manifest.

    The job's identity (``job``, with the chunk plan and the device added here) is what
    ``resume`` compares; ``extras`` are JSON files written just before ``_SUCCESS``. OUT on
    a store without rename (an object store) is committed by its manifest
    (:class:`~pipeline.io.writer.ManifestFolder`), surveyed already where ``early``
    (:class:`~pipeline.io.writer.EarlyOutput`) did it while the input was planned.
    """
    validate_exec_options({"overwrite": overwrite, "resume": resume})
    t0 = time.perf_counter()
    job = {**job, "plan": plan_digest(tasks), "device": device}
    if storage_options:
        job["storage_options"] = redact(storage_options)
    folder = open_output(out, job, overwrite=overwrite, resume=resume,
                         storage_options=storage_options, early=early)
    folder.tasks_may_repeat = executor.kind != "local"
    try:  # the lease on OUT (taken by open(), or by early) is given up however the run ends
        if executor.kind == "local" and not resume:  # (an object store) the first chunks'
            for task in tasks[:executor.slots]:  # bytes come while OUT is opened
                getattr(task, "prefetch", lambda: None)()
        folder.open({t.index: t.rows for t in tasks}, fmt)
        if folder.complete_manifest is not None:
            folder.swap_in()  # an --overwrite killed between its _SUCCESS and the swap
            return folder.complete_manifest
        todo = [t for t in tasks if t.index not in folder.kept]
        if todo:
            _require_workers_see(folder, executor)
        records = dict(folder.kept)
        bar = Progress(total_rows, len(tasks), enabled=progress)
        for rec in folder.kept.values():
            bar.update(rec.get("rows", 0))
        target = folder.target(fmt)
        uploads = None
        if target.storage is not None and executor.kind == "local":
            target = replace(target, defer_upload=True)
            uploads = _Uploads(target, executor.slots, folder.append_record)
        fn = functools.partial(run_chunk_task, target=target, device=device)
        if uploads is not None:
            fn = functools.partial(_tracked, fn, uploads)
        done = 0

        def counted(rec) -> None:  # a part whose record is written
            nonlocal done
            bar.update(rec["rows"])
            done += 1
            crash_point(f"part-{done}")

        # a cluster's parts on an object store: their records are PUTs, written on threads
        # of their own so that the next tasks are submitted without waiting for them
        writes = _RecordWrites(folder.append_record, target.storage.io_concurrency, counted) \
            if target.storage is not None and uploads is None else None

        def record(task, rec, *, written: bool = False) -> None:
            records[task.index] = rec
            if writes is not None:
                writes.submit(rec)  # counted once written
                return
            if not written:
                folder.append_record(rec)
            counted(rec)

        results = executor.map_unordered(fn, todo, in_flight=executor.slots + 2)
        try:
            for task, (rec, tmp) in results:
                if uploads is not None:
                    uploads.submit(task, rec, tmp)
                    for finished in uploads.finished():
                        record(*finished, written=True)
                    continue
                if tmp is not None:
                    commit_part(tmp, str(folder.folder), task.index, fmt)
                record(task, rec)
            for finished in uploads.finished(drain=True) if uploads else ():
                record(*finished, written=True)
            if writes is not None:
                writes.drain()
        except BaseException as exc:
            getattr(results, "close", lambda: None)()  # the chunks under way end first
            if uploads is not None:
                uploads.close()  # nothing uploading while the attempt is discarded
            if writes is not None:
                writes.close()
            if isinstance(exc, Exception):
                folder.discard(bad_input=isinstance(exc, PipelineError))
            raise
        finally:
            bar.close()
            if uploads is not None:
                uploads.close()
        sources = {t.index: t.source_path for t in tasks}
        manifest = build_manifest(job, records, sources, fmt=fmt,
                                  seconds=time.perf_counter() - t0,
                                  resumed_parts=len(folder.kept), kept=folder.kept,
                                  rss_bytes=RssSampler.get().rss())
        folder.finish(manifest, extras, records=records)
        return manifest
    finally:
        drop_ahead()  # bytes fetched ahead for chunks that did not run (a failed run's)
        folder.release()


def _tracked(fn, uploads: _Uploads, task) -> tuple[dict, str | None]:
    """``fn(task)``, its part's local file known to ``uploads`` before it is returned (a
    result the writer loop never takes, when the run fails, is deleted by ``close``)."""
    rec, tmp = fn(task)
    if tmp is not None:
        uploads.track(tmp)
    return rec, tmp


class _RecordWrites:
    """Records written by ``append`` on threads of their own, up to ``threads`` at once
    (:meth:`submit` waits while that many are under way); ``written(record)`` is called on
    the caller's thread for each one written, in the order submitted. :meth:`drain` waits
    for them all; the first failed write's error (in that order) is raised."""

    def __init__(self, append, threads: int, written) -> None:
        self.append, self.written = append, written
        self.limit = threads
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="pipeline-record")
        self.pending: dict = {}  # future -> record, in the order submitted

    def submit(self, rec: dict) -> None:
        self._reap(block=len(self.pending) >= self.limit)
        self.pending[self.pool.submit(self.append, rec)] = rec

    def _reap(self, *, block: bool) -> None:
        if block:  # the oldest write, which the next record waits for anyway
            next(iter(self.pending)).exception()
        for fut in list(self.pending):  # the written ones at the head, in order
            if not fut.done():
                break
            rec = self.pending.pop(fut)
            fut.result()
            self.written(rec)

    def drain(self) -> None:
        wait(self.pending)
        self._reap(block=False)
        self.pool.shutdown(wait=True)

    def close(self) -> None:
        """Wait for the writes under way (the attempt is discarded after them)."""
        wait(self.pending)
        self.pending.clear()
        self.pool.shutdown(wait=True)


class _Uploads:
    """Parts that chunk threads of this process wrote on the local disk, uploaded by their own
    threads while the chunk threads go on to the next chunks (on an object store a part's
    upload takes about as long as computing it), each followed by its record (``append``). At
    most ``2 * threads`` parts wait on the disk or upload at once: the writer loop waits for
    one to finish before taking more."""

    def __init__(self, target: PartTarget, threads: int, append) -> None:
        self.target = target
        self.append = append
        self.limit = 2 * threads
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="pipeline-upload")
        self.pending: dict = {}
        self.on_disk: set[str] = set()  # parts written, not yet handed to an upload
        self.lock = threading.Lock()

    def track(self, tmp: str) -> None:
        with self.lock:
            self.on_disk.add(tmp)

    def _upload(self, tmp: str, index: int, rec: dict) -> dict:
        rec.update(upload_part(tmp, self.target, index))
        self.append(rec)
        return rec

    def submit(self, task, rec: dict, tmp: str) -> None:
        with self.lock:
            self.on_disk.discard(tmp)
        fut = self.pool.submit(self._upload, tmp, task.index, rec)
        self.pending[fut] = (task, tmp)

    def finished(self, *, drain: bool = False):
        """(task, record) of each upload done; waits while ``limit`` are pending (all of
        them with ``drain``). An upload's error is raised here."""
        while self.pending:
            done = [f for f in self.pending if f.done()]
            if not done and (drain or len(self.pending) >= self.limit):
                done, _ = wait(self.pending, return_when=FIRST_COMPLETED)
            if not done:
                return
            for fut in done:
                task, _ = self.pending.pop(fut)
                yield task, fut.result()

    def close(self) -> None:
        """Wait for the uploads under way (their local files are deleted either way) and
        delete the parts never handed over (the chunk threads have ended by then)."""
        for fut, (_, tmp) in self.pending.items():
            if fut.cancel():  # never started: its file is still on the disk
                LOCAL.rm(tmp)
        wait(self.pending)
        self.pending.clear()
        self.pool.shutdown(wait=True)
        with self.lock:
            left, self.on_disk = self.on_disk, set()
        for tmp in left:
            LOCAL.rm(tmp)
