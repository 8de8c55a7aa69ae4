"""Where chunks run: an in-process thread pool, a local Dask cluster, or an existing one.

Every command hands its per-chunk function and items to :meth:`map_unordered`, which keeps no
more chunks in flight than the workers have threads (times a small factor), so memory stays
bounded whatever the input size. Results come back as chunks finish.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import contextmanager

from ..config.exec_options import ExecOptions
from ..errors import PipelineError
from .cluster import cluster_session, drop_ctrl_c_race_log, require_cluster_for_report


class Executor:
    """What every command needs from where chunks run (see the two kinds below)."""

    kind = ""
    threads = 1
    memory_limit: int | None = None  # the workers' total, when known

    @property
    def slots(self) -> int:
        """Chunks that can run at once."""
        return self.threads

    def map_unordered(self, fn: Callable, items: Iterable, *, in_flight: int | None = None
                      ) -> Iterator[tuple[object, object]]:
        """(item, fn(item)) as chunks finish, with at most ``in_flight`` submitted."""
        raise NotImplementedError

    def fits_in_memory(self, nbytes: int) -> bool:
        """Whether ``nbytes`` of parsed blocks may be kept here between passes.

        The one caching rule (``pipeline train`` and ``LogisticModel.fit``): at most half
        of the workers' memory limit (their total), or of this machine's available memory
        when there is no limit; larger data is streamed, re-read on every pass.
        """
        import psutil

        budget = self.memory_limit or psutil.virtual_memory().available
        return nbytes <= 0.5 * budget

    def cache(self, fn: Callable, items: list) -> tuple[list, list]:
        raise NotImplementedError

    def worker_not_seeing(self, marker) -> str | None:
        """A worker that does not see the file ``marker()`` names, ``(storage, path)`` (its
        address), or None.

        Threads of this process see what it sees (``marker`` is not called: it may wait for
        the file's write); a cluster's workers may run on machines without this one's disk
        (or memory).
        """
        return None

    def close(self) -> None:
        pass


class LocalExecutor(Executor):
    """Chunks on threads of this process: no cluster to start, no data to serialise.

    NumPy, pyarrow's readers and writers release the GIL, so the threads use every core.
    BLAS is limited to one thread per pool thread while the pool runs.
    """

    kind = "local"

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads or os.cpu_count() or 1
        self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="pipeline-chunk")
        self.memory_limit = None
        try:
            from threadpoolctl import threadpool_limits

            self._blas = threadpool_limits(limits=1, user_api="blas")
        except ImportError:  # pragma: no cover - threadpoolctl is a dependency
            self._blas = None

    def map_unordered(self, fn: Callable, items: Iterable, *, in_flight: int | None = None
                      ) -> Iterator[tuple[object, object]]:
        limit = in_flight or self.slots + 1
        pending: dict = {}
        it = iter(items)
        try:
            while True:
                while len(pending) < limit:
                    item = next(it, _END)
                    if item is _END:
                        break
                    if len(pending) >= self.threads and hasattr(item, "prefetch"):
                        item.prefetch()  # it waits for a thread: its bytes come meanwhile
                    pending[self.pool.submit(fn, item)] = item
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    item = pending.pop(fut)
                    yield item, fut.result()
        finally:
            for fut in pending:
                fut.cancel()
            wait(pending)  # let running chunks end before the caller cleans up after them

    def cache(self, fn: Callable, items: list) -> tuple[list, list]:
        """Run ``fn`` (returning ``(kept, result)``) on every item; keep ``kept`` here.

        Returns the kept values (in this process's memory) and the small results, in order.
        """
        kept, results = [None] * len(items), [None] * len(items)
        for (i, _), (k, r) in self.map_unordered(lambda p: fn(p[1]), list(enumerate(items))):
            kept[i], results[i] = k, r
        return kept, results

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        if self._blas is not None:
            self._blas.restore_original_limits()


class DaskExecutor(Executor):
    """Chunks as tasks on a ``distributed`` cluster; records name the cluster's workers."""

    kind = "dask"

    def __init__(self, client) -> None:
        self.client = client
        info = client.scheduler_info(n_workers=-1) if _accepts_n_workers(client) else \
            client.scheduler_info()
        workers = info.get("workers", {})
        self.threads = sum(w.get("nthreads", 1) for w in workers.values()) or 1
        limits = [w.get("memory_limit") or 0 for w in workers.values()]
        self.memory_limit = sum(limits) if limits and all(limits) else None

    def map_unordered(self, fn: Callable, items: Iterable, *, in_flight: int | None = None
                      ) -> Iterator[tuple[object, object]]:
        from distributed import as_completed

        limit = in_flight or self.slots + 1
        it = iter(items)
        futures = {}
        ac = as_completed()

        def submit_next() -> bool:
            item = next(it, _END)
            if item is _END:
                return False
            fut = self.client.submit(fn, item, pure=False)
            futures[fut.key] = (fut, item)
            ac.add(fut)
            return True

        for _ in range(limit):
            if not submit_next():
                break
        try:
            for fut in ac:
                _, item = futures.pop(fut.key)
                try:
                    result = fut.result()
                except Exception as exc:
                    # the others in flight (at most slots + 2) may be writing parts, and
                    # cancel does not stop a running task: let them end, so that the
                    # caller's clean-up comes after their last write and a failed run leaves
                    # no part behind
                    from distributed import wait as dwait

                    dwait([f for f, _ in futures.values()])
                    raise _worker_error(exc, item) from None
                yield item, result
                submit_next()
        finally:
            ac.clear()
            for fut, _ in futures.values():
                fut.cancel()

    def cache(self, fn: Callable, items: list) -> tuple[list, list]:
        """Run ``fn`` (returning ``(kept, result)``) on every item; keep ``kept`` on the workers.

        Returns futures of the kept values (in the workers' memory) and the small results.
        """
        import operator

        from distributed import wait as dwait

        pairs = [self.client.submit(fn, item, pure=False) for item in items]
        dwait(pairs)
        for fut, item in zip(pairs, items, strict=True):
            if fut.status == "error":
                raise _worker_error(fut.exception(), item)
        kept = [self.client.submit(operator.itemgetter(0), f, pure=False) for f in pairs]
        results = self.client.gather(
            [self.client.submit(operator.itemgetter(1), f, pure=False) for f in pairs])
        dwait(kept)
        return kept, results

    def worker_not_seeing(self, marker) -> str | None:
        seen = self.client.run(_sees, *marker())
        return next((addr for addr, yes in sorted(seen.items()) if not yes), None)


def _sees(storage, path: str) -> bool:
    try:
        return bool(storage.exists(path))
    except Exception:  # noqa: BLE001 - a store this worker cannot reach does not see it
        return False


def _accepts_n_workers(client) -> bool:
    import inspect

    try:
        return "n_workers" in inspect.signature(client.scheduler_info).parameters
    except (TypeError, ValueError):
        return False


def _worker_error(exc: Exception, item) -> Exception:
    if isinstance(exc, PipelineError):
        return exc
    name = type(exc).__name__
    if name == "KilledWorker":
        source = getattr(item, "source_path", None) or str(item)
        return PipelineError("this chunk killed the workers that ran it, repeatedly "
                             "(out of memory?); the job is stopped", path=source)
    return exc


_END = object()


def current_client(client=None):
    """The given client, or the current ``distributed`` client if there is one."""
    if client is not None:
        return client
    if "distributed" not in sys.modules:
        return None
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        return None


@contextmanager
def _quiet_distributed() -> Iterator[None]:
    """A cluster we start ourselves logs nothing below CRITICAL: what goes wrong reaches the
    user as one ``error:`` line (a worker killed for memory, say), not as log noise. The
    logger's level and the environment are as they were after the block."""
    import logging

    logger = logging.getLogger("distributed")
    level, env = logger.level, os.environ.get(_DISTRIBUTED_LOGGING)
    os.environ[_DISTRIBUTED_LOGGING] = "critical"  # the worker processes inherit it
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)
        if env is None:
            os.environ.pop(_DISTRIBUTED_LOGGING, None)
        else:
            os.environ[_DISTRIBUTED_LOGGING] = env


_DISTRIBUTED_LOGGING = "DASK_LOGGING__DISTRIBUTED"


@contextmanager
def _workers_ignore_ctrl_c() -> Iterator[None]:
    """Worker processes started in this block ignore SIGINT (a process started with SIGINT
    ignored keeps ignoring it, and Python then raises no KeyboardInterrupt there).

    Ctrl-C at a terminal reaches the whole process group: the workers would each print a
    KeyboardInterrupt traceback. This process alone stops the run (one ``error:`` line,
    exit 130) and closes the cluster, workers included. A Ctrl-C in the second or so the
    cluster takes to start is not seen.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set a handler; a library call from another
        return  # thread keeps dask's behaviour
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def _on_cluster(client, opts: ExecOptions, *owned):
    """Chunks on ``client``'s cluster (its dashboard shown, its performance report written);
    the client, and what else this command started (``owned``), closed at the end."""
    try:
        with cluster_session(client, quiet=opts.quiet,
                             performance_report=opts.performance_report):
            yield DaskExecutor(client)
    finally:
        client.close()
        for thing in owned:
            thing.close()


@contextmanager
def open_executor(opts: ExecOptions | None = None, client=None):
    """The executor for one command; a cluster started here is closed at the end.

    - ``client=`` or a current client: run there.
    - ``--scheduler ADDRESS``: connect to that cluster.
    - ``--workers N`` or ``--memory-limit``: start a local cluster of N worker processes.
    - otherwise: threads in this process (fastest here, measured: no start-up, no copies).
    """
    opts = opts or ExecOptions()
    drop_ctrl_c_race_log()  # (a cluster's Ctrl-C)
    client = current_client(client)
    if client is not None:
        yield DaskExecutor(client)
        return
    if opts.scheduler:
        from distributed import Client

        try:
            client = Client(opts.scheduler, timeout="10s")
        except OSError as exc:
            raise PipelineError(f"cannot reach the Dask scheduler {opts.scheduler} "
                                f"({str(exc).splitlines()[0]})") from None
        with _on_cluster(client, opts) as executor:
            yield executor
        return
    memory = opts.memory_limit_bytes()
    if opts.workers or memory:
        with _quiet_distributed():
            from distributed import Client, LocalCluster

            with _workers_ignore_ctrl_c():
                cluster = LocalCluster(
                    n_workers=opts.workers or 2,
                    threads_per_worker=opts.threads_per_worker or 1,
                    memory_limit=memory or "auto",
                    processes=True,
                    dashboard_address=":0",  # its HTTP routes on a free port: never a clash
                )
            with _on_cluster(Client(cluster), opts, cluster) as executor:
                yield executor
        return
    from ..ops.buffers import fast_pool

    require_cluster_for_report(opts.performance_report)
    with fast_pool():
        executor = LocalExecutor(opts.threads_per_worker)
        try:
            yield executor
        finally:
            executor.close()
