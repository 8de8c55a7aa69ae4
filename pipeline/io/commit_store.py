"""The commit on an object store: parts staged under ``_pending/<attempt>/``, copied to their
names at commit, ``_SUCCESS`` as the manifest in one conditional PUT
(docs/object-storage.md, step by step)."""

from __future__ import annotations

import json
import re
import uuid
from concurrent.futures import ThreadPoolExecutor

from ..errors import PreconditionFailed
from .lease import hold
from .multipart import abort_pending, complete_pending, drop_started, list_pending
from .parts import CHUNKS, JOB, STAGED, SUCCESS, PartTarget, crash_point
from .resume import Committer, expected_part_rows, resume_refused

PENDING = "_pending"


class ManifestFolder(Committer):
    """An output on a store without rename or append (S3, GCS, Azure): committed by one PUT
    of its manifest, ``_SUCCESS``, which lists every part with its size, ETag and rows.

    Steps (README, "The commit on object stores"):

    0. The lease on OUT (:mod:`pipeline.io.lease`): one writer at a time.
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
        self.uploads: dict[str, set[str]] = {}  # S3's pending uploads under OUT, by object
        self.current: dict | None = None  # the _SUCCESS this run started from, read
        self.attempts: dict[str, dict] = {}  # interrupted attempts' identities, by id
        self.surveyed = False
        self.after_commit = None  # the last deletes, made while the lease is given up
        self._job_written = None  # the attempt's _job.json PUT, under way (Future)

    @property
    def folder(self) -> str:
        return self.root

    def _path(self, *names: str) -> str:
        return self.storage.join(self.root, *names)

    def _read_json(self, path: str) -> dict | None:
        try:
            obj = json.loads(self.storage.read_text(path))
        except (OSError, ValueError):
            return None
        return obj if isinstance(obj, dict) else None

    def _name(self, path: str) -> str:
        return path[len(self.root):].lstrip("/")

    def survey(self) -> None:
        """What opening OUT reads before the job is known: the lease, one listing of OUT, the
        ``_SUCCESS`` the run starts from, the interrupted attempts and S3's pending uploads
        (:func:`pipeline.io.writer.early_output` runs it while the input is planned)."""
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
        self.current = current
        self.attempts = _attempts(self)
        # an earlier attempt was cut short: its unfinished uploads, but those a resumed
        # attempt keeps (S3's pending parts), are dead (this run holds the lease)
        self.uploads = _our_uploads(self, list_pending(self.storage, self.root)) \
            if self.attempts and self.storage.pending_uploads else {}
        self.surveyed = True

    def open(self, expected_rows: dict[int, int | None], fmt: str = "parquet") -> None:
        if not self.surveyed:
            self.survey()
        current, attempts = self.current, self.attempts
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
                    _publish(self, attempt, manifest=current)
                _cleanup(self, current)
                return
            for attempt, job in attempts.items():
                if self._same_job(job):
                    self.attempt = attempt
                    _open_resume(self, expected_rows, fmt)
                    self._abort_dead()
                    return
            if attempts:
                old = next(iter(attempts.values()))
                raise resume_refused(old, self.job, self.display)
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
        self._abort_dead()
        self.attempt = uuid.uuid4().hex[:12]
        self.storage.makedirs(self._path(PENDING, self.attempt))
        # PUT while the first chunks compute; a record is written only after it
        put = ThreadPoolExecutor(1, thread_name_prefix="pipeline-job-put")
        self._job_written = put.submit(self.storage.write_text,
                                       self._path(PENDING, self.attempt, JOB),
                                       json.dumps({**self.job, "attempt": self.attempt}))
        put.shutdown(wait=False)

    def _job_done(self, *, raising: bool = True) -> None:
        """Wait for the attempt's ``_job.json`` PUT (its failure raised here, or not)."""
        if self._job_written is not None:
            error = self._job_written.exception()
            if error is not None and raising:
                raise error

    def _abort_dead(self) -> None:
        """Abort the pending uploads that no kept record completes."""
        if self.uploads:
            keep = {rec.get("upload") for rec in self.kept.values()}
            abort_pending(self.storage, self.root, keep, found=self.uploads)

    def target(self, fmt: str) -> PartTarget:
        if self.storage.pending_uploads:
            return PartTarget(self.root, fmt, self.storage, self.attempt, pending=True)
        return PartTarget(self.root, fmt, self.storage, self.attempt,
                          stage=self._path(PENDING, self.attempt))

    def marker(self) -> tuple[object, str]:
        """(storage, path) of a file this run wrote, that every worker must see."""
        self._job_done()
        return self.storage, self._path(PENDING, self.attempt, JOB)

    def append_record(self, record: dict) -> None:
        self._job_done()
        self.storage.write_text(self._path(PENDING, self.attempt, f"{record['chunk']:05d}.json"),
                                json.dumps(record))
        self.written.append(f"{PENDING}/{self.attempt}/{record['chunk']:05d}.json")

    def finish(self, manifest: dict, extras: dict | None = None, *,
               records: dict[int, dict] | None = None) -> None:
        # extras (``_truth.json``) describe the new output: kept with the attempt until the
        # commit, then published, so that the old output stays whole until then
        self._job_done()
        texts = {name: json.dumps(obj, indent=1, default=str)
                 for name, obj in (extras or {}).items()}
        for name, text in texts.items():
            self.storage.write_text(self._path(PENDING, self.attempt, name), text)
            self.written.append(f"{PENDING}/{self.attempt}/{name}")
        self.lease.check()
        crash_point("before-copy")
        # the parts, staged under _pending/<id>/, copied to their final names at OUT's top
        # level (server-side), or their pending uploads completed (S3): plain listing
        # readers see them from here on
        names = [p["part"] for p in manifest.get("parts", [])]
        if self.storage.pending_uploads:
            _complete(self, manifest, records or self.kept)
        else:
            stage = self._path(PENDING, self.attempt)
            self.storage.copy_many([self.storage.join(stage, n + STAGED) for n in names],
                                   [self._path(n) for n in names])
        crash_point("before-success")
        self._commit(manifest, names)
        crash_point("after-success")
        self.storage.map(lambda step: step(), [  # the aborts (under the lease) meanwhile
            lambda: _publish(self, self.attempt, records, texts),
            lambda: _cleanup(self, manifest, repeated=self.tasks_may_repeat)])

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
            kept = "redone by" if self.storage.pending_uploads else "kept for"
            raise self._error("another run committed this output since this run started; "
                              f"not committed (its parts are {kept} resume=True)",
                              "resume") from None

    def discard(self, *, bad_input: bool) -> None:
        """A failed run (not interrupted): an --overwrite's or a bad input's attempt is
        deleted, parts and records; the old output is untouched. Other failures keep the
        attempt for --resume, as on a local disk."""
        self._job_done(raising=False)  # landed (or failed) before anything is deleted
        if not self.attempt or not (bad_input or self.overwrite):
            return
        if self.storage.pending_uploads:
            found = _our_uploads(self, list_pending(self.storage, self.root))
            abort_pending(self.storage, self.root, found={
                p: ids for p, ids in found.items() if f"-{self.attempt}." in p})
        ours = [self._name(p) for p in self.storage.find(self.root)]
        self.storage.rm_many([self._path(name) for name in ours
                              if name.startswith(f"{PENDING}/{self.attempt}/") or
                              (name.startswith("part-") and f"-{self.attempt}." in name)])

    def swap_in(self) -> None:
        """Nothing to swap: the manifest PUT was the commit."""

    def release(self) -> None:
        """The lease given up; a committed run's last deletes made meanwhile (and uploads
        started for parts never uploaded, a failed run's, aborted first)."""
        self._job_done(raising=False)  # no PUT of this run's lands after its lease went
        if self.attempt and self.storage.pending_uploads:
            drop_started(self.storage, f"-{self.attempt}.")
        steps = [super().release]
        if self.after_commit is not None:
            steps.append(self.after_commit)
            self.after_commit = None
        self.storage.map(lambda step: step(), steps)


def _open_resume(folder: ManifestFolder, expected_rows: dict[int, int | None], fmt: str) -> None:
    """A resumed attempt's parts kept: those whose record and object (or pending upload)
    agree."""
    target = folder.target(fmt)
    prefix = f"{PENDING}/{folder.attempt}/"
    for name in sorted(folder.listing):
        if not name.startswith(prefix) or not name.endswith(".json") or \
                name.endswith("/" + JOB):
            continue
        rec = folder._read_json(folder._path(name))
        try:
            index = int(rec["chunk"])
        except (TypeError, KeyError, ValueError):
            continue
        if index not in expected_rows or rec.get("part") != target.name(index):
            continue
        if expected_part_rows(expected_rows[index], rec) is None:
            continue
        if rec.get("upload") in folder.uploads.get(target.staged(index), ()):
            folder.kept[index] = rec  # its upload is still pending: completed at the commit
            continue
        head = folder.storage.head(target.staged(index))
        if head is None or head.get("size") != rec.get("size") or (
                rec.get("etag") is not None and head.get("etag") != rec.get("etag")):
            continue
        folder.kept[index] = rec


def _attempts(folder: ManifestFolder) -> dict[str, dict]:
    """The interrupted attempts in the listing, by id, with their identities."""
    found = {}
    for name in folder.listing:
        parts = name.split("/")
        if len(parts) == 3 and parts[0] == PENDING and parts[2] == JOB:
            job = folder._read_json(folder._path(name))
            if job is not None:
                found[parts[1]] = job
    return found


# a part's name at OUT's top level (part-NNNNN-<attempt>.<format>)
_PART = re.compile(r"part-\d{5,}-[0-9a-f]{12}\.[a-z]+")


def _our_uploads(folder: ManifestFolder, found: dict[str, set[str]]) -> dict[str, set[str]]:
    """The pending uploads that are this tool's (a part, or under ``_pending/``): another
    program's uploads under OUT, or another output's in a folder below it, are not touched."""
    return {path: ids for path, ids in found.items()
            if (name := folder._name(path)).startswith(PENDING + "/") or _PART.fullmatch(name)}


def _cleanup(folder: ManifestFolder, manifest: dict, *, repeated: bool = True) -> None:
    """After the commit: delete what the manifest does not list (an old output's parts,
    other attempts) and the pending records, in batches, with no new listing."""
    listed = {p["part"] for p in manifest.get("parts", [])}
    mine = {f"{PENDING}/{folder.attempt}/{JOB}", *folder.written,
            *(f"{PENDING}/{folder.attempt}/{name}{STAGED}" for name in listed)
            } if folder.attempt else set()
    stale = [folder._path(name) for name in sorted(folder.listing | mine)
             if name.startswith(PENDING + "/") or (name.startswith("part-") and
                                                   name not in listed)]
    # a repeated task's upload (a cluster's), never completed: aborted under the lease (a
    # later run's are not ours); where this run's chunks ran once each, on its own threads,
    # there is none to look for
    if folder.storage.pending_uploads and repeated:
        abort_pending(folder.storage, folder.root, found=_our_uploads(
            folder, list_pending(folder.storage, folder.root)))
    # the deletes name only what this run listed or wrote: made while the lease is given up
    folder.after_commit = lambda: folder.storage.rm_many(stale)


def _complete(folder: ManifestFolder, manifest: dict, records: dict[int, dict]) -> None:
    """Complete the parts' pending uploads (a resumed run's parts may be complete
    already: killed after this step); each part's ETag, known only now, goes into its
    record and the manifest."""
    pending = [rec for rec in records.values() if rec.get("upload")]

    def completed(rec: dict) -> bool:  # a kept part whose upload is no longer pending
        return rec.get("chunk") in folder.kept and \
            rec["upload"] not in folder.uploads.get(folder._path(rec["part"]), ())

    todo = [rec for rec in pending if not completed(rec)]
    etags = complete_pending(folder.storage, [folder._path(rec["part"]) for rec in todo], todo)
    for rec, etag in zip(todo, etags, strict=True):
        rec["etag"] = etag
    done = [rec for rec in pending if completed(rec)]
    heads = folder.storage.map(folder.storage.head, [folder._path(rec["part"]) for rec in done])
    for rec, head in zip(done, heads, strict=True):
        rec["etag"] = (head or {}).get("etag")
    by_part = {rec["part"]: rec for rec in pending}
    for part in manifest.get("parts", []):
        if part.get("part") in by_part and by_part[part["part"]].get("etag"):
            part["etag"] = by_part[part["part"]]["etag"]


def _publish(folder: ManifestFolder, attempt: str, records: dict[int, dict] | None = None,
             extras: dict[str, str] | None = None, *, manifest: dict | None = None) -> None:
    """After the commit: the attempt's records merged into ``_chunks.jsonl``, its extra
    files and its ``_job.json`` at the top (before the commit they would have described
    an output that was not yet the output). ``records`` and ``extras``: this run's, in
    memory; else read back, each part's ETag taken from the committed ``manifest`` (a
    completed upload's is known only from there)."""
    job = dict(folder.job)
    if records is None:
        records, extras = {}, {}
        prefix = f"{PENDING}/{attempt}/"
        for name in sorted(folder.listing):
            if not name.startswith(prefix):
                continue
            base = name[len(prefix):]
            if base.endswith(STAGED):
                continue
            if base.startswith("_") and base != JOB:
                extras[base] = folder.storage.read_text(folder._path(name))
                continue
            obj = folder._read_json(folder._path(name))
            if obj is not None and base == JOB:
                job = obj
            elif obj is not None and "chunk" in obj:
                records[int(obj["chunk"])] = obj
    etags = {p.get("part"): p.get("etag") for p in (manifest or {}).get("parts", [])
             if isinstance(p, dict)}
    for rec in records.values():
        if rec.get("etag") is None and etags.get(rec.get("part")):
            rec["etag"] = etags[rec["part"]]
    job.pop("attempt", None)
    texts = {**(extras or {}), JOB: json.dumps(job, indent=1),
             CHUNKS: "".join(json.dumps(records[i]) + "\n" for i in sorted(records))}
    # independent objects (_SUCCESS already says what the output is): PUT at once
    folder.storage.map(lambda item: folder.storage.write_text(folder._path(item[0]), item[1]),
                       list(texts.items()))
