"""Small objects fetched whole at planning, their bytes kept for this process's chunks.

On an object store a small file costs one request whichever part of it is needed, so
planning (a Parquet footer, a CSV header and its type samples) fetches it whole and keeps
the bytes: a chunk read in the same process then makes no request for it (a Dask worker
fetches its own). Kept bytes are given up when a chunk takes them or the next plan starts,
and never exceed ``BUDGET`` bytes in all.
"""

from __future__ import annotations

import threading

# an object up to WHOLE_AT_PLANNING bytes is fetched whole by planning's one GET
WHOLE_AT_PLANNING = 1 << 20
# the bytes kept at once, all plans of the process together
BUDGET = 256 << 20

_KEPT: dict[str, bytes] = {}
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


def keep(path: str, body: bytes, reserved: int) -> None:
    """Keep ``path``'s bytes (fetched under a reservation of ``reserved`` bytes)."""
    with _LOCK:
        old = _KEPT.get(path)
        _KEPT[path] = body
        _HELD[0] += len(body) - reserved - (len(old) if old is not None else 0)


def take(path: str) -> bytes | None:
    """The bytes of ``path`` kept at planning (once: they are given up), or None."""
    with _LOCK:
        body = _KEPT.pop(path, None)
        if body is not None:
            _HELD[0] -= len(body)
        return body


def drop_all() -> None:
    """Give up every object's bytes kept by an earlier plan of this process."""
    with _LOCK:
        _KEPT.clear()
        _HELD[0] = 0
