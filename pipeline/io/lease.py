"""One writer per output: a lease on OUT (or MODEL), taken before anything is written and
released at the end (README, "One writer per output").

The lease is a small object beside its target, ``.NAME.pipeline-lock`` in OUT's parent
folder, holding the attempt id, host, pid, when it was taken and a heartbeat.

- Local disk: an exclusive ``flock`` on that file, held by the running process; the kernel
  drops it when the process dies, so a dead holder never blocks.
- Object store: the lease object is created with a conditional write (``If-None-Match: *``,
  one writer wins) and its heartbeat is renewed every quarter of the timeout by a conditional
  replace (``If-Match`` on the ETag this run wrote last, so a run that lost its lease learns it
  instead of overwriting the new holder's). A lease may be taken over (again conditionally,
  on the ETag read) when its holder ran on this host and its process is gone, or when its
  heartbeat is older than the timeout: ``PIPELINE_LEASE_TIMEOUT`` seconds, default 120 (the
  writer's clock; clocks of the machines sharing an output must agree to well within it).

A run that finds the lease held: :class:`PipelineError` naming the holder and since when,
before anything is touched (exit 2).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime

from ..errors import LockHeld, PipelineError, PreconditionFailed, StorageError
from .storage import LOCAL

TIMEOUT_ENV = "PIPELINE_LEASE_TIMEOUT"
DEFAULT_TIMEOUT = 120.0
# seconds within which this run's last write of its lease makes the release one DELETE (a
# quarter of the timeout where that is shorter): a run takes a lease over only when its
# heartbeat is older than the timeout (runs sharing an output give the same timeout; their
# clocks agree to well within it); a later release compares the lease's ETag with this
# run's first (a HEAD), and leaves another's
FRESH = 5.0


def lease_timeout() -> float:
    """Seconds without a heartbeat after which an object-store lease may be taken over."""
    try:
        value = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT))
    except ValueError:
        return DEFAULT_TIMEOUT
    return value if value > 0 else DEFAULT_TIMEOUT


def lease_key(storage, target: str) -> str:
    """Where the lease of ``target`` (a folder or a file) lives: beside it, hidden."""
    target = target.rstrip("/")
    parent = storage.parent(target)
    name = target.rsplit("/", 1)[-1]
    if not parent or parent == target or not name:  # a bucket's root: inside it
        return storage.join(target, ".pipeline-lock")
    return storage.join(parent, f".{name}.pipeline-lock")


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _process_gone(holder: dict) -> bool:
    """The holder ran on this host and its process no longer exists."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by another user
        return False
    return False


class Lease:
    """The lease of one output; :meth:`acquire` before writing, :meth:`release` after."""

    def __init__(self, storage, target: str, display: str, *, what: str = "output") -> None:
        self.storage = storage
        self.key = lease_key(storage, target)
        self.display = display
        self.what = what
        self.attempt = uuid.uuid4().hex[:12]
        self.since = time.time()
        self.held = False
        self.lost: dict | None = None  # the holder that took this run's lease over
        self._fd: int | None = None
        self._etag: str | None = None
        self._written = 0.0  # when this run last wrote its version of the lease (time.time())
        self._stop = threading.Event()
        self._renewing = threading.Lock()
        self._thread: threading.Thread | None = None

    def _body(self) -> str:
        return json.dumps({"attempt": self.attempt, "host": socket.gethostname(),
                           "pid": os.getpid(), "since": self.since,
                           "heartbeat": time.time()})

    def _held_error(self, holder: dict | None) -> PipelineError:
        holder = holder or {}
        since = holder.get("since")
        beat = holder.get("heartbeat")
        who = (f"attempt {holder.get('attempt', '?')}, pid {holder.get('pid', '?')} on "
               f"{holder.get('host', '?')}, since "
               f"{_stamp(since) if isinstance(since, (int, float)) else '?'}")
        if self.storage is LOCAL:
            tail = "wait for it to finish"
        else:
            age = (f"last heartbeat {max(0, time.time() - beat):.0f} s ago"
                   if isinstance(beat, (int, float)) else "no heartbeat")
            tail = (f"{age}; wait for it to finish (a lease without a heartbeat for "
                    f"{lease_timeout():g} s is taken over)")
        return PipelineError(f"another run is writing this {self.what} ({who}); {tail}; "
                             "not touched", path=self.display)

    # --- acquire / release ------------------------------------------------------------------

    def acquire(self) -> None:
        if self.storage is LOCAL:
            self._acquire_local()
        else:
            self._acquire_object()
        self.held = True

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        if self.storage is LOCAL:
            LOCAL.unlock(self.key, self._fd)
            self._fd = None
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.lost is None:
            try:
                if time.time() - self._written < min(FRESH, lease_timeout() / 4):
                    # written by this run moments ago (the commit's renewal): no other run may
                    # have taken it over since (one DELETE, not a HEAD to compare first)
                    self.storage.rm(self.key)
                else:
                    self.storage.remove_if(self.key, self._etag)
            except (PreconditionFailed, OSError, StorageError):
                pass  # taken over since: the new holder's

    def check(self) -> None:
        """Before a commit: this run still holds its lease (else it must not commit); on an
        object store, renewed now, so a takeover since the last heartbeat is seen."""
        if self.storage is not LOCAL and self.lost is None:
            self._renew()
        if self.lost is not None:
            holder = self.lost
            raise PipelineError(
                f"this run lost its lease on the {self.what} to another run (attempt "
                f"{holder.get('attempt', '?')}, pid {holder.get('pid', '?')} on "
                f"{holder.get('host', '?')}): its heartbeat was late by more than "
                f"{lease_timeout():g} s; not committed", path=self.display)

    def _acquire_local(self) -> None:
        try:
            self._fd = LOCAL.lock(self.key, self._body())
        except LockHeld as exc:
            try:
                holder = json.loads(exc.args[0] or "{}")
            except ValueError:
                holder = None
            raise self._held_error(holder) from None

    def _acquire_object(self) -> None:
        for _ in range(5):
            now = time.time()
            try:
                self._etag, self._written = self.storage.create_text(self.key, self._body()), now
                break
            except FileExistsError:
                pass
            found = self.storage.read_versioned(self.key)
            if found is None:  # released meanwhile: try again
                continue
            text, etag = found
            try:
                holder = json.loads(text)
            except ValueError:
                holder = {}
            beat = holder.get("heartbeat")
            stale = not isinstance(beat, (int, float)) or \
                time.time() - beat > lease_timeout() or _process_gone(holder)
            if not stale:
                raise self._held_error(holder)
            try:
                self._etag, self._written = self.storage.replace_if(self.key, self._body(),
                                                                    etag), now
                break
            except PreconditionFailed:
                continue  # another run renewed or took it meanwhile: look again
        else:
            raise self._held_error(None)
        self._thread = threading.Thread(target=self._heartbeat, daemon=True,
                                        name="pipeline-lease")
        self._thread.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(lease_timeout() / 4) and self.lost is None:
            try:
                self._renew()
            except (OSError, StorageError):
                continue  # the store is unreachable for now: try at the next beat

    def _renew(self) -> None:
        """Write a new heartbeat over this run's last version of the lease; another version
        there means another run took the lease over: this run lost it."""
        with self._renewing:
            if self.lost is not None:
                return
            now = time.time()
            try:
                self._etag = self.storage.replace_if(self.key, self._body(), self._etag)
                self._written = now
            except PreconditionFailed:
                found = self.storage.read_versioned(self.key)
                try:
                    self.lost = json.loads(found[0]) if found else {}
                except ValueError:
                    self.lost = {}


def hold(storage, target: str, display: str, *, what: str = "output") -> Lease:
    """Take the lease of ``target`` (raises when another live run holds it)."""
    lease = Lease(storage, target, display, what=what)
    lease.acquire()
    return lease
