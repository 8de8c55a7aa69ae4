"""The requests in flight on an object store, at most ``io_concurrency`` per process, handed
out in order: a request made for no chunk (planning, a running chunk's ranged reads, uploads
and the commit) first, then those of the chunks' fetches by chunk index, each chunk's in the
order asked.

Chunks fetched ahead ask for their bytes while the running chunks still fetch theirs; served
in the order they asked (a plain semaphore), every chunk would get its bytes late, and all
at once. In chunk order the store is kept as busy, and the first chunk computes while the
next ones download.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import threading
from contextlib import contextmanager

_RANK = threading.local()  # the chunk whose bytes this thread fetches (its index)
_UNRANKED = -1


@contextmanager
def ranked(rank: int):
    """Requests made inside are the chunk ``rank``'s (its index)."""
    before = getattr(_RANK, "value", _UNRANKED)
    _RANK.value = rank
    try:
        yield
    finally:
        _RANK.value = before


class Slots:
    """A semaphore of ``n`` slots whose waiters are served by rank, then in order asked."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._free = n
        self._lock = threading.Lock()
        self._waiting: list = []  # (rank, order asked, event) heap
        self._asked = itertools.count()

    def acquire(self) -> None:
        rank = getattr(_RANK, "value", _UNRANKED)
        with self._lock:
            if self._free and not self._waiting:
                self._free -= 1
                return
            given = threading.Event()
            heapq.heappush(self._waiting, (rank, next(self._asked), given))
        try:
            given.wait()  # the releasing thread hands its slot over
        except BaseException:  # interrupted (Ctrl-C): the slot, if handed over, goes on
            with self._lock:
                if not given.is_set():
                    self._waiting = [w for w in self._waiting if w[2] is not given]
                    heapq.heapify(self._waiting)
                    raise
            self.release()
            raise

    def release(self) -> None:
        with self._lock:
            if self._waiting:
                heapq.heappop(self._waiting)[2].set()
            else:
                self._free += 1

    def __enter__(self) -> Slots:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def imap(fn, items: list, *, threads: int, ahead: int | None = None, rank: int | None = None):
    """``fn`` of each item on up to ``threads`` threads, the results one by one, each as soon
    as it and those before it are done, so the caller works on the first while the others
    are fetched; with ``ahead``, at most that many items are started beyond the one the
    caller is given (their results are held until taken); with ``rank`` (a chunk's index),
    their requests wait behind those of lower ranks. Closed early (the caller failed), the
    calls not started are not made and those under way are waited for."""
    from concurrent.futures import ThreadPoolExecutor

    if rank is not None:
        call = fn

        def fn(item):
            with ranked(rank):
                return call(item)

    todo = iter(items)
    pending: collections.deque = collections.deque()
    pool = ThreadPoolExecutor(max(1, min(threads, len(items))), thread_name_prefix="pipeline-io")
    try:
        for item in itertools.islice(todo, ahead if ahead is not None else len(items)):
            pending.append(pool.submit(fn, item))
        while pending:
            first = pending.popleft()
            for item in itertools.islice(todo, 1):
                pending.append(pool.submit(fn, item))
            yield first.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
