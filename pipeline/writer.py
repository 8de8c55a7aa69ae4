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
is complete, so the old output stays whole until then.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .errors import PipelineError
from .monitor import ChunkTimer, RssSampler
from .progress import Progress

SUCCESS = "_SUCCESS"
JOB = "_job.json"
CHUNKS = "_chunks.jsonl"

# Random floats gain nothing from dictionary encoding and it makes writes ~5x slower
# (measured, see PERF-NOTES); snappy is nearly free.
PARQUET_OPTIONS = {"compression": "snappy", "use_dictionary": False}


def part_name(index: int, fmt: str = "parquet") -> str:
    return f"part-{index:05d}.{fmt}"


def write_part_file(data, folder: str, index: int, fmt: str = "parquet") -> tuple[str, int]:
    """Write one part under a temporary name in ``folder``; returns (temporary path, rows).

    ``data`` is a ``pyarrow.Table`` or an iterator of Tables (streamed, one row group each,
    so a part can be larger than memory). :func:`commit_part` makes it final.
    """
    tmp = os.path.join(folder, f".{part_name(index, fmt)}.{uuid.uuid4().hex}.tmp")
    tables = [data] if isinstance(data, pa.Table) else data
    rows = 0
    try:
        with open(tmp, "wb") as fh:
            writer = None
            for table in tables:
                if writer is None:
                    writer = (pq.ParquetWriter(fh, table.schema, **PARQUET_OPTIONS)
                              if fmt == "parquet" else pacsv.CSVWriter(fh, table.schema))
                writer.write_table(table)
                rows += table.num_rows
            if writer is not None:
                writer.close()
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return tmp, rows


def commit_part(tmp: str, folder: str, index: int, fmt: str = "parquet") -> None:
    """fsync the temporary part, then rename it to its final name: absent or complete.

    The writer's loop calls this as records arrive, so the wait for the disk overlaps the
    workers' next chunks instead of holding a worker thread.
    """
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, os.path.join(folder, part_name(index, fmt)))


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    path = os.fspath(path)
    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=1, default=str)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(os.path.dirname(path) or ".")


def _fsync_dir(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def run_chunk_task(task, *, folder: str, device: str, fmt: str = "parquet"
                   ) -> tuple[dict, str]:
    """Produce one chunk's table and write its part under a temporary name (on a worker);
    returns its record and the temporary path, which the writer loop commits."""
    with ChunkTimer() as timer:
        data = task.produce()
        tmp, rows = write_part_file(data, folder, task.index, fmt)
    rec = timer.record(chunk=task.index, part=part_name(task.index, fmt),
                       source=task.source_path, rows=rows, device=device).to_dict()
    rec.update(getattr(data, "record_extras", {}))  # e.g. rows_dropped
    return rec, tmp


@dataclass
class OutputFolder:
    """Decides where a run writes, from what is already at ``path`` and the flags."""

    path: Path
    job: dict
    overwrite: bool = False
    resume: bool = False

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.staging: Path | None = None
        self.kept: dict[int, dict] = {}
        self.complete_manifest: dict | None = None

    @property
    def folder(self) -> Path:
        return self.staging or self.path

    def open(self, expected_rows: dict[int, int | None], fmt: str = "parquet") -> None:
        """Check the flags against what exists, then make the folder ready to write."""
        p = self.path
        if self.overwrite and self.resume:
            raise PipelineError("--overwrite and --resume cannot be used together", path=str(p))
        if p.exists() and not p.is_dir():
            raise PipelineError("output exists and is not a folder", path=str(p))
        staging = p.parent / f".{p.name}.pipeline-new"
        if not p.exists() and (staging / SUCCESS).exists():
            os.replace(staging, p)  # an --overwrite killed inside its swap: finish it
            shutil.rmtree(p.parent / f".{p.name}.pipeline-old", ignore_errors=True)
        if not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
            p.mkdir()
            write_json_atomic(p / JOB, self.job)
            return
        if self.resume:
            if (staging / JOB).exists():  # an interrupted --overwrite: continue its new output
                self.staging = staging
            self._open_resume(expected_rows, fmt)
            return
        if not self.overwrite:
            raise PipelineError("output already exists; pass --overwrite to replace it or "
                                "--resume to continue it", path=str(p))
        self.staging = staging
        if self.staging.exists():
            shutil.rmtree(self.staging)
        self.staging.mkdir()
        write_json_atomic(self.staging / JOB, self.job)

    def _open_resume(self, expected_rows: dict[int, int | None], fmt: str) -> None:
        p = self.folder
        try:
            old = json.loads((p / JOB).read_text())
        except FileNotFoundError:
            raise PipelineError(f"cannot resume: no {JOB}, so this is not an output of this "
                                "tool", path=str(p)) from None
        except json.JSONDecodeError:
            raise PipelineError(f"cannot resume: {JOB} is damaged", path=str(p)) from None
        for key in ("command", "params", "input"):
            if old.get(key) != self.job.get(key):
                what = {"command": "command", "params": "parameters",
                        "input": "input files (paths, sizes or times)"}[key]
                raise PipelineError(f"cannot resume: the {what} differ from the interrupted "
                                    f"run's; rerun with --overwrite", path=str(p))
        if (p / SUCCESS).exists():
            self.complete_manifest = json.loads((p / SUCCESS).read_text())
            return
        for stray in p.glob(".part-*.tmp"):
            stray.unlink()
        for stray in p.glob("*.tmp"):  # a _chunks.jsonl or _SUCCESS rewrite cut short
            stray.unlink()
        records = {}
        if (p / CHUNKS).exists():
            for line in (p / CHUNKS).read_text().splitlines():
                try:
                    rec = json.loads(line)
                    records[int(rec["chunk"])] = rec
                except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                    continue  # a line cut by the interruption
        for index, rows in expected_rows.items():
            part = p / part_name(index, fmt)
            if not part.exists():
                continue
            # A part under its final name was renamed after fsync, so it is complete; its
            # footer (Parquet) and row count are checked all the same.
            num_rows = _part_rows(part, fmt)
            if num_rows is None or (rows is not None and num_rows != rows):
                part.unlink()
                continue
            rec = records.get(index) or {"chunk": index, "part": part.name, "rows": num_rows}
            rec["rows"] = num_rows
            self.kept[index] = rec
        # Keep only the records of the parts kept, in one atomic rewrite.
        tmp = p / f"{CHUNKS}.tmp"
        tmp.write_text("".join(json.dumps(self.kept[i]) + "\n" for i in sorted(self.kept)))
        os.replace(tmp, p / CHUNKS)

    def abandon(self) -> None:
        """A failed --overwrite run: drop the half-built new output; the old one is untouched.

        Not called on an interruption (Ctrl-C, SIGKILL), which ``--resume`` continues.
        """
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None

    def append_record(self, record: dict) -> None:
        with open(self.folder / CHUNKS, "a") as fh:
            fh.write(json.dumps(record) + "\n")

    def finish(self, manifest: dict, extras: dict | None = None) -> None:
        _fsync_dir(str(self.folder))  # the parts' renames are durable before _SUCCESS
        for name, obj in (extras or {}).items():
            write_json_atomic(self.folder / name, obj)
        write_json_atomic(self.folder / SUCCESS, manifest)
        self.swap_in()

    def swap_in(self) -> None:
        """Replace the old output by the complete new one built beside it (--overwrite)."""
        if self.staging is not None:
            old = self.path.parent / f".{self.path.name}.pipeline-old"
            if old.exists():
                shutil.rmtree(old)
            os.replace(self.path, old)
            os.replace(self.staging, self.path)
            _fsync_dir(str(self.path.parent))
            shutil.rmtree(old)
            self.staging = None


def _part_rows(part: Path, fmt: str) -> int | None:
    try:
        if fmt == "parquet":
            return pq.read_metadata(part).num_rows
        return pacsv.read_csv(part).num_rows
    except (pa.ArrowException, OSError):
        return None


def write_parts(tasks: list, out: str | os.PathLike, *, executor, job: dict,
                overwrite: bool = False, resume: bool = False, device: str = "cpu",
                progress: bool = False, total_rows: int | None = None,
                fmt: str = "parquet", extras: dict | None = None) -> dict:
    """Run every chunk task through ``executor``, writing one part each; return the manifest.

    Each task has ``index``, ``source_path``, ``rows`` (or None) and ``produce()`` returning a
    ``pyarrow.Table`` or an iterator of them. The job's identity (``job``) is what
    ``--resume`` compares; ``extras`` are JSON files written just before ``_SUCCESS``.
    """
    t0 = time.perf_counter()
    folder = OutputFolder(Path(out), job, overwrite=overwrite, resume=resume)
    folder.open({t.index: t.rows for t in tasks}, fmt)
    if folder.complete_manifest is not None:
        folder.swap_in()  # an --overwrite killed between its _SUCCESS and the swap
        return folder.complete_manifest
    todo = [t for t in tasks if t.index not in folder.kept]
    records = dict(folder.kept)
    bar = Progress(total_rows, len(tasks), enabled=progress)
    for rec in folder.kept.values():
        bar.update(rec.get("rows", 0))
    fn = functools.partial(run_chunk_task, folder=str(folder.folder), device=device, fmt=fmt)
    try:
        for task, (rec, tmp) in executor.map_unordered(fn, todo, in_flight=executor.slots + 2):
            commit_part(tmp, str(folder.folder), task.index, fmt)
            records[task.index] = rec
            folder.append_record(rec)
            bar.update(rec["rows"])
    except Exception:
        folder.abandon()
        raise
    finally:
        bar.close()
    sources = {t.index: t.source_path for t in tasks}
    parts = [{"part": part_name(i, fmt), "rows": records[i]["rows"], "source": sources[i]}
             for i in sorted(records)]
    peaks = [r.get("peak_rss_bytes", 0) for r in records.values()]
    manifest = {
        **job,
        "parts": parts,
        "rows": sum(p["rows"] for p in parts),
        "seconds": round(time.perf_counter() - t0, 6),
        "peak_rss_bytes": max(peaks + [RssSampler.get().rss()]),
        "resumed_parts": len(folder.kept),
    }
    dropped = [r["rows_dropped"] for r in records.values() if "rows_dropped" in r]
    if dropped:
        manifest["rows_dropped"] = sum(dropped)
    folder.finish(manifest, extras)
    return manifest


def job_identity(command: str, params: dict, fingerprint) -> dict:
    return {"command": command, "params": params, "input": fingerprint}
