"""Small objects fetched whole at planning, their bytes kept for this process's chunks.

On an object store a small file costs one request whichever part of it is needed, so
planning (a Parquet footer, a CSV header and its type samples) fetches it whole and keeps
the bytes: a chunk read in the same process then makes no request for it (a Dask worker
fetches its own). A CSV file's table, parsed whole at planning to infer its types, is kept
beside its bytes: its chunk uses it where the planned types are the file's own, and parses
the bytes only where they are not. What is kept is given up when a chunk takes it or the
next plan starts, and never exceeds ``BUDGET`` bytes in all (tables counted too).
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import pyarrow as pa

# an object up to WHOLE_AT_PLANNING bytes is fetched whole by planning's one GET
WHOLE_AT_PLANNING = 1 << 20
# the bytes kept at once, all plans of the process together
BUDGET = 256 << 20



class Kept(NamedTuple):
    """An object's bytes, and for a CSV file its table as parsed at planning (or None)."""

    body: bytes
    table: pa.Table | None = None

    @property
    def nbytes(self) -> int:
        # (the buffers' sizes: 50 times faster than Table.nbytes, measured, and what the
        # memory holds)
        return len(self.body) + (self.table.get_total_buffer_size()
                                 if self.table is not None else 0)


_KEPT: dict[str, Kept] = {}
_LOCK = threading.Lock()
_HELD = [0]  # bytes kept or reserved


def reserve(size: int) -> bool:
    """Whether an object of ``size`` bytes may be fetched whole and kept; if so, its bytes
    are counted until :func:`keep` or :func:`release`."""
    with _LOCK:
        if size > WHOLE_AT_PLANNING or _HELD[0] + size > BUDGET:
            return False
        _HELD[0] += size
        return True


def release(size: int) -> None:
    """Give back a reservation whose bytes are not kept."""
    with _LOCK:
        _HELD[0] -= size


def keep(path: str, body: bytes, reserved: int, table: pa.Table | None = None) -> None:
    """Keep ``path``'s bytes (fetched under a reservation of ``reserved`` bytes) and, for a
    CSV file, its ``table`` (kept only while the budget holds it)."""
    with _LOCK:
        old = _KEPT.pop(path, None)
        _HELD[0] -= reserved + (old.nbytes if old is not None else 0)
        kept = Kept(body, table)
        if table is not None and _HELD[0] + kept.nbytes > BUDGET:
            kept = Kept(body)
        _KEPT[path] = kept
        _HELD[0] += kept.nbytes


def peek(path: str) -> bytes | None:
    """The bytes kept of ``path``, left kept (planning types a file again from them)."""
    with _LOCK:
        kept = _KEPT.get(path)
        return None if kept is None else kept.body


def take(path: str) -> Kept | None:
    """What was kept of ``path`` at planning (once: it is given up), or None."""
    with _LOCK:
        kept = _KEPT.pop(path, None)
        if kept is not None:
            _HELD[0] -= kept.nbytes
        return kept


def drop_all() -> None:
    """Give up every object's bytes kept by an earlier plan of this process."""
    with _LOCK:
        _KEPT.clear()
        _HELD[0] = 0
