"""Per-chunk statistics of the logistic loss: pure functions of a block and the coefficients.

For one loaded block (:class:`pipeline.ops.design.Block`, or any ``(X, y)`` pair) at a point
``(coef, intercept)``, :func:`partition_stats` returns the sums a Newton step needs: the
loss, the gradient and the Hessian, in one fused pass over X. The solver
(:mod:`pipeline.model.newton`) adds them up over the chunks; nothing here knows of files, Dask or
the estimator. The functions at the end adapt it to chunk loaders (objects with ``load()``)
for the executor's passes.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import numpy as np

from ..ops import kernels
from ..ops.device import to_host


def margin(X: np.ndarray, coef: np.ndarray, intercept: float) -> np.ndarray:
    xp = kernels.namespace(X)
    return X @ xp.asarray(coef) + intercept


# Rows per block in partition_stats: a block of X (16384 x 20 float64 = 2.5 MiB) stays in
# cache while the margin, the gradient and the Hessian are taken from it, so each pass reads X
# from memory once; smaller blocks lose the second core to the GIL (measured). The products
# go through np.dot, which releases the GIL around BLAS (np.matmul holds it: two threads of
# `@` ran no faster than one, measured with NumPy 2.4 and OpenBLAS 0.3.31). Wide designs
# (one-hot columns) take fewer rows, so that a block stays near 4 MiB.
_STATS_BLOCK = 16384
_BLOCK_BYTES = 4 << 20


def _block_rows(p: int) -> int:
    return min(_STATS_BLOCK, max(256, _BLOCK_BYTES // (8 * max(p, 1))))


def partition_stats(block, coef, intercept: float, class_weight=None) -> tuple:
    """Loss sum, gradient and Hessian of one partition at (coef, intercept), fused.

    Returns ``(n, loss_sum, grad[p+1], hess[p+1, p+1], wrong, weight_sum)`` with the
    intercept last; ``wrong`` counts rows of positive weight on the wrong side of the
    boundary (0 means separable). One ``e = exp(-|z|)`` per row gives all three:
    -log σ(m) = log1p(e) + max(-m, 0) with m the margin of the true class,
    σ(z) = max(e, [z >= 0]) / (1 + e), σ'(z) = e / (1 + e)².

    Each row counts with weight ``s_i = sample_weight_i * class_weight[y_i]``: the block's
    ``weight`` (a :class:`~pipeline.ops.design.Block` field; 1 when absent) times
    ``class_weight = (w0, w1)`` (1 for both when None). Without either, ``weight_sum = n``.
    """
    X, y = block[0], block[1]
    sw = getattr(block, "weight", None)
    if not isinstance(X, np.ndarray):
        return _partition_stats_xp(X, y, coef, intercept, sw, class_weight)
    n, p = X.shape
    grad = np.zeros(p + 1)
    hess = np.zeros((p + 1, p + 1))
    loss = 0.0
    wrong = 0
    weighted = sw is not None or class_weight is not None
    weight_sum = 0.0 if weighted else float(n)
    cw0, cw1 = (1.0, 1.0) if class_weight is None else map(float, class_weight)
    coef = np.asarray(coef, dtype=np.float64)
    B = _block_rows(p)
    # Scratch reused across blocks and calls on this thread: fresh multi-MB temporaries are
    # mmap/munmap pairs whose page faults and address-space lock serialise the threads.
    z, e, w = (_scratch(f"v{i}", (B,)) for i in range(3))
    rh = _scratch("rh", (2, B))  # r and h as rows: one product with X gives both sums
    Xh = _scratch("Xh", (p, B)).T  # (B, p), column-major like X
    Xc = _scratch("Xc", (p, B)).T  # the block of X, contiguous (see below)
    sv = _scratch("s", (B,)) if weighted else None
    with np.errstate(over="ignore", under="ignore"):
        for s in range(0, n, B):
            m = min(B, n - s)
            Xb, yb = X[s:s + m], y[s:s + m]
            if not (Xb.flags.f_contiguous or Xb.flags.c_contiguous):
                # np.dot runs BLAS without the GIL on contiguous operands (np.matmul holds
                # it, and np.dot copies strided ones): both threads then compute at once
                Xb = Xc[:m]
                np.copyto(Xb, X[s:s + m])
            zb, eb, wb = z[:m], e[:m], w[:m]
            rb, hb = rh[0, :m], rh[1, :m]
            np.dot(Xb, coef, out=zb)
            zb += intercept
            np.abs(zb, out=eb)
            np.negative(eb, out=eb)
            np.exp(eb, out=eb)                        # e = exp(-|z|)
            np.multiply(yb, -2.0, out=wb)
            wb += 1.0
            wb *= zb                                  # -m: >= 0 when wrong
            if weighted:                              # s = sample weight * class weight
                sb = sv[:m]
                np.multiply(yb, cw1 - cw0, out=sb)
                sb += cw0
                if sw is not None:
                    sb *= sw[s:s + m]
                weight_sum += float(sb.sum())
                wrong += int(np.count_nonzero((wb >= 0) & (sb > 0)))
                np.maximum(wb, 0.0, out=wb)
                loss += float(wb @ sb)
                np.log1p(eb, out=wb)
                loss += float(wb @ sb)
            else:
                wrong += int(np.count_nonzero(wb >= 0))
                np.maximum(wb, 0.0, out=wb)
                loss += float(wb.sum())
                np.log1p(eb, out=wb)
                loss += float(wb.sum())               # -log σ(m) = log1p(e) + max(-m, 0)
            np.greater_equal(zb, 0.0, out=rb)
            np.maximum(eb, rb, out=rb)
            np.add(eb, 1.0, out=wb)                   # d = 1 + e
            rb /= wb
            rb -= yb                                  # σ(z) - y
            np.multiply(wb, wb, out=hb)
            np.divide(eb, hb, out=hb)                 # σ'(z) = e / d², exact in the tails
            if weighted:
                rb *= sb
                hb *= sb
            gh = np.dot(rh[:, :m], Xb)                # (r @ X, h @ X) in one pass over X
            grad[:p] += gh[0]
            grad[p] += rb.sum()
            hess[p, :p] += gh[1]
            hess[p, p] += hb.sum()
            Xhb = Xh[:m]
            np.multiply(Xb, hb[:, None], out=Xhb)
            hess[:p, :p] += np.dot(Xb.T, Xhb)
    hess[:p, p] = hess[p, :p]
    return n, loss, grad, hess, wrong, weight_sum


_SCRATCH = threading.local()


def _scratch(name: str, shape: tuple) -> np.ndarray:
    """This thread's array ``name``, reused while its shape stays the same (one per name)."""
    cache = getattr(_SCRATCH, "arrays", None)
    if cache is None:
        cache = _SCRATCH.arrays = {}
    arr = cache.get(name)
    if arr is None or arr.shape != shape:
        arr = cache[name] = np.empty(shape)
    return arr


def onehot_stats(block, coef, intercept: float, class_weight=None, categories=None) -> tuple:
    """:func:`partition_stats` of a block with categorical columns, one-hot encoded a few
    thousand rows at a time (never the whole chunk's wide matrix).

    ``categories`` is the model's vocabulary per categorical column, and ``coef`` covers the
    numeric features and then every category. In the loading pass the vocabulary is not known
    yet (``categories=None``): the statistics are then taken at w = 0 (``coef`` must be
    zero) over the block's own vocabularies, for :func:`combine_stats` to place.
    """
    from ..ops.design import Block, category_positions

    X, y, sw = block.X, block.y, block.weight
    n, q = X.shape
    local = tuple(v for v, _ in block.cats)
    if categories is None:
        vocabs, codes = local, [c for _, c in block.cats]
        if np.any(coef):
            raise ValueError("statistics without the model's categories are taken at w = 0")
        coef = np.zeros(q + sum(len(v) for v in vocabs))
    else:
        vocabs = categories
        codes = []
        for vocab, (mine, c) in zip(categories, block.cats, strict=True):
            lut = category_positions(0, [vocab], (mine,))  # the chunk's code -> the model's
            codes.append(lut[c] if len(lut) else c)
    offsets = np.cumsum([q] + [len(v) for v in vocabs])[:-1]
    p = q + sum(len(v) for v in vocabs)
    B = _block_rows(p)
    Xf = _scratch("Xf", (p, B)).T  # (B, p), column-major
    total = None
    for s in range(0, n, B):
        m = min(B, n - s)
        Xb = Xf[:m]
        Xb[:, :q] = X[s:s + m]
        Xb[:, q:] = 0.0
        rows = np.arange(m)
        for off, c in zip(offsets, codes, strict=True):
            Xb[rows, off + c[s:s + m]] = 1.0
        sub = Block(Xb, y[s:s + m], 0, None if sw is None else sw[s:s + m])
        st = partition_stats(sub, coef, intercept, class_weight)
        total = st if total is None else tuple(a + b for a, b in zip(total, st, strict=True))
    if total is None:  # no rows
        total = (0, 0.0, np.zeros(p + 1), np.zeros((p + 1, p + 1)), 0, 0.0)
    return total


def _partition_stats_xp(X, y, coef, intercept, sw=None, class_weight=None):
    """The same statistics with any array namespace (CuPy on a GPU), results on the host."""
    xp = kernels.namespace(X)
    n, p = X.shape
    z = X @ xp.asarray(coef) + intercept
    e = xp.exp(-xp.abs(z))
    negm = z * (1.0 - 2.0 * y)
    d = 1.0 + e
    r = kernels.sigmoid(z) - y
    h = e / (d * d)
    rowloss = xp.log1p(e) + xp.maximum(negm, xp.zeros_like(negm))
    wrongs = negm >= 0
    weight_sum = float(n)
    if sw is not None or class_weight is not None:
        cw0, cw1 = (1.0, 1.0) if class_weight is None else map(float, class_weight)
        s = cw0 + (cw1 - cw0) * y
        if sw is not None:
            s = s * xp.asarray(sw)
        weight_sum = float(xp.sum(s))
        rowloss, r, h = rowloss * s, r * s, h * s
        wrongs = wrongs & (s > 0)
    loss = float(xp.sum(rowloss))
    wrong = int(xp.sum(kernels.astype(xp, wrongs, xp.int64)))
    Xh = X * h[:, None]
    grad = np.empty(p + 1)
    hess = np.empty((p + 1, p + 1))
    grad[:p] = to_host(r @ X)
    grad[p] = float(xp.sum(r))
    hess[:p, :p] = to_host(X.T @ Xh)
    hess[p, :p] = hess[:p, p] = to_host(xp.sum(Xh, axis=0))
    hess[p, p] = float(xp.sum(h))
    return n, loss, grad, hess, wrong, weight_sum


# --- one chunk per task, for the executor's passes ------------------------------------------


class ChunkStats(NamedTuple):
    """:func:`partition_stats` of one chunk, plus what its loading counted.

    With ``class_weight="split"`` the loss, gradient, Hessian, wrong and weight fields are
    stacked per class (index 0: the negative class, 1: the positive), to be combined with
    class weights known only once every chunk is loaded (``"balanced"``).
    """

    rows: int
    loss: float | np.ndarray
    grad: np.ndarray
    hess: np.ndarray
    wrong: int | np.ndarray
    weight: float | np.ndarray
    positives: int = 0      # rows of the positive class
    rows_dropped: int = 0   # rows the loader left out for missing values
    vocabularies: tuple | None = None  # the block's own, where the statistics use them
    vocabulary_sizes: tuple = ()       # per categorical column, this chunk's distinct values


def block_stats(block, coef, intercept, class_weight=None, categories=None) -> ChunkStats:
    """The :class:`ChunkStats` of one loaded block; ``class_weight`` (w0, w1), None or
    ``"split"``; ``categories``: the model's vocabularies (None in the loading pass)."""
    cats = getattr(block, "cats", ())
    if cats:
        def stats_of(cw):
            return onehot_stats(block, coef, intercept, cw, categories)
    else:
        def stats_of(cw):
            return partition_stats(block, coef, intercept, cw)
    if isinstance(class_weight, str):  # "split": once per class
        neg, pos = stats_of((1.0, 0.0)), stats_of((0.0, 1.0))
        stats = (neg[0], *(np.stack([a, b]) for a, b in zip(neg[1:], pos[1:], strict=True)))
    else:
        stats = stats_of(class_weight)
    y = block[1]
    positives = int(np.count_nonzero(y)) if isinstance(y, np.ndarray) else \
        int(to_host(y).sum())
    own = tuple(v for v, _ in cats) if cats and categories is None else None
    return ChunkStats(*stats, positives=positives, rows_dropped=rows_dropped(block),
                      vocabularies=own, vocabulary_sizes=tuple(len(v) for v, _ in cats))


def _placed(q: ChunkStats, n_numeric: int, categories) -> ChunkStats:
    """A chunk's statistics over its own vocabularies, placed among the model's columns."""
    from ..ops.design import category_positions

    idx = category_positions(n_numeric, categories, q.vocabularies)
    p = n_numeric + sum(len(v) for v in categories)
    idx = np.append(idx, p)  # the intercept, last
    lead = q.grad.shape[:-1]  # (2,) when split by class
    grad = np.zeros((*lead, p + 1))
    hess = np.zeros((*lead, p + 1, p + 1))
    grad[..., idx] = q.grad
    hess[..., idx[:, None], idx[None, :]] = q.hess
    return q._replace(grad=grad, hess=hess, vocabularies=None)


def combine_stats(parts: list[ChunkStats], class_weight=None, *, n_numeric: int = 0,
                  categories=None) -> tuple:
    """Sums over chunks: ``(rows, loss, grad, hess, wrong, weight)``; split statistics
    are combined with ``class_weight`` (w0, w1), and statistics over a chunk's own
    vocabularies are placed among the model's ``categories`` first."""
    parts = [_placed(q, n_numeric, categories) if q.vocabularies is not None else q
             for q in parts]
    rows = sum(q.rows for q in parts)
    loss = sum(q.loss for q in parts)
    grad = np.sum([q.grad for q in parts], axis=0)
    hess = np.sum([q.hess for q in parts], axis=0)
    wrong = sum(q.wrong for q in parts)
    weight = sum(q.weight for q in parts)
    if np.ndim(loss) == 1:  # split by class
        cw = np.asarray(class_weight, dtype=np.float64)
        loss, weight = float(cw @ loss), float(cw @ weight)
        grad, hess = np.tensordot(cw, grad, 1), np.tensordot(cw, hess, 1)
        wrong = int(np.sum(wrong[cw > 0]))
    return rows, loss, grad, hess, wrong, weight


def chunk_stats(item, *, coef, intercept, class_weight=None, categories=None,
                fraction: float = 1.0) -> ChunkStats:
    """The statistics of one chunk: a loaded block, or a loader (read here); with
    ``fraction`` < 1, of a sample of its rows (see :func:`block_sample`)."""
    block = item.load() if hasattr(item, "load") else item
    if fraction < 1.0:
        block = block_sample(block, fraction)
    return block_stats(block, coef, intercept, class_weight, categories)


def _map_rows(block, fn):
    """The block with ``fn`` applied to each of its per-row arrays (X, y, the weights, the
    categorical codes); a plain ``(X, y, ...)`` tuple keeps its other items."""
    if isinstance(block, tuple) and hasattr(block, "_replace"):  # a Block
        w = getattr(block, "weight", None)
        return block._replace(X=fn(block.X), y=fn(block.y),
                              weight=None if w is None else fn(w),
                              cats=tuple((v, fn(c)) for v, c in getattr(block, "cats", ())))
    return (fn(block[0]), fn(block[1]), *block[2:])


def block_sample(block, fraction: float):
    """Every ``round(1 / fraction)``-th row of a block, every field sliced (views, no copy):
    one chunk's share of the solver's warm-start sample. Spread over the whole block, so
    that rows ordered by time or by the label still give a fair sample (the block's first
    rows did not: measured up to 12 passes instead of 7 on ordered data)."""
    step = max(1, round(1 / fraction))
    return _map_rows(block, lambda a: a[::step])


def stats_and_sample(loader, *, fraction: float, class_weight=None):
    """Load one chunk, evaluate the starting point (w = 0) on it, and keep a copy of its
    warm-start sample (:func:`block_sample`): a streamed fit's first pass, after which only
    the samples stay in memory (the copies own their memory, not views of the block)."""
    block = loader.load()
    stats = block_stats(block, np.zeros(block[0].shape[1]), 0.0, class_weight)
    return _map_rows(block_sample(block, fraction), lambda a: a.copy()), stats


def load_only(loader):
    """Load one chunk's block, to be kept (the pass's statistics are already known)."""
    return loader.load(), None


def load_and_stats(loader, *, class_weight=None):
    """Load one chunk's block and evaluate the starting point (w = 0) on it."""
    block = loader.load()
    return block, block_stats(block, np.zeros(block[0].shape[1]), 0.0, class_weight)


def rows_dropped(block) -> int:
    """Rows a loader left out for missing values (its block's optional third item)."""
    return int(block[2]) if len(block) > 2 else 0
