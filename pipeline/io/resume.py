"""What ``--resume`` checks: the recorded job (``_job.json``) against this run's, and the rows
a kept part must hold."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..errors import PipelineError
from .identity import job_difference
from .parts import JOB
from .storage import LOCAL


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


def differing_key(old: dict, job: dict) -> str | None:
    """The first part of the job identity in which ``old`` differs from ``job``, or None."""
    return next((k for k in _IDENTITY if old.get(k) != job.get(k)), None)


def resume_refused(old: dict, job: dict, path: str) -> PipelineError:
    """The refusal of a resume whose job identity differs from ``old``'s, naming what
    differs first (a parameter with both values, an input file, the plan, ...)."""
    what, named = job_difference(old, job, _IDENTITY)
    return PipelineError(f"cannot resume: {what}; rerun with overwrite=True", path=path,
                         params=(*named, "overwrite"))


def expected_part_rows(planned: int | None, rec: dict | None) -> int | None:
    """The rows a kept part must have: its record's (which, with the rows it dropped, must
    add up to the plan's count where the plan knows it), else the plan's."""
    if rec is None or not isinstance(rec.get("rows"), int):
        return planned
    if planned is not None and rec["rows"] + rec.get("rows_dropped", 0) != planned:
        return None
    return rec["rows"]


def part_rows(part: Path, fmt: str) -> int | None:
    try:
        if fmt == "parquet":
            return pq.read_metadata(part).num_rows
        return pacsv.read_csv(part).num_rows
    except (pa.ArrowException, OSError):
        return None


class Committer:
    """What both commit protocols share (:class:`~pipeline.io.commit_local.OutputFolder` on a
    disk, :class:`~pipeline.io.commit_store.ManifestFolder` on an object store): the lease on
    OUT, errors that name OUT, and whether a recorded job is this run's."""

    lease = None
    display = ""
    job: dict
    # whether a task may have run twice (a cluster's retried or duplicated task, whose part
    # upload another run of it may have left unfinished); chunks on this process's threads
    # run once each
    tasks_may_repeat = True

    def release(self) -> None:
        """Give up the lease on OUT (the end of the run, whatever its outcome)."""
        if self.lease is not None:
            self.lease.release()

    def _error(self, message: str, *params: str) -> PipelineError:
        return PipelineError(message, path=self.display, params=params)

    def _same_job(self, old: dict) -> bool:
        return differing_key(old, self.job) is None
