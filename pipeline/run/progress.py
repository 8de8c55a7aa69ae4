"""A one-line progress bar on stderr (rows/s and ETA), shown only on a terminal."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total_rows: int | None, total_chunks: int, *, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.total_rows = total_rows
        self.total_chunks = total_chunks
        self.rows = 0
        self.chunks = 0
        self.t0 = time.perf_counter()
        self.last = 0.0

    def update(self, rows: int) -> None:
        self.rows += rows
        self.chunks += 1
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self.last < 0.1 and self.chunks < self.total_chunks:
            return
        self.last = now
        elapsed = max(now - self.t0, 1e-9)
        rate = self.rows / elapsed
        frac = self.chunks / max(self.total_chunks, 1)
        eta = elapsed * (1 - frac) / frac if frac > 0 else float("nan")
        width = 24
        bar = "#" * int(width * frac) + "-" * (width - int(width * frac))
        sys.stderr.write(f"\r[{bar}] {self.chunks}/{self.total_chunks} chunks  "
                         f"{self.rows:,} rows  {rate:,.0f} rows/s  ETA {eta:5.1f}s ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()
