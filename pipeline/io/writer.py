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
lease (:mod:`pipeline.io.lease`): one writer per output.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import PipelineError
from .commit_local import OutputFolder
from .commit_store import ManifestFolder
from .parts import part_name
from .storage import LOCAL, open_storage
from .urls import is_local, is_url


def open_output(out: str | os.PathLike, job: dict, *, overwrite: bool = False,
                resume: bool = False, storage_options: dict | None = None,
                early: EarlyOutput | None = None) -> OutputFolder | ManifestFolder:
    """The output folder OUT, by what its store can do: renamed parts on a local disk
    (:class:`OutputFolder`), a manifest commit on an object store (:class:`ManifestFolder`;
    surveyed already where ``early`` did it while the input was planned)."""
    folder = early.take(job, overwrite=overwrite, resume=resume) if early else None
    if folder is not None:
        return folder
    storage, root = open_storage(out, storage_options)
    if storage.atomic_rename:
        return OutputFolder(Path(root), job, overwrite=overwrite, resume=resume)
    return ManifestFolder(storage, root, job, overwrite=overwrite, resume=resume,
                          display=os.fspath(out))


class EarlyOutput:
    """OUT on an object store surveyed (:meth:`ManifestFolder.survey`: its lease, its
    listing, what it holds) on a thread while the input is planned: its requests wait on the
    store's latency, planning's on its throughput. :meth:`start` once the input is listed
    (the lease object is never in that listing), where OUT is apart from the input's files
    (else it is refused after planning, as before, having touched nothing); :meth:`take`
    when the job is known raises what the survey raised, where opening OUT would have;
    :meth:`close` waits for the thread and gives up a lease not taken (the input or a
    parameter was refused)."""

    def __init__(self, out: str | os.PathLike, input_arg, storage_options: dict | None
                 ) -> None:
        self.out, self.input_arg = os.fspath(out), input_arg
        self.storage_options = storage_options
        self.folder: ManifestFolder | None = None
        self.error: BaseException | None = None
        self.taken = False
        self._thread: threading.Thread | None = None

    def start(self, paths: list[str]) -> None:
        """Survey OUT on a thread, given the input's files (``paths``; a local input's
        cannot be inside OUT, a URL)."""
        try:
            if is_url(self.input_arg):
                refuse_overlap(self.out, paths, input_arg=self.input_arg)
        except PipelineError:
            return  # refused after planning, where it was refused before
        if self._thread is None:
            self._thread = threading.Thread(target=self._survey, daemon=True,
                                            name="pipeline-open-out")
            self._thread.start()

    def _survey(self) -> None:
        try:
            storage, root = open_storage(self.out, self.storage_options)
            if storage.atomic_rename:
                return  # renamed parts: opened after planning, as on a local disk
            self.folder = ManifestFolder(storage, root, {}, display=self.out)
            self.folder.survey()
            getattr(storage, "prepare_writes", lambda: None)()
        except BaseException as exc:  # noqa: BLE001 - raised by take(), on the caller's thread
            self.error = exc

    def take(self, job: dict, *, overwrite: bool, resume: bool) -> ManifestFolder | None:
        """The surveyed folder, now for ``job`` (None: not started, or not an object store)."""
        if self._thread is None:
            return None
        self._thread.join()
        if self.error is not None:
            raise self.error
        if self.folder is None:
            return None
        self.folder.job, self.folder.overwrite, self.folder.resume = job, overwrite, resume
        self.taken = True
        return self.folder

    def close(self) -> None:
        if self._thread is None:
            return
        self._thread.join()
        if not self.taken and self.folder is not None:
            self.folder.release()


@contextmanager
def early_output(out, input_arg, storage_options: dict | None = None
               ) -> Iterator[EarlyOutput | None]:
    """An :class:`EarlyOutput` for OUT where it is a URL (not a local path); closed at the
    end of the block, however it ends."""
    early = None
    if out is not None and is_url(out) and not is_local(out):
        early = EarlyOutput(out, input_arg, storage_options)
    try:
        yield early
    finally:
        if early is not None:
            early.close()


def build_manifest(job: dict, records: dict[int, dict], sources: dict[int, str], *,
                   fmt: str, seconds: float, resumed_parts: int, kept=(),
                   rss_bytes: int = 0) -> dict:
    """``_SUCCESS``: the job, each part with its rows and source, the totals (``rss_bytes``:
    the driving process's memory now, with the chunks' peaks for the run's peak)."""
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
        "peak_rss_bytes": max(peaks + [rss_bytes]),
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
