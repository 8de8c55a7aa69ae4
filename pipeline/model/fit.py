"""Fitting a :class:`~pipeline.model.estimator.LogisticModel` on chunks: the passes over the
data, the warm start from a sample, the Newton solve, an identifiable basis for a rank-deficient
design, and the fitted attributes."""

from __future__ import annotations

import functools
import time
import warnings
from typing import Self

import numpy as np

from ..errors import PipelineError
from ..ops.design import (
    block_nbytes,
    check_category_count,
    merge_vocabularies,
)
from ..ops.values import one_class_label
from .modelfile import same_class
from .newton import PassStats, newton_solve
from .stats import (
    chunk_stats,
    combine_stats,
    load_and_stats,
    load_only,
    stats_and_sample,
)


class ConvergenceWarning(UserWarning):
    """The solver stopped before reaching the optimum (see the model's ``converged``)."""


class RankWarning(UserWarning):
    """The design (features, one-hot levels and intercept) is rank-deficient."""


# --- the model --------------------------------------------------------------------------------


WARM_START_ROWS = 1 << 20
WARM_START_FRACTION = 1 / 32


class ChunkFit:
    """The fitting half of :class:`~pipeline.model.estimator.LogisticModel` (a mixin)."""

    def fit_chunks(self, loaders: list, executor, *, features, label: str = "label",
                   classes: tuple = (1, 0), weight: str | None = None, categorical=(),
                   max_categories: int = 1000, cache: bool | None = None,
                   log=None) -> Self:
        """Fit over chunk loaders, each pass mapped over them by ``executor``.

        Parameters
        ----------
        loaders : list
            Objects with ``load()`` returning a :class:`~pipeline.ops.design.Block` (features X,
            0/1 label y, rows dropped, sample weights), e.g. :class:`pipeline.api.TrainChunk`.
        executor : pipeline.run.execution.Executor
            Runs each pass's per-chunk statistics (threads here, or a Dask cluster).
        features, label, weight, categorical : the names of the blocks' columns (recorded
            in the model); ``categorical`` columns are one-hot encoded over the vocabulary
            learned in the first pass (the union of the chunks' values, sorted; at most
            ``max_categories`` per column, else an error naming the column).
        classes : (positive, negative)
            The label values the blocks' y = 1 and y = 0 stand for (keys of ``class_weight``).
        cache : bool or None
            Keep the loaded blocks in worker memory between passes (True), re-read them every
            pass (False), or decide by the data's size (None): the first pass is then
            streamed, evaluates the starting point (w = 0) and counts the rows, and the blocks
            are cached only if :meth:`Executor.fits_in_memory` says so. ``cached_`` records
            the choice.
        log : callable, optional
            Receives each pass's history entry as it is computed.
        """
        self._validate_params()
        self.features_ = list(features)
        self.label_ = label
        self.weight_ = weight
        self.positive_, self.negative_ = classes
        self._categorical = tuple(categorical)
        self._max_categories = max_categories
        cw = self._class_weights()
        t0 = time.perf_counter()
        first = None
        streamed = cache is not None and not cache  # False as given: nothing read yet
        if cache is None:
            fn = functools.partial(chunk_stats, coef=np.zeros(len(self.features_)),
                                   intercept=0.0, class_weight=cw)
            first = [r for _, r in executor.map_unordered(fn, loaders)]
            rows = sum(q.rows for q in first)
            cache = executor.fits_in_memory(block_nbytes(
                rows, len(self.features_), weighted=weight is not None,
                categorical=len(self._categorical)))
            if cache:
                blocks, _ = executor.cache(load_only, loaders)
        elif cache:
            # the loading pass also evaluates the first point (w = 0): one pass fewer
            blocks, first = executor.cache(functools.partial(load_and_stats, class_weight=cw),
                                           loaders)
        samples = None
        if streamed and self._sample_fits(loaders, executor):
            # streamed: the first pass keeps each chunk's warm-start sample in memory (not
            # when cache=None streams: its first pass, already done, would be read again)
            samples, first = executor.cache(functools.partial(
                stats_and_sample, fraction=WARM_START_FRACTION, class_weight=cw), loaders)
        self.cached_ = bool(cache)
        return self._solve(blocks if cache else loaders, executor, log=log, first=first, t0=t0,
                           warm_start=bool(cache) or samples is not None, samples=samples)

    def _sample_fits(self, loaders: list, executor) -> bool:
        """Whether a streamed fit keeps a warm-start sample: a penalty, every chunk's rows
        known before reading (Parquet), 2^20 rows or more, and a sample of at most 1/16 of
        the memory the caching rule allows (so it stays small beside the chunks in flight)."""
        rows = [getattr(item, "rows", None) for item in loaders]
        if self.penalty is None or any(r is None for r in rows) or \
                sum(rows) < WARM_START_ROWS:
            return False
        nbytes = block_nbytes(int(np.ceil(sum(rows) * WARM_START_FRACTION)),
                              len(self.features_), weighted=self.weight_ is not None,
                              categorical=len(self._categorical))
        return executor.fits_in_memory(16 * nbytes)

    def _class_weights(self, counts: tuple[int, int] | None = None):
        """``class_weight`` as (w0, w1) for the classes (negative, positive); None when
        every class weighs 1; ``"split"`` for ``"balanced"`` before the classes' total
        sample weights ``(n0, n1)`` (their row counts without weights) are known.

        ``"balanced"`` is scikit-learn's ``n_samples / (n_classes * bincount(y))``, with the
        bincount weighted by the sample weights as scikit-learn (1.6 and later) does."""
        spec = self.class_weight
        if spec is None:
            return None
        if isinstance(spec, str):  # "balanced": n_samples / (n_classes * bincount(y))
            if counts is None:
                return "split"
            n0, n1 = map(float, counts)
            if not (n0 > 0 and n1 > 0):
                raise PipelineError("class_weight='balanced' needs rows of both classes; "
                                    f"the training rows weigh {n0:g} in class "
                                    f"{self.negative_!r} and {n1:g} in class "
                                    f"{self.positive_!r}")
            return ((n0 + n1) / (2.0 * n0), (n0 + n1) / (2.0 * n1))
        weights = [1.0, 1.0]
        classes = (self.negative_, self.positive_)
        for key, value in spec.items():
            k = next((i for i, c in enumerate(classes) if same_class(key, c)), None)
            if k is None:
                raise PipelineError(f"class_weight names the class {key!r}, which is not a "
                                    f"class of the label (they are {classes[0]!r} and "
                                    f"{classes[1]!r})")
            weights[k] = float(value)
        return tuple(weights)

    def _learn_categories(self, categorical, parts) -> None:
        """The model's vocabulary per categorical column: the chunks' values, sorted."""
        for k, name in enumerate(categorical):
            vocab = merge_vocabularies(q.vocabularies[k] for q in parts
                                       if q.vocabularies is not None)
            check_category_count(name, len(vocab), self._max_categories)
            self.categories_[name] = vocab

    def _solve(self, blocks: list, executor, *, log=None, first=None,
               t0: float | None = None, warm_start: bool = False,
               samples: list | None = None) -> Self:
        """Newton's method over ``blocks`` (loaded blocks or loaders); sets the fitted state.

        ``warm_start`` (blocks held in memory, so that a pass over a part of each is cheap):
        on :data:`WARM_START_ROWS` rows or more, the penalised objective is first solved on
        a :data:`WARM_START_FRACTION` sample of every block (every 32nd row), and Newton's
        method on all the rows goes on from that optimum instead of from w = 0 (measured
        on 8M x 20: 3 passes after the loading pass instead of 5, the same optimum to
        6e-15). ``samples``: those samples, already taken (a streamed fit's first pass kept
        them), where ``blocks`` are loaders that read their chunk on every pass.
        """
        self.rows_dropped_ = 0
        cw = self._class_weights()
        categorical = getattr(self, "_categorical", ())
        n_numeric = len(self.features_)
        self.categories_ = {}
        passes = 0

        def pass_stats(coef, b, parts=None, sample=False) -> PassStats:
            nonlocal passes, cw
            if parts is None:  # else computed while loading
                vocab = tuple(self.categories_.values()) if passes else None
                items, fraction = blocks, 1.0
                if sample:  # the warm start's sample: kept by a streamed fit, else sliced
                    items, fraction = (samples, 1.0) if samples is not None else \
                        (blocks, WARM_START_FRACTION)
                fn = functools.partial(
                    chunk_stats, coef=np.zeros(n_numeric) if coef is None else coef,
                    intercept=0.0 if b is None else b, class_weight=cw, categories=vocab,
                    fraction=fraction)
                parts = [fn(item) for item in items] if executor is None else \
                    [r for _, r in executor.map_unordered(fn, items)]
            if not sample:  # a pass over the warm start's sample is not one over the data
                passes += 1
            if passes == 1 and not sample:  # the first pass counts dropped rows and classes
                self._learn_categories(categorical, parts)
                self.rows_dropped_ = sum(q.rows_dropped for q in parts)
                n1 = sum(q.positives for q in parts)
                self.class_counts_ = (sum(q.rows for q in parts) - n1, n1)
                if min(self.class_counts_) == 0 and n1 + self.class_counts_[0]:
                    raise one_class_label(self.label_, self.positive_ if n1 else
                                          self.negative_)
                if cw == "split":  # "balanced": the classes' total weights are known now
                    cw = self._class_weights(tuple(np.sum([q.weight for q in parts], axis=0)))
                self.class_weight_values_ = cw
            rows, loss, grad, hess, wrong, weight = combine_stats(
                parts, cw, n_numeric=n_numeric, categories=list(self.categories_.values()))
            return PassStats(weight=weight, loss=loss, grad=grad, hess=hess, wrong=wrong,
                             rows=rows)

        # the first pass (at w = 0) learns the vocabularies, hence the number of coefficients
        first = pass_stats(None, None, first)
        p_full = len(first.grad) - 1
        C = None if self.penalty is None else float(self.C)
        # the coordinates Newton's method moves: all, less the reference levels, or (a
        # rank-deficient design without a penalty) a basis of the identifiable directions
        T = identifiable_basis(self, first.hess, n_numeric, C is None)
        moved_stats = pass_stats
        if T is not None:
            def moved_stats(coef, b, sample=False) -> PassStats:
                """The statistics at the point ``T (coef, b)``, in the moved coordinates."""
                w = T @ np.append(coef, b)
                st = pass_stats(w[:p_full], w[p_full], sample=sample)
                return st._replace(grad=T.T @ st.grad, hess=T.T @ st.hess @ T)

            first = first._replace(grad=T.T @ first.grad, hess=T.T @ first.hess @ T)
        p = len(first.grad) - 1
        start, self.sample_passes_ = None, 0
        if warm_start and C is not None and first.rows >= WARM_START_ROWS:
            on_sample = functools.partial(moved_stats, sample=True)
            at_zero = on_sample(np.zeros(p), 0.0)
            self.sample_passes_ = 1
            # at w = 0 each row adds s_i (1/2 - y_i) to the intercept's gradient, so the
            # classes weigh S/2 -+ its sum. A sample without weight in both classes (blocks
            # sorted by the label, rows of weight 0 first) has no finite optimum to start from
            if at_zero.weight / 2 - abs(float(at_zero.grad[p])) > 1e-9 * at_zero.weight:
                sample = newton_solve(on_sample, p, C=C, tol=self.tol, max_iter=self.max_iter,
                                      first=at_zero, penalty_weight=first.weight)
                self.sample_passes_ = sample.passes
                if sample.converged:
                    start = (sample.coef, sample.intercept)
        res = newton_solve(moved_stats, p, C=C, tol=self.tol, max_iter=self.max_iter, log=log,
                           t0=t0, first=first, start=start)
        if res.separable:
            warnings.warn("the classes are linearly separable: without a penalty there is no "
                          "finite optimum; the coefficients are finite but not an optimum "
                          "(use a penalty, e.g. C=1.0)", ConvergenceWarning, stacklevel=3)
        elif not res.converged:
            warnings.warn(f"did not converge in {self.max_iter} iterations "
                          f"(loss {res.loss:.6g}, gradient {res.grad_norm:.3g}); the model is "
                          "saved with converged=false", ConvergenceWarning, stacklevel=3)
        coef, intercept = res.coef, res.intercept
        if T is not None:  # back to one coefficient per column (a reference level's is 0)
            w = T @ np.append(coef, intercept)
            coef, intercept = w[:p_full], float(w[p_full])
        self._set_fitted(coef, intercept)
        self.n_iter_ = np.array([res.iterations], dtype=np.int32)
        self.rows_ = res.rows
        self.passes_ = res.passes
        self.iterations_ = res.iterations
        self.converged_ = res.converged
        self.loss_ = res.loss
        self.history_ = res.history
        return self

    def _set_fitted(self, coef, intercept: float) -> None:
        """The fitted coefficients and what scikit-learn reads from a fitted classifier."""
        self.coef_ = np.asarray(coef, dtype=np.float64).reshape(1, -1)
        self.intercept_ = np.array([float(intercept)])
        self.classes_ = np.array([self.negative_, self.positive_])
        # one name per coefficient: a categorical column's levels are COLUMN_VALUE, as
        # scikit-learn's OneHotEncoder.get_feature_names_out names them
        names = [*self.features_, *(f"{k}_{_level_text(v)}"
                                    for k, vocab in getattr(self, "categories_", {}).items()
                                    for v in vocab)]
        self.n_features_in_ = len(names)
        # a model file's features are column names, except a NumPy fit's x0, x1, ...
        if names != [f"x{j}" for j in range(len(names))]:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_

    # prediction


def identifiable_basis(model, hess: np.ndarray, n_numeric: int, unpenalized: bool):
    """The (p + 1, q + 1) map from the coordinates the solver moves to the coefficients
    and intercept (the intercept last in both), or None for all of them.

    With ``drop_first``, each categorical column's first level is left out (its
    coefficient stays 0). Without a penalty, a design that is still rank-deficient (or
    nearly: a dependency within float64 rounding) has no unique optimum: it gets a
    :class:`RankWarning`, and the solver moves only in the design's row space, which
    yields the minimum-norm optimum, one point whatever the chunking or the order of the
    sums. ``hess`` is the data's Hessian at w = 0 (rows weighted s/4): its null space is
    that of the weighted design at every point. A penalised fit's optimum is unique.
    """
    size = hess.shape[0]
    refs, offset = [], n_numeric
    for vocab in model.categories_.values():
        refs.append(offset)
        offset += len(vocab)
    dropped = set(refs) if model._drop_first() else set()
    keep = np.array([i for i in range(size) if i not in dropped])
    null = _null_space(hess[np.ix_(keep, keep)]) if unpenalized else np.zeros((0, 0))
    if null.shape[1]:
        import scipy.linalg

        names = [*model.features_, *(f"{k}_{_level_text(v)}"
                                    for k, vocab in model.categories_.items()
                                    for v in vocab), "intercept"]
        involved = [names[keep[i]] for i in np.flatnonzero(
            np.abs(null).max(axis=1) > 1e-8)]
        many = ", ..." if len(involved) > 8 else ""
        warnings.warn(f"the design is rank-deficient, or nearly ({null.shape[1]} "
                      f"linear dependenc{'y' if null.shape[1] == 1 else 'ies'} among "
                      f"{', '.join(involved[:8])}{many}): without a penalty the data "
                      "cannot tell those coefficients apart; the stored ones are the "
                      "minimum-norm optimum"
                      + ("" if model._drop_first() or not model.categories_ else
                         " (--drop-first / drop_first=True gives each categorical "
                         "column a reference level)"), RankWarning, stacklevel=4)
        basis = scipy.linalg.null_space(null.T)
        T = np.zeros((size, basis.shape[1]))
        T[keep] = basis
        return T
    if not dropped:
        return None
    T = np.zeros((size, len(keep)))
    T[keep, np.arange(len(keep))] = 1.0
    return T


def _null_space(H: np.ndarray) -> np.ndarray:
    """An orthonormal-ish basis (columns) of the null space of a positive semi-definite
    matrix, found after Jacobi rescaling (raw, unscaled features); a coordinate with no
    curvature at all is in it."""
    d = np.sqrt(np.clip(np.diag(H), 0, None))
    live = d > 1e-300
    vectors = [np.eye(len(d))[:, i] for i in np.flatnonzero(~live)]
    if live.any():
        Hs = H[np.ix_(live, live)] / d[live][:, None] / d[live][None, :]
        vals, vecs = np.linalg.eigh(Hs)
        small = vals <= 1e-10 * max(float(vals[-1]), 1e-300)
        for u in vecs[:, small].T:
            v = np.zeros(len(d))
            v[live] = u / d[live]
            vectors.append(v / np.linalg.norm(v))
    return np.column_stack(vectors) if vectors else np.zeros((len(d), 0))


def _level_text(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
