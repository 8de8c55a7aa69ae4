"""Per-chunk cost: wall and CPU seconds, and the process's memory after and at peak."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass

import psutil


@dataclass
class ChunkRecord:
    """One line of ``OUT/_chunks.jsonl``."""

    chunk: int
    part: str | None
    source: str
    rows: int
    seconds: float
    cpu_seconds: float
    rss_bytes: int
    peak_rss_bytes: int
    worker: str
    device: str
    start: float = 0.0  # wall-clock start (Unix seconds), for the report's timeline

    def to_dict(self) -> dict:
        return asdict(self)


class _Watch:
    __slots__ = ("peak",)

    def __init__(self, rss: int) -> None:
        self.peak = rss


class RssSampler:
    """Samples this process's RSS every ``interval`` seconds while any chunk is running."""

    _instance: RssSampler | None = None
    _lock = threading.Lock()

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.process = psutil.Process()
        self.watches: set[_Watch] = set()
        self.cond = threading.Condition()
        self.pid = os.getpid()
        thread = threading.Thread(target=self._loop, name="pipeline-rss", daemon=True)
        thread.start()

    @classmethod
    def get(cls) -> RssSampler:
        with cls._lock:
            if cls._instance is None or cls._instance.pid != os.getpid():
                cls._instance = RssSampler()
            return cls._instance

    def rss(self) -> int:
        return self.process.memory_info().rss

    def _loop(self) -> None:
        while True:
            with self.cond:
                while not self.watches:
                    self.cond.wait()
                watches = list(self.watches)
            rss = self.rss()
            for w in watches:
                if rss > w.peak:
                    w.peak = rss
            time.sleep(self.interval)

    def start(self) -> _Watch:
        w = _Watch(self.rss())
        with self.cond:
            self.watches.add(w)
            self.cond.notify()
        return w

    def stop(self, w: _Watch) -> tuple[int, int]:
        with self.cond:
            self.watches.discard(w)
        rss = self.rss()
        return rss, max(w.peak, rss)


def worker_name() -> str:
    """The Dask worker's address when running on one, else host:pid/thread."""
    if "distributed" in sys.modules:  # never import it just to ask (0.5 s of start-up)
        from distributed import get_worker

        try:
            return get_worker().address
        except ValueError:
            pass
    return f"{socket.gethostname()}:{os.getpid()}/{threading.current_thread().name}"


class ChunkTimer:
    """Context manager measuring one chunk on the thread that runs it."""

    def __enter__(self) -> ChunkTimer:
        self.sampler = RssSampler.get()
        self.watch = self.sampler.start()
        self.t0 = time.perf_counter()
        self.start = time.time()
        self.c0 = time.thread_time()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.t0
        self.cpu_seconds = time.thread_time() - self.c0
        self.rss, self.peak = self.sampler.stop(self.watch)

    def record(self, *, chunk: int, part: str | None, source: str, rows: int, device: str):
        return ChunkRecord(
            chunk=chunk, part=part, source=source, rows=rows,
            seconds=round(self.seconds, 6), cpu_seconds=round(self.cpu_seconds, 6),
            rss_bytes=self.rss, peak_rss_bytes=self.peak, worker=worker_name(), device=device,
            start=round(self.start, 6),
        )
