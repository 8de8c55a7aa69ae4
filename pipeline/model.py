"""Binary logistic regression, fitted out of core to scikit-learn's exact optimum.

The objective is scikit-learn's ``LogisticRegression(penalty="l2", C=C)`` on the raw features,
written per row::

    f(w, b) = mean_i -log σ(y_i' (x_i·w + b)) + ||w||² / (2 C n)      (y' = ±1)

(``penalty=None`` drops the second term). It is minimised by Newton's method: each pass over
the data computes, per partition and in one fused step, the loss, the gradient and the Hessian
(:func:`partition_stats`), and the sums are reduced on the client; the Newton system is solved
after a diagonal (Jacobi) rescaling, which conditions it without changing the optimum. Losses
go through log σ, probabilities through the stable sigmoid.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from . import kernels
from .device import to_host
from .errors import PipelineError, located_error
from .params import (
    COUNT,
    FINITE,
    NON_NEGATIVE,
    POSITIVE,
    Constraint,
    InstanceOf,
    ListOf,
    Nullable,
    Options,
    check,
)
from .values import apply_missing, binary_label, float_values


class ConvergenceWarning(UserWarning):
    """The solver stopped before reaching the optimum (see the model's ``converged``)."""


# --- per-partition work: plain NumPy, mapped by the executor ---------------------------------


def load_block(block, features, label: str | None, source="", *, missing: str = "error",
               classes: tuple = (1, 0)) -> tuple[np.ndarray, np.ndarray | None]:
    """Features as a float64 (n, p) array and the label as float64 0/1, validated.

    ``block`` is a ``pyarrow.Table`` or a pandas DataFrame; ``source`` names where its rows
    come from (a :class:`~pipeline.sources.RowOrigin` locates each row's file and row).
    Features may be float, integer or bool columns (converted exactly); the label equals
    ``classes[0]`` (the positive class, 1) or ``classes[1]`` (0). Rows with a missing feature
    or label are an error, or dropped with ``missing="drop"``.

    X is column-major, so each column is one contiguous copy; its memory comes from
    pyarrow's pool (no fresh huge-page mappings per chunk).
    """
    from .buffers import empty_column

    table = block if isinstance(block, pa.Table) else pa.Table.from_pandas(
        block, preserve_index=False)
    used = [*features, *([label] if label is not None else [])]
    for name in used:
        if name not in table.column_names:
            raise PipelineError("no such column in the input", path=str(source) or None,
                                column=name)
    table, source, _ = apply_missing(table, used, missing, source)
    n = table.num_rows
    flat, _ = empty_column(n * len(features), np.float64)
    X = flat.reshape((len(features), n)).T  # (n, p), column-major
    for j, name in enumerate(features):
        float_values(table.column(name), name, source, out=X[:, j])
        if not np.isfinite(X[:, j].sum()):  # cheap; inf propagates into the sum
            bad = ~np.isfinite(X[:, j])
            if bad.any():
                raise located_error("feature is infinite", source, column=name,
                                    index=int(np.argmax(bad)))
    y = None
    if label is not None:
        y = binary_label(table.column(label), label, classes[0], classes[1], source)
    return X, y


def block_nbytes(rows: int, p: int) -> int:
    """Bytes of ``rows`` parsed rows: ``p`` float64 features and the float64 label."""
    return rows * (p + 1) * 8


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


# --- the model --------------------------------------------------------------------------------


_PENALTIES = ("l2", None)


class LogisticModel:
    """Binary logistic regression with scikit-learn's objective, fitted out of core.

    Parameters
    ----------
    C : float, default 1.0
        Inverse regularisation strength, as in scikit-learn (the intercept is not penalised).
    penalty : {"l2", None}, default "l2"
    tol : float, default 1e-10
        Stop when the Newton decrement's half-square (the objective decrease the next step
        predicts) is below ``tol * max(1, loss)``.
    max_iter : int, default 50
        Newton iterations at most; a model that stops there has ``converged = False`` and a
        :class:`ConvergenceWarning` is raised.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 0, 1, 1])
    >>> m = LogisticModel(C=1.0).fit(X, y)
    >>> m.predict(X).tolist()
    [0, 0, 1, 1]
    """

    def __init__(self, C: float = 1.0, penalty: str | None = "l2", tol: float = 1e-10,
                 max_iter: int = 50) -> None:
        self.C = C
        self.penalty = penalty
        self.tol = tol
        self.max_iter = max_iter

    # scikit-learn conventions
    def get_params(self, deep: bool = True) -> dict:
        return {"C": self.C, "penalty": self.penalty, "tol": self.tol, "max_iter": self.max_iter}

    def set_params(self, **params) -> LogisticModel:
        for k, v in params.items():
            if k not in self.get_params():
                raise ValueError(f"Invalid parameter {k!r} for LogisticModel")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"LogisticModel({args})"

    def _validate_params(self) -> None:
        """Check the parameters against the rules ``pipeline train`` declares for them."""
        from .options import constraint

        if self.penalty not in _PENALTIES:
            raise PipelineError("The 'penalty' parameter of LogisticModel must be one of 'l2' "
                                f"or None; got {self.penalty!r}")
        for name in ("C", "tol", "max_iter"):
            check(f"The {name!r} parameter of LogisticModel", getattr(self, name),
                  constraint("train", name))

    # fitting
    def fit(self, X, y=None, *, label: str = "label", features=None, client=None,
            executor=None, log=None) -> LogisticModel:
        """Fit on a NumPy ``X, y``, or on a dask DataFrame with ``label=`` and ``features=``.

        A dask DataFrame's partitions are kept in memory between passes only when they fit
        (:meth:`Executor.fits_in_memory`, the rule ``pipeline train`` uses); otherwise every
        pass re-reads them. ``cached_`` records which.
        """
        self._validate_params()
        if isinstance(X, np.ndarray) or (y is not None and not hasattr(X, "npartitions")):
            X = np.asarray(X, dtype=np.float64)
            if X.ndim != 2:
                raise PipelineError("X must be a 2-D array")
            yv = np.asarray(y, dtype=np.float64).reshape(-1)
            if len(yv) != len(X):
                raise PipelineError(f"X has {len(X)} rows but y has {len(yv)}")
            names = [f"x{j}" for j in range(X.shape[1])]
            table = pa.table([*(X[:, j] for j in range(X.shape[1])), yv],
                             names=[*names, "label"])
            block = load_block(table, names, "label")
            blocks = [(block[0][i:i + 65536], block[1][i:i + 65536])
                      for i in range(0, len(X), 65536)] or [block]
            self.features_ = names
            self.label_ = "label"
            self.passes_ = 0
            return self._solve(blocks, None, log=log)
        # a dask DataFrame: each partition is loaded and validated on the workers
        from .execution import open_executor

        if features is None:  # every floating-point column but the label, as the CLI does
            import pandas as pd

            features = [c for c in X.columns
                        if c != label and pd.api.types.is_float_dtype(X.dtypes[c])]
        self.features_ = list(features)
        self.label_ = label
        loaders = [_PartitionLoader(i, p, tuple(features), label)
                   for i, p in enumerate(X.to_delayed())]
        if executor is not None:
            return self._fit_chunks(loaders, executor, cache=None, log=log)
        with open_executor(client=client) as ex:
            return self._fit_chunks(loaders, ex, cache=None, log=log)

    def _fit_chunks(self, loaders: list, executor, *, cache: bool | None,
                    log=None) -> LogisticModel:
        """Fit over chunk loaders (objects with ``load()``), cached in worker memory or not.

        ``cache=None`` decides by the data's size, unknown before a pass: the first pass is
        streamed, evaluates the starting point (w = 0) and counts the rows, and the blocks
        are then cached only if :meth:`Executor.fits_in_memory` says so. ``cached_`` records
        the choice.
        """
        self.passes_ = 0
        t0 = time.perf_counter()
        first = None
        if cache is None:
            fn = functools.partial(_block_stats, coef=np.zeros(len(self.features_)),
                                   intercept=0.0)
            first = [r for _, r in executor.map_unordered(fn, loaders)]
            rows = sum(q[0] for q in first)
            cache = executor.fits_in_memory(block_nbytes(rows, len(self.features_)))
            if cache:
                blocks, _ = executor.cache(_load_only, loaders)
        elif cache:
            # the loading pass also evaluates the first point (w = 0): one pass fewer
            blocks, first = executor.cache(_load_and_stats, loaders)
        self.cached_ = bool(cache)
        return self._solve(blocks if cache else loaders, executor, log=log, first=first, t0=t0)

    def _solve(self, blocks: list, executor, *, log=None, first=None,
               t0: float | None = None) -> LogisticModel:
        p = len(self.features_)
        lam_scale = 0.0 if self.penalty is None else 1.0 / float(self.C)
        coef = np.zeros(p)
        b = 0.0
        self.history_ = []
        t0 = time.perf_counter() if t0 is None else t0

        def evaluate(coef, b, parts=None):
            if parts is None:  # else computed while loading
                fn = functools.partial(_block_stats, coef=coef, intercept=b)
                parts = [fn(item) for item in blocks] if executor is None else \
                    [r for _, r in executor.map_unordered(fn, blocks)]
            self.passes_ += 1
            if self.passes_ == 1:  # loaders report their dropped rows on the first pass
                self.rows_dropped_ = sum(q[5] for q in parts if len(q) > 5)
            n = sum(q[0] for q in parts)
            if n == 0:
                raise PipelineError("no rows to train on")
            loss = sum(q[1] for q in parts)
            g = np.sum([q[2] for q in parts], axis=0)
            H = np.sum([q[3] for q in parts], axis=0)
            wrong = sum(q[4] for q in parts)
            reg = lam_scale / n
            f = loss / n + 0.5 * reg * float(coef @ coef)
            g = g / n
            g[:p] += reg * coef
            H = H / n
            H[np.arange(p), np.arange(p)] += reg
            entry = {"pass": self.passes_, "loss": f, "grad_norm": float(np.max(np.abs(g))),
                     "seconds": round(time.perf_counter() - t0, 6),
                     "rss_bytes": _rss()}
            self.history_.append(entry)
            if log is not None:
                log(entry)
            return n, f, g, H, wrong

        n, f, g, H, wrong = evaluate(coef, b, first)
        converged = False
        separable = False
        iterations = 0
        for iterations in range(1, self.max_iter + 1):  # noqa: B007 - reported after
            step = _newton_step(H, g)
            dec = float(-g @ step)
            if dec / 2 <= self.tol * max(1.0, abs(f)) or not np.isfinite(dec):
                coef, b = coef + step[:p], b + step[p]   # the last step, predicted ≤ tol
                converged = bool(np.isfinite(dec))
                break
            if self.penalty is None and wrong == 0:
                separable = True
                break
            t = 1.0
            while True:
                c2, b2 = coef + t * step[:p], b + t * step[p]
                n, f2, g2, H2, wrong2 = evaluate(c2, b2)
                if f2 <= f - 1e-4 * t * dec or t < 1e-8:
                    break
                t *= 0.5
            coef, b, f, g, H, wrong = c2, b2, f2, g2, H2, wrong2
        if separable:
            warnings.warn("the classes are linearly separable: without a penalty there is no "
                          "finite optimum; the coefficients are finite but not an optimum "
                          "(use a penalty, e.g. C=1.0)", ConvergenceWarning, stacklevel=3)
        elif not converged:
            warnings.warn(f"did not converge in {self.max_iter} iterations "
                          f"(loss {f:.6g}, gradient {np.max(np.abs(g)):.3g}); the model is "
                          "saved with converged=false", ConvergenceWarning, stacklevel=3)
        if not (np.all(np.isfinite(coef)) and np.isfinite(b)):
            raise PipelineError("the solver produced non-finite coefficients")
        self.coef_ = coef
        self.intercept_ = float(b)
        self.rows_ = int(n)
        self.iterations_ = iterations
        self.converged_ = converged
        self.loss_ = float(f)
        return self

    # prediction
    def decision_function(self, X):
        self._check_fitted()
        if hasattr(X, "npartitions"):
            import pandas as pd

            feats = list(self.features_)
            meta = pd.Series([], dtype="float64", name="margin")
            return X[feats].map_partitions(_frame_margin, self.coef_, self.intercept_,
                                           meta=meta)
        X = np.asarray(X, dtype=np.float64) if isinstance(X, np.ndarray | list) else X
        return margin(X, self.coef_, self.intercept_)

    def predict_proba(self, X):
        """Probabilities of classes 0 and 1, shape (n, 2), like scikit-learn (lazy on dask)."""
        z = self.decision_function(X)
        if hasattr(z, "npartitions"):
            import pandas as pd

            return z.map_partitions(_frame_proba, meta=pd.DataFrame(
                {"p0": pd.Series([], dtype="float64"), "p1": pd.Series([], dtype="float64")}))
        xp = kernels.namespace(z)
        p1 = kernels.sigmoid(z)
        p0 = kernels.sigmoid(-z)
        return xp.stack([p0, p1], axis=1)

    def predict(self, X):
        z = self.decision_function(X)
        if hasattr(z, "npartitions"):
            return (z >= 0).astype("int8")
        return (z >= 0).astype(np.int64) if isinstance(z, np.ndarray) else z >= 0

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise PipelineError("this LogisticModel is not fitted yet; call fit or load")

    # persistence
    def to_dict(self) -> dict:
        self._check_fitted()
        return {
            "kind": "logistic", "version": 1, "features": list(self.features_),
            "coef": [float(c) for c in self.coef_], "intercept": self.intercept_,
            "label": self.label_, "C": None if self.penalty is None else float(self.C),
            "rows": self.rows_, "passes": self.passes_, "iterations": self.iterations_,
            "converged": self.converged_, "loss": self.loss_, "history": self.history_,
            "tol": self.tol, "max_iter": self.max_iter,
            "positive": getattr(self, "positive_", 1), "negative": getattr(self, "negative_", 0),
            "rows_dropped": getattr(self, "rows_dropped_", 0),
            "missing": getattr(self, "missing_", "error"),
            **({"input": self.input_} if getattr(self, "input_", None) is not None else {}),
        }

    def save(self, path: str | os.PathLike, *, storage_options: dict | None = None) -> None:
        """Write the model file (JSON) at ``path``, a local path or a URL, atomically.

        On a local disk: a temporary name, fsync, rename. On an object store: one PUT, which
        readers see whole or not at all. ``storage_options`` go to the URL's file system and
        are never written into the file.
        """
        from .storage import open_storage
        from .writer import write_json_atomic

        d = self.to_dict()
        storage, key = open_storage(path, storage_options)
        if storage.atomic_rename:
            write_json_atomic(key, d)
        else:
            storage.write_text(key, json.dumps(d, indent=1, default=str) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike, *, storage_options: dict | None = None
             ) -> LogisticModel:
        """Read and check a model file at ``path``, a local path or a URL."""
        from .storage import open_storage

        path = os.fspath(path)
        storage, key = open_storage(path, storage_options)
        try:
            with storage.open(key, "rb") as fh:
                raw = fh.read()
        except OSError as exc:
            why = exc.strerror or ("no such file" if isinstance(exc, FileNotFoundError)
                                   else type(exc).__name__)
            raise PipelineError(f"cannot read model file ({why})", path=path) from None
        try:
            d = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise PipelineError("model file is not JSON (truncated, or another format such as "
                                "a pickle, which is never loaded)", path=path) from None
        return cls.from_dict(d, path=path)

    @classmethod
    def from_dict(cls, d: dict, *, path: str | None = None) -> LogisticModel:
        """A fitted model from a model file's object, every field checked (see MODEL_FIELDS).

        Raises :class:`PipelineError` naming ``path`` and the first bad field. Fields this
        version does not know are ignored, so a newer writer's additions do not break it.
        """
        if not isinstance(d, dict):
            raise PipelineError("invalid model file: expected a JSON object; got "
                                f"{type(d).__name__}", path=path)
        for name, (rule, required) in MODEL_FIELDS.items():
            if name in d:
                check(f"invalid model file: field {name!r}", d[name], rule, path=path)
            elif required:
                raise PipelineError(f"invalid model file: field {name!r} is missing", path=path)
        feats, coef = d["features"], d["coef"]
        if len(coef) != len(feats):
            raise PipelineError(f"invalid model file: field 'coef' has {len(coef)} values for "
                                f"{len(feats)} features", path=path)
        C = d.get("C")
        m = cls(C=1.0 if C is None else float(C), penalty=None if C is None else "l2",
                tol=float(d.get("tol", 1e-10)), max_iter=d.get("max_iter", 50))
        m.features_ = list(feats)
        m.coef_ = np.array(coef, dtype=np.float64)
        m.intercept_ = float(d["intercept"])
        m.label_ = d.get("label", "label")
        m.rows_ = d.get("rows", 0)
        m.passes_ = d.get("passes", 0)
        m.iterations_ = d.get("iterations", 0)
        m.converged_ = d.get("converged", True)
        loss = d.get("loss")
        m.loss_ = None if loss is None else float(loss)
        m.history_ = list(d.get("history", []))
        m.input_ = d.get("input")
        # files written before labels had classes: 0/1 labels
        m.positive_, m.negative_ = d.get("positive", 1), d.get("negative", 0)
        if m.positive_ == m.negative_:
            raise PipelineError("invalid model file: fields 'positive' and 'negative' must "
                                "differ", path=path)
        m.rows_dropped_ = d.get("rows_dropped", 0)
        m.missing_ = d.get("missing", "error")
        return m


_NAMES = ListOf(InstanceOf(str, "a string"), "a non-empty list of unique column names",
                non_empty=True, unique=True)

_LABEL_VALUE = InstanceOf((bool, int, float, str),
                          "a label value (true/false, a number or a string)")

# Every field of a model file: (rule, required). Scoring needs the first five; the rest
# describe the fit and default when absent (rows, passes, iterations 0; converged true).
MODEL_FIELDS: dict[str, tuple[Constraint, bool]] = {
    "kind": (Options("logistic"), True),
    "version": (Options(1), True),
    "features": (_NAMES, True),
    "coef": (ListOf(FINITE, "a list of finite numbers"), True),
    "intercept": (FINITE, True),
    "label": (InstanceOf(str, "a string"), False),
    "C": (Nullable(POSITIVE), False),
    "tol": (POSITIVE, False),
    "max_iter": (COUNT, False),
    "rows": (NON_NEGATIVE, False),
    "passes": (NON_NEGATIVE, False),
    "iterations": (NON_NEGATIVE, False),
    "converged": (InstanceOf(bool, "true or false"), False),
    "loss": (Nullable(FINITE), False),
    "history": (ListOf(InstanceOf(dict, "an object"), "a list of objects"), False),
    "input": (Nullable(InstanceOf(list, "a list")), False),
    "positive": (_LABEL_VALUE, False),
    "negative": (_LABEL_VALUE, False),
    "rows_dropped": (NON_NEGATIVE, False),
    "missing": (Options("error", "drop"), False),
}


def _newton_step(H: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Solve H d = -g after Jacobi rescaling (conditions raw, unscaled features)."""
    import scipy.linalg  # here, not at import: the CLI's start-up is paid on every run

    dscale = np.sqrt(np.maximum(np.diag(H), np.finfo(float).tiny))
    Hs = H / dscale[:, None] / dscale[None, :]
    gs = g / dscale
    try:
        cf = scipy.linalg.cho_factor(Hs, check_finite=False)
        ds = scipy.linalg.cho_solve(cf, -gs, check_finite=False)
    except np.linalg.LinAlgError:
        ds = np.linalg.lstsq(Hs + 1e-12 * np.eye(len(g)), -gs, rcond=None)[0]
    return ds / dscale


def _block_stats(item, *, coef, intercept):
    """The statistics of one block; a block loaded here adds its count of dropped rows."""
    if hasattr(item, "load"):
        block = item.load()
        return partition_stats(block, coef, intercept) + (_dropped(block),)
    return partition_stats(item, coef, intercept)


def _load_only(loader):
    """Load one chunk's block, to be kept (the pass's statistics are already known)."""
    return loader.load(), None


def _load_and_stats(loader):
    """Load one chunk's block and evaluate the starting point (w = 0) on it."""
    block = loader.load()
    stats = partition_stats(block, np.zeros(block[0].shape[1]), 0.0) + (_dropped(block),)
    return block, stats


def _dropped(block) -> int:
    """Rows a loader left out for missing values (its block's optional third item)."""
    return int(block[2]) if len(block) > 2 else 0


@dataclass
class _PartitionLoader:
    index: int
    partition: object
    features: tuple
    label: str

    @property
    def source_path(self) -> str:
        return f"partition {self.index}"

    def load(self):
        frame = self.partition.compute(scheduler="sync")
        return load_block(frame, self.features, self.label, self.source_path)


def _frame_margin(frame, coef, intercept):
    import pandas as pd

    z = margin(frame.to_numpy(dtype=np.float64), coef, intercept)
    return pd.Series(z, index=frame.index, name="margin")


def _frame_proba(z):
    import pandas as pd

    v = z.to_numpy()
    return pd.DataFrame({"p0": kernels.sigmoid(-v), "p1": kernels.sigmoid(v)}, index=z.index)


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss
