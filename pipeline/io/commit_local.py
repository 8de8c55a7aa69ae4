"""The commit on a local disk: parts renamed into place, ``_SUCCESS`` last, ``--overwrite``
built in a hidden sibling and exchanged in one rename (docs/output.md, step by step)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from .lease import hold
from .parts import CHUNKS, JOB, SUCCESS, PartTarget, crash_point, part_name, write_json_atomic
from .resume import (
    Committer,
    differing_key,
    expected_part_rows,
    part_rows,
    read_job,
    resume_refused,
)
from .storage import LOCAL


def _is_empty_dir(p: Path) -> bool:
    return LOCAL.isdir(p) and not LOCAL.listdir(p)


def _matching(folder: Path, pattern: str) -> list[Path]:
    return [folder / name for name in LOCAL.listdir(folder) if fnmatch(name, pattern)]


@dataclass
class OutputFolder(Committer):
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
        if differing_key(old, self.job) is not None:
            raise resume_refused(old, self.job, self.display)
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
            num_rows = part_rows(part, fmt)
            rec = records.get(index)
            expected = expected_part_rows(expected_rows[index], rec)
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
