"""Column buffers from pyarrow's memory pool, seen as NumPy arrays.

Fresh NumPy arrays of a chunk's size are new ``mmap`` regions, which NumPy marks for huge
pages: every chunk then pays page faults and, on a fragmented machine, kernel compaction
stalls (measured here as seconds of system time per run). pyarrow's pool keeps freed memory
for the next chunk, and the Arrow array is built on the same buffer without a copy.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pyarrow as pa


@contextmanager
def fast_pool() -> Iterator[None]:
    """Within the block, jemalloc, holding freed pages for a few seconds, is pyarrow's
    default pool; the pool before is the default again after it.

    Measured on 16M x 20 transforms: mimalloc returned freed chunk memory to the kernel and
    paid it back in page faults (several seconds of system time); jemalloc with a longer
    decay reuses it. Nothing changes where pyarrow was built without jemalloc. (The decay is
    a setting of the jemalloc pool alone, which is nobody's default after the block.)
    """
    before = pa.default_memory_pool()
    try:
        pool = pa.jemalloc_memory_pool()
        pa.jemalloc_set_decay_ms(5000)
    except (NotImplementedError, AttributeError, pa.ArrowException):
        pool = None
    if pool is not None:
        pa.set_memory_pool(pool)
    try:
        yield
    finally:
        if pool is not None:
            pa.set_memory_pool(before)


def empty_column(n: int, dtype) -> tuple[np.ndarray, pa.Buffer]:
    """A writable NumPy array of ``n`` values backed by a new pyarrow buffer."""
    dtype = np.dtype(dtype)
    buf = pa.allocate_buffer(max(n * dtype.itemsize, 1))
    return np.frombuffer(buf, dtype=dtype, count=n), buf


def to_arrow(values: np.ndarray, buf: pa.Buffer | None = None, mask=None) -> pa.Array:
    """The Arrow array over ``values``, zero-copy (``pa.array`` would import pandas)."""
    if mask is not None or values.dtype not in _NUMPY_TYPES.values() or \
            not values.flags.c_contiguous:
        return pa.array(values, mask=mask)
    if buf is None:
        buf = pa.py_buffer(values)
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [None, buf])


def column_numpy(col) -> np.ndarray:
    """A column's values as NumPy, zero-copy for one chunk without nulls.

    (``ChunkedArray.to_numpy`` imports pandas, 0.3 s of a short run's start-up.)
    """
    if isinstance(col, pa.ChunkedArray):
        col = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
    dtype = _NUMPY_TYPES.get(col.type)
    if dtype is not None and col.null_count == 0:
        return np.frombuffer(col.buffers()[1], dtype=dtype, count=len(col), offset=col.offset
                             * dtype.itemsize) if len(col) else np.empty(0, dtype)
    return col.to_numpy(zero_copy_only=False)


_NUMPY_TYPES = {pa.from_numpy_dtype(t): np.dtype(t) for t in (
    np.float64, np.float32, np.int64, np.int32, np.int16, np.int8, np.uint64, np.uint32,
    np.uint16, np.uint8)}


def fill_column(col, out: np.ndarray) -> None:
    """Copy a (chunked) column into ``out``, chunk by chunk, without an intermediate copy."""
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    start = 0
    for c in chunks:
        out[start:start + len(c)] = column_numpy(c)
        start += len(c)
