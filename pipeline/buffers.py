"""Column buffers from pyarrow's memory pool, seen as NumPy arrays.

Fresh NumPy arrays of a chunk's size are new ``mmap`` regions, which NumPy marks for huge
pages: every chunk then pays page faults and, on a fragmented machine, kernel compaction
stalls (measured here as seconds of system time per run). pyarrow's pool keeps freed memory
for the next chunk, and the Arrow array is built on the same buffer without a copy.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def use_fast_pool() -> None:
    """Use jemalloc, holding freed pages for a few seconds, as pyarrow's default pool.

    Measured on 16M x 20 transforms: mimalloc returned freed chunk memory to the kernel and
    paid it back in page faults (several seconds of system time); jemalloc with a longer
    decay reuses it. Falls back silently where pyarrow was built without jemalloc.
    """
    try:
        pool = pa.jemalloc_memory_pool()
        pa.jemalloc_set_decay_ms(5000)
    except (NotImplementedError, AttributeError, pa.ArrowException):
        return
    pa.set_memory_pool(pool)


def empty_column(n: int, dtype) -> tuple[np.ndarray, pa.Buffer]:
    """A writable NumPy array of ``n`` values backed by a new pyarrow buffer."""
    dtype = np.dtype(dtype)
    buf = pa.allocate_buffer(max(n * dtype.itemsize, 1))
    return np.frombuffer(buf, dtype=dtype, count=n), buf


def to_arrow(values: np.ndarray, buf: pa.Buffer | None = None, mask=None) -> pa.Array:
    """The Arrow array over ``values`` (zero-copy when ``buf`` backs it)."""
    if buf is None or mask is not None:
        return pa.array(values, mask=mask)
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [None, buf])
