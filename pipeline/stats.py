"""Per-chunk statistics of the logistic loss: pure functions of a block and the coefficients.

For one loaded block (:class:`pipeline.design.Block`, or any ``(X, y)`` pair) at a point
``(coef, intercept)``, :func:`partition_stats` returns the sums a Newton step needs: the
loss, the gradient and the Hessian, in one fused pass over X. The solver
(:mod:`pipeline.newton`) adds them up over the chunks; nothing here knows of files, Dask or
the estimator. The functions at the end adapt it to chunk loaders (objects with ``load()``)
for the executor's passes.
"""

from __future__ import annotations

import threading

import numpy as np

from . import kernels
from .device import to_host


def margin(X: np.ndarray, coef: np.ndarray, intercept: float) -> np.ndarray:
    xp = kernels.namespace(X)
    return X @ xp.asarray(coef) + intercept


# Rows per block in partition_stats: a block of X (16384 x 20 float64 = 2.5 MiB) stays in
# cache while the margin, the gradient and the Hessian are taken from it, so each pass reads X
# from memory once; smaller blocks lose the second core to the GIL (measured).
_STATS_BLOCK = 16384


def partition_stats(block, coef, intercept: float) -> tuple:
    """Loss sum, gradient and Hessian of one partition at (coef, intercept), fused.

    Returns ``(n, loss_sum, grad[p+1], hess[p+1, p+1], wrong)`` with the intercept last;
    ``wrong`` counts rows on the wrong side of the boundary (0 means separable). One
    ``e = exp(-|z|)`` per row gives all three: -log σ(m) = log1p(e) + max(-m, 0) with m the
    margin of the true class, σ(z) = max(e, [z >= 0]) / (1 + e), σ'(z) = e / (1 + e)².
    """
    X, y = block[0], block[1]
    if not isinstance(X, np.ndarray):
        return _partition_stats_xp(X, y, coef, intercept)
    n, p = X.shape
    grad = np.zeros(p + 1)
    hess = np.zeros((p + 1, p + 1))
    loss = 0.0
    wrong = 0
    coef = np.asarray(coef, dtype=np.float64)
    B = _STATS_BLOCK
    # Scratch reused across blocks and calls on this thread: fresh multi-MB temporaries are
    # mmap/munmap pairs whose page faults and address-space lock serialise the threads.
    z, e, w = (_scratch(f"v{i}", (B,)) for i in range(3))
    rh = _scratch("rh", (2, B))  # r and h as rows: one product with X gives both sums
    Xh = _scratch("Xh", (p, B)).T  # (B, p), column-major like X
    with np.errstate(over="ignore", under="ignore"):
        for s in range(0, n, B):
            m = min(B, n - s)
            Xb, yb = X[s:s + m], y[s:s + m]
            zb, eb, wb = z[:m], e[:m], w[:m]
            rb, hb = rh[0, :m], rh[1, :m]
            np.matmul(Xb, coef, out=zb)
            zb += intercept
            np.abs(zb, out=eb)
            np.negative(eb, out=eb)
            np.exp(eb, out=eb)                        # e = exp(-|z|)
            np.multiply(yb, -2.0, out=wb)
            wb += 1.0
            wb *= zb                                  # -m: >= 0 when wrong
            wrong += int(np.count_nonzero(wb >= 0))
            np.maximum(wb, 0.0, out=wb)
            loss += float(wb.sum())
            np.log1p(eb, out=wb)
            loss += float(wb.sum())                   # -log σ(m) = log1p(e) + max(-m, 0)
            np.greater_equal(zb, 0.0, out=rb)
            np.maximum(eb, rb, out=rb)
            np.add(eb, 1.0, out=wb)                   # d = 1 + e
            rb /= wb
            rb -= yb                                  # σ(z) - y
            np.multiply(wb, wb, out=hb)
            np.divide(eb, hb, out=hb)                 # σ'(z) = e / d², exact in the tails
            gh = rh[:, :m] @ Xb                       # (r @ X, h @ X) in one pass over X
            grad[:p] += gh[0]
            grad[p] += rb.sum()
            hess[p, :p] += gh[1]
            hess[p, p] += hb.sum()
            Xhb = Xh[:m]
            np.multiply(Xb, hb[:, None], out=Xhb)
            hess[:p, :p] += Xb.T @ Xhb
    hess[:p, p] = hess[p, :p]
    return n, loss, grad, hess, wrong


_SCRATCH = threading.local()


def _scratch(name: str, shape: tuple) -> np.ndarray:
    key = (name, shape)
    cache = getattr(_SCRATCH, "arrays", None)
    if cache is None:
        cache = _SCRATCH.arrays = {}
    arr = cache.get(key)
    if arr is None:
        arr = cache[key] = np.empty(shape)
    return arr


def _partition_stats_xp(X, y, coef, intercept):
    """The same statistics with any array namespace (CuPy on a GPU), results on the host."""
    xp = kernels.namespace(X)
    n, p = X.shape
    z = X @ xp.asarray(coef) + intercept
    e = xp.exp(-xp.abs(z))
    negm = z * (1.0 - 2.0 * y)
    loss = float(xp.sum(xp.log1p(e)) + xp.sum(xp.maximum(negm, xp.zeros_like(negm))))
    wrong = int(xp.sum(kernels.astype(xp, negm >= 0, xp.int64)))
    d = 1.0 + e
    r = kernels.sigmoid(z) - y
    h = e / (d * d)
    Xh = X * h[:, None]
    grad = np.empty(p + 1)
    hess = np.empty((p + 1, p + 1))
    grad[:p] = to_host(r @ X)
    grad[p] = float(xp.sum(r))
    hess[:p, :p] = to_host(X.T @ Xh)
    hess[p, :p] = hess[:p, p] = to_host(xp.sum(Xh, axis=0))
    hess[p, p] = float(xp.sum(h))
    return n, loss, grad, hess, wrong


# --- one chunk per task, for the executor's passes ------------------------------------------


def chunk_stats(item, *, coef, intercept):
    """The statistics of one block; a block loaded here adds its count of dropped rows."""
    if hasattr(item, "load"):
        block = item.load()
        return partition_stats(block, coef, intercept) + (rows_dropped(block),)
    return partition_stats(item, coef, intercept)


def load_only(loader):
    """Load one chunk's block, to be kept (the pass's statistics are already known)."""
    return loader.load(), None


def load_and_stats(loader):
    """Load one chunk's block and evaluate the starting point (w = 0) on it."""
    block = loader.load()
    stats = partition_stats(block, np.zeros(block[0].shape[1]), 0.0) + (rows_dropped(block),)
    return block, stats


def rows_dropped(block) -> int:
    """Rows a loader left out for missing values (its block's optional third item)."""
    return int(block[2]) if len(block) > 2 else 0
