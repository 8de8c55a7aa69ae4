"""Binary logistic regression, fitted out of core to scikit-learn's exact optimum.

The estimator: its parameters, ``fit`` (NumPy, pandas or dask input, or chunk loaders through
:meth:`LogisticModel.fit_chunks`), prediction, and the JSON model file. The objective is
scikit-learn's ``LogisticRegression(penalty="l2", C=C)`` on the raw features; it is minimised
by :func:`pipeline.newton.newton_solve` from the per-chunk statistics of
:mod:`pipeline.stats`, summed over the chunks by the executor. Losses go through log σ,
probabilities through the stable sigmoid.
"""

from __future__ import annotations

import functools
import json
import os
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from . import kernels
from .design import (
    Block,
    block_nbytes,
    check_category_count,
    load_block,
    merge_vocabularies,
)
from .errors import PipelineError
from .newton import PassStats, newton_solve
from .params import (
    COUNT,
    FINITE,
    NON_NEGATIVE,
    POSITIVE,
    Constraint,
    InstanceOf,
    Interval,
    ListOf,
    Nullable,
    Options,
    Real,
    check,
)
from .stats import (
    chunk_stats,
    combine_stats,
    load_and_stats,
    load_only,
    margin,
    stats_and_sample,
)
from .values import one_class_label


class ConvergenceWarning(UserWarning):
    """The solver stopped before reaching the optimum (see the model's ``converged``)."""


class RankWarning(UserWarning):
    """The design (features, one-hot levels and intercept) is rank-deficient."""


# --- the model --------------------------------------------------------------------------------


_PENALTIES = ("l2", None)

# The warm start (see ``LogisticModel._solve``): on this many rows or more, held in memory,
# the objective is first solved on this share of every block's rows. On 8M x 20 the sample
# of 1/32 was solved in 0.07 s and left 3 passes over all the rows instead of 5. The
# sample is every 32nd row (``stats.block_sample``), fair on rows ordered by time or label.
WARM_START_ROWS = 1 << 20
WARM_START_FRACTION = 1 / 32


class _ClassWeight(Constraint):
    """None, ``"balanced"``, or a mapping from class to a finite non-negative weight."""

    def is_satisfied_by(self, value) -> bool:
        if value is None or value == "balanced":
            return True
        return isinstance(value, dict) and len(value) <= 2 and all(
            _WEIGHT.is_satisfied_by(v) for v in value.values())

    def __str__(self) -> str:
        return ('None, "balanced" or a mapping from each class to a finite non-negative '
                'weight, e.g. {"0": 1.0, "1": 5.0}')


_WEIGHT = Interval(Real, 0, None)
CLASS_WEIGHT = _ClassWeight()


def parse_class_weight(value):
    """``--class-weight`` as given on the command line or in a job file: ``"balanced"``,
    JSON object text (``'{"0": 1, "1": 5}'``), a mapping, or None."""
    if isinstance(value, str) and value != "balanced":
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise PipelineError(f'--class-weight must be "balanced" or a JSON object such as '
                                f'{{"0": 1, "1": 5}}; got {value!r}') from None
    check("--class-weight", value, CLASS_WEIGHT)
    return value


def _same_class(key, value) -> bool:
    """Whether a class-weight key names the class ``value``: equal, or equal as text (JSON
    keys are strings: "1" names 1, "true" names True)."""
    if isinstance(key, bool) or isinstance(value, bool):
        return str(key).lower() == str(value).lower()
    return key == value or str(key) == str(value)


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
    class_weight : None, "balanced" or dict, default None
        Each class's weight, multiplying its rows' sample weights, keyed by the class (or the
        class as text, as JSON keys are); ``"balanced"`` is scikit-learn's
        ``n_samples / (2 * bincount(y))``.
    drop_first : bool or None, default None
        One-hot coding of categorical columns with a reference level: the first level of
        each column's sorted vocabulary gets no column of its own (its coefficient stays 0),
        as R's treatment coding and scikit-learn's ``OneHotEncoder(drop="first")``. None: True
        without a penalty (where a full one-hot beside the intercept is not identifiable),
        False with one (scikit-learn's default ``OneHotEncoder()``).

    A scikit-learn classifier (binary): after ``fit``, ``classes_``, ``n_features_in_``,
    ``feature_names_in_`` (DataFrame input), ``coef_`` (1, p), ``intercept_`` (1,),
    ``n_iter_``; ``predict``, ``predict_proba``, ``predict_log_proba``,
    ``decision_function``, ``score``. scikit-learn itself is not needed to use it.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array(["no", "no", "yes", "yes"])
    >>> m = LogisticModel(C=1.0, class_weight="balanced").fit(X, y)
    >>> m.classes_.tolist(), m.coef_.shape, m.predict_proba(X).shape
    (['no', 'yes'], (1, 1), (4, 2))
    >>> m.predict(X).tolist()
    ['no', 'no', 'yes', 'yes']
    """

    def __init__(self, C: float = 1.0, penalty: str | None = "l2", tol: float = 1e-10,
                 max_iter: int = 50, class_weight: dict | str | None = None,
                 drop_first: bool | None = None) -> None:
        self.C = C
        self.penalty = penalty
        self.tol = tol
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.drop_first = drop_first

    # scikit-learn conventions
    def get_params(self, deep: bool = True) -> dict:
        return {"C": self.C, "penalty": self.penalty, "tol": self.tol, "max_iter": self.max_iter,
                "class_weight": self.class_weight, "drop_first": self.drop_first}

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
        check("The 'class_weight' parameter of LogisticModel", self.class_weight,
              CLASS_WEIGHT)
        check("The 'drop_first' parameter of LogisticModel", self.drop_first,
              Nullable(InstanceOf(bool, "true or false")))

    def _drop_first(self) -> bool:
        """``drop_first`` as it applies: None means True exactly when there is no penalty."""
        return self.penalty is None if self.drop_first is None else bool(self.drop_first)

    # fitting
    def fit(self, X, y=None, *, sample_weight=None, label: str = "label", features=None,
            weight: str | None = None, categorical=(), max_categories: int = 1000,
            positive=None, client=None, executor=None, log=None) -> LogisticModel:
        """Fit on ``X, y`` (NumPy, pandas, lists), or on a dask DataFrame with ``label=``.

        In memory, this is scikit-learn's ``fit(X, y, sample_weight=None)``: ``y`` takes two
        values (``classes_``, sorted; the second is the positive class), a pandas DataFrame's
        column names become ``feature_names_in_`` and the model file's ``features``.
        ``sample_weight`` weighs each row's loss (finite, non-negative).

        A dask DataFrame is fitted out of core: ``label`` names the label column (bool,
        integer, string or categorical, with two values: the positive class is the larger
        one unless ``positive`` names it, as ``pipeline train --positive``), ``features`` the
        numeric ones (default: every floating-point column), ``weight`` a column of sample
        weights and ``categorical`` columns to one-hot encode (see :meth:`fit_chunks`).
        Its partitions are kept in memory between passes only when they fit
        (:meth:`Executor.fits_in_memory`, the rule ``pipeline train`` uses);
        otherwise every pass re-reads them. ``cached_`` records which.
        """
        self._validate_params()
        if not hasattr(X, "npartitions"):
            return self._fit_arrays(X, y, sample_weight, log)
        # a dask DataFrame: each partition is loaded and validated on the workers
        from .execution import open_executor

        categorical = tuple(categorical or ())
        if features is None:  # every floating-point column but the label, as the CLI does
            import pandas as pd

            features = [c for c in X.columns if c not in (label, weight, *categorical)
                        and pd.api.types.is_float_dtype(X.dtypes[c])]
        if label not in X.columns:
            raise PipelineError("no such label column", column=label)
        parts = X.to_delayed()
        label_parts = X[[label]].to_delayed()
        kw = {"features": features, "label": label, "weight": weight,
              "categorical": categorical, "max_categories": max_categories, "log": log}

        def fit(ex, classes):
            loaders = [_PartitionLoader(i, p, tuple(features), label, weight, categorical,
                                        max_categories, classes)
                       for i, p in enumerate(parts)]
            return self.fit_chunks(loaders, ex, classes=classes, **kw)

        def run(ex):
            import pandas as pd

            dtype = X.dtypes[label]
            if pd.api.types.is_bool_dtype(dtype):
                return fit(ex, (True, False) if positive is None or
                           _same_class(positive, True) else (False, True))
            if positive is None and pd.api.types.is_integer_dtype(dtype):
                # a 0/1 label needs no pass of its own: the first pass finds any other value
                try:
                    return fit(ex, (1, 0))
                except PipelineError as exc:
                    if not getattr(exc, "detail", str(exc)).startswith(
                            "label has a third value"):
                        raise
            return fit(ex, _partition_classes(label_parts, label, positive, ex))

        if executor is not None:
            return run(executor)
        with open_executor(client=client) as ex:
            return run(ex)

    def _fit_arrays(self, X, y, sample_weight, log) -> LogisticModel:
        """scikit-learn's ``fit`` on in-memory data, validated as scikit-learn does."""
        X, y, sw = _validate_xy(self, X, y, sample_weight)
        classes = np.unique(y)
        if len(classes) > 2:
            raise ValueError("Only binary classification is supported. The type of the "
                             f"target is multiclass ({len(classes)} classes: "
                             f"{classes[:5].tolist()}).")
        if len(classes) < 2:
            raise one_class_label(None, classes[0])
        yv = (y == classes[1]).astype(np.float64)
        step = 65536
        blocks = [Block(X[i:i + step], yv[i:i + step], 0, None if sw is None else sw[i:i + step])
                  for i in range(0, len(X), step)]
        names = getattr(self, "feature_names_in_", None)
        self.features_ = [str(c) for c in names] if names is not None else \
            [f"x{j}" for j in range(X.shape[1])]
        self.label_ = "label"
        self.weight_ = None
        self.negative_, self.positive_ = (_scalar(c) for c in classes)
        self._categorical = ()
        self._solve(blocks, None, log=log, warm_start=True)
        self.classes_ = classes
        self.n_features_in_ = X.shape[1]
        if names is not None:  # as validated: the DataFrame's columns, whatever they are
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return self

    def fit_chunks(self, loaders: list, executor, *, features, label: str = "label",
                   classes: tuple = (1, 0), weight: str | None = None, categorical=(),
                   max_categories: int = 1000, cache: bool | None = None,
                   log=None) -> LogisticModel:
        """Fit over chunk loaders, each pass mapped over them by ``executor``.

        Parameters
        ----------
        loaders : list
            Objects with ``load()`` returning a :class:`~pipeline.design.Block` (features X,
            0/1 label y, rows dropped, sample weights), e.g. :class:`pipeline.api.TrainChunk`.
        executor : pipeline.execution.Executor
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
            k = next((i for i, c in enumerate(classes) if _same_class(key, c)), None)
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
               samples: list | None = None) -> LogisticModel:
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
        T = self._identifiable_basis(first.hess, n_numeric, C is None)
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

    def _identifiable_basis(self, hess: np.ndarray, n_numeric: int, unpenalized: bool):
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
        for vocab in self.categories_.values():
            refs.append(offset)
            offset += len(vocab)
        dropped = set(refs) if self._drop_first() else set()
        keep = np.array([i for i in range(size) if i not in dropped])
        null = _null_space(hess[np.ix_(keep, keep)]) if unpenalized else np.zeros((0, 0))
        if null.shape[1]:
            import scipy.linalg

            names = [*self.features_, *(f"{k}_{_level_text(v)}"
                                        for k, vocab in self.categories_.items()
                                        for v in vocab), "intercept"]
            involved = [names[keep[i]] for i in np.flatnonzero(
                np.abs(null).max(axis=1) > 1e-8)]
            many = ", ..." if len(involved) > 8 else ""
            warnings.warn(f"the design is rank-deficient, or nearly ({null.shape[1]} "
                          f"linear dependenc{'y' if null.shape[1] == 1 else 'ies'} among "
                          f"{', '.join(involved[:8])}{many}): without a penalty the data "
                          "cannot tell those coefficients apart; the stored ones are the "
                          "minimum-norm optimum"
                          + ("" if self._drop_first() or not self.categories_ else
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
    def decision_function(self, X):
        """The margin x·w + b of each row, shape (n,) (lazy for dask input).

        A pandas or dask DataFrame is matched to the model's features by name (a column
        missing or out of order is an error, as in scikit-learn); categorical columns are
        encoded with the stored vocabularies (unknown values add nothing).
        """
        self._check_fitted()
        coef, b = self.coef_.ravel(), float(self.intercept_[0])
        if hasattr(X, "npartitions"):
            import pandas as pd

            cols = [*self.features_, *self.categories_]
            missing = [c for c in cols if c not in X.columns]
            if missing:
                raise PipelineError("the model's feature is missing from the input",
                                    column=missing[0])
            meta = pd.Series([], dtype="float64", name="margin")
            return X[cols].map_partitions(_frame_margin, self, meta=meta)
        if hasattr(X, "__array_namespace__") and not isinstance(X, np.ndarray):
            return margin(X, coef, b)  # CuPy or another array-API array: as it is
        if self.categories_:
            return _frame_margin(X, self).to_numpy()
        X = _validate_x(self, X)
        return margin(X, coef, b)

    def predict_proba(self, X):
        """Probabilities of ``classes_`` (negative, positive), shape (n, 2), like
        scikit-learn (the stable sigmoid; lazy on dask)."""
        return self._class_pair(X, kernels.sigmoid)

    def predict_log_proba(self, X):
        """Log-probabilities of ``classes_``, shape (n, 2): log σ(-z) and log σ(z), exact in
        the tails (never the log of a rounded probability)."""
        return self._class_pair(X, kernels.log_sigmoid)

    def _class_pair(self, X, kernel):
        """``kernel`` of the negative and the positive margin, side by side (dask input: a
        lazy dask array of shape (n, 2), its row count unknown until computed)."""
        z = self.decision_function(X)
        if hasattr(z, "npartitions"):
            import pandas as pd

            return z.map_partitions(functools.partial(_frame_pair, kernel=kernel),
                                    meta=pd.DataFrame({"p0": pd.Series([], dtype="float64"),
                                                       "p1": pd.Series([], dtype="float64")})
                                    ).to_dask_array()
        xp = kernels.namespace(z)
        return xp.stack([kernel(-z), kernel(z)], axis=1)

    def predict(self, X):
        """The class of each row: ``classes_[1]`` where the margin is > 0, as scikit-learn
        (dask input: a lazy dask Series of the classes, named after the label)."""
        z = self.decision_function(X)
        if hasattr(z, "npartitions"):
            import pandas as pd

            meta = pd.Series(self.classes_[:0], name=getattr(self, "label_", None))
            return z.map_partitions(_frame_classes, self.classes_, meta.name, meta=meta)
        if not isinstance(z, np.ndarray):
            return z > 0
        return self.classes_[(z > 0).astype(np.intp)]

    def score(self, X, y, sample_weight=None) -> float:
        """Mean accuracy on ``X, y`` (weighted by ``sample_weight``), as scikit-learn's."""
        right = np.asarray(self.predict(X)) == np.asarray(y).reshape(-1)
        return float(np.average(right, weights=sample_weight))

    def __sklearn_tags__(self):
        """scikit-learn's tags (asked for by scikit-learn only, so imported here)."""
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags

        # binary only: one logistic margin; multiclass data is an error, not one-vs-rest
        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags(multi_class=False),
                    input_tags=InputTags(allow_nan=False))

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "coef_")

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            msg = "this LogisticModel is not fitted yet; call fit or load"
            try:
                from sklearn.exceptions import NotFittedError
            except ImportError:  # pragma: no cover - without scikit-learn
                raise PipelineError(msg) from None
            raise NotFittedError(msg)

    # persistence
    def to_dict(self) -> dict:
        self._check_fitted()
        return {
            "kind": "logistic", "version": 1, "features": list(self.features_),
            "coef": [float(c) for c in np.ravel(self.coef_)],
            "intercept": float(np.ravel(self.intercept_)[0]),
            "label": self.label_, "C": None if self.penalty is None else float(self.C),
            "rows": self.rows_, "passes": self.passes_, "iterations": self.iterations_,
            "sample_passes": getattr(self, "sample_passes_", 0),
            "converged": self.converged_, "loss": self.loss_, "history": self.history_,
            "tol": self.tol, "max_iter": self.max_iter,
            "positive": getattr(self, "positive_", 1), "negative": getattr(self, "negative_", 0),
            "rows_dropped": getattr(self, "rows_dropped_", 0),
            "missing": getattr(self, "missing_", "error"),
            "categories": {k: list(v) for k, v in getattr(self, "categories_", {}).items()},
            "drop_first": self._drop_first(),
            "class_weight": class_weight_json(self.class_weight),
            "weight": getattr(self, "weight_", None),
            **({"input": self.input_} if getattr(self, "input_", None) is not None else {}),
            # how a CSV input was read (``--dtype``, ``--null-values``), when not the default
            **({"dtype": self.dtype_} if getattr(self, "dtype_", None) else {}),
            **({"null_values": self.null_values_} if getattr(self, "null_values_", None)
               else {}),
        }

    def save(self, path: str | os.PathLike, *, storage_options: dict | None = None) -> None:
        """Write the model file (JSON) at ``path``, a local path or a URL, atomically.

        On a local disk: a temporary name, fsync, rename. On an object store: one PUT, which
        readers see whole or not at all. ``storage_options`` go to the URL's file system and
        are never written into the file.
        """
        from .parts import write_json

        write_json(path, self.to_dict(), storage_options)

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
        categories = d.get("categories") or {}
        for name, vocab in categories.items():
            if name in feats or len(set(map(repr, vocab))) != len(vocab):
                raise PipelineError(f"invalid model file: field 'categories': column {name!r} "
                                    "is also a numeric feature, or repeats a value", path=path)
        width = len(feats) + sum(len(v) for v in categories.values())
        if len(coef) != width:
            raise PipelineError(f"invalid model file: field 'coef' has {len(coef)} values for "
                                f"{len(feats)} features"
                                + (f" and {width - len(feats)} categories" if categories
                                   else ""), path=path)
        C = d.get("C")
        m = cls(C=1.0 if C is None else float(C), penalty=None if C is None else "l2",
                tol=float(d.get("tol", 1e-10)), max_iter=d.get("max_iter", 50),
                class_weight=d.get("class_weight"), drop_first=d.get("drop_first"))
        m.weight_ = d.get("weight")
        m.features_ = list(feats)
        m.categories_ = {k: list(v) for k, v in categories.items()}
        m.label_ = d.get("label", "label")
        m.rows_ = d.get("rows", 0)
        m.passes_ = d.get("passes", 0)
        m.sample_passes_ = d.get("sample_passes", 0)
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
        m.dtype_ = dict(d.get("dtype") or {})
        m.null_values_ = list(d.get("null_values") or [])
        m._set_fitted(coef, d["intercept"])
        m.n_iter_ = np.array([m.iterations_], dtype=np.int32)
        return m


_NAMES = ListOf(InstanceOf(str, "a string"), "a non-empty list of unique column names",
                non_empty=True, unique=True)

_LABEL_VALUE = InstanceOf((bool, int, float, str),
                          "a label value (true/false, a number or a string)")

class _Categories(Constraint):
    """Per categorical column, its vocabulary: a list of strings, integers or booleans."""

    def is_satisfied_by(self, value) -> bool:
        return isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, list)
            and all(isinstance(x, str | int) for x in v) for k, v in value.items())

    def __str__(self) -> str:
        return "an object of column name -> list of its values (strings, integers or booleans)"


_CATEGORIES = _Categories()


class _TextMap(Constraint):
    """A mapping from text to text (``dtype``: column -> type)."""

    def is_satisfied_by(self, value) -> bool:
        return isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items())

    def __str__(self) -> str:
        return "an object of column names to type names"


_TEXT_MAP = _TextMap()

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
    "sample_passes": (NON_NEGATIVE, False),
    "iterations": (NON_NEGATIVE, False),
    "converged": (InstanceOf(bool, "true or false"), False),
    "loss": (Nullable(FINITE), False),
    "history": (ListOf(InstanceOf(dict, "an object"), "a list of objects"), False),
    "input": (Nullable(InstanceOf(list, "a list")), False),
    "positive": (_LABEL_VALUE, False),
    "negative": (_LABEL_VALUE, False),
    "rows_dropped": (NON_NEGATIVE, False),
    "missing": (Options("error", "drop"), False),
    "class_weight": (CLASS_WEIGHT, False),
    "categories": (_CATEGORIES, False),
    "drop_first": (Nullable(InstanceOf(bool, "true or false")), False),
    "weight": (Nullable(InstanceOf(str, "a column name")), False),
    "dtype": (_TEXT_MAP, False),
    "null_values": (ListOf(InstanceOf(str, "a string"), "a list of strings"), False),
}


def class_weight_json(spec):
    """``class_weight`` in the model file: None, "balanced", or class (as text) -> weight."""
    if isinstance(spec, dict):
        return {(str(k).lower() if isinstance(k, bool) else str(k)): float(v)
                for k, v in spec.items()}
    return spec


@dataclass
class _PartitionLoader:
    index: int
    partition: object
    features: tuple
    label: str
    weight: str | None = None
    categorical: tuple = ()
    max_categories: int = 1000
    classes: tuple = (1, 0)  # (positive, negative)

    @property
    def source_path(self) -> str:
        return f"partition {self.index}"

    @property
    def rows(self) -> int | None:
        return None  # a partition's rows are known once computed

    @property
    def plan_key(self) -> int:
        return self.index

    def produce(self) -> pa.Table:
        """The partition's rows as a table (the :class:`~pipeline.chunks.ChunkTask` form)."""
        return pa.Table.from_pandas(self.partition.compute(scheduler="sync"),
                                    preserve_index=False)

    def load(self):
        frame = self.partition.compute(scheduler="sync")
        return load_block(frame, self.features, self.label, self.source_path,
                          weight=self.weight, categorical=self.categorical,
                          max_categories=self.max_categories, classes=self.classes)


def _frame_margin(frame, model: LogisticModel):
    """The margin of a pandas DataFrame's rows, categorical columns encoded (by name)."""
    import pandas as pd

    from .score import chunk_margin

    coef, b = model.coef_.ravel(), float(model.intercept_[0])
    if not hasattr(frame, "columns"):
        raise PipelineError("a model with categorical features predicts from a DataFrame "
                            "with its columns by name")
    if model.categories_:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        z = chunk_margin(table, model.features_, coef, b, "X", "cpu",
                         tuple((k, tuple(v)) for k, v in model.categories_.items()))
    else:
        z = margin(frame[list(model.features_)].to_numpy(dtype=np.float64), coef, b)
    return pd.Series(z, index=frame.index, name="margin")


def _partition_label_values(item):
    """A partition's label: its type (dictionaries decoded) and first distinct values."""
    from .sources import decode_dictionaries
    from .values import first_values

    index, part, label = item
    table = decode_dictionaries(pa.Table.from_pandas(part.compute(scheduler="sync"),
                                                     preserve_index=False))
    return index, table.schema.field(label).type, first_values(table.column(label),
                                                              f"partition {index}")


def _partition_classes(parts, label: str, positive, executor) -> tuple:
    """(positive, negative) of a dask DataFrame's label, as ``pipeline train`` finds them:
    a pass over the label column (none for a bool label)."""
    from .values import label_classes, label_value, not_a_label

    found = sorted((r for _, r in executor.map_unordered(
        _partition_label_values, [(i, p, label) for i, p in enumerate(parts)])),
        key=lambda r: r[0])
    typ = next((t for _, t, v in found if v), found[0][1] if found else pa.int64())
    if not (pa.types.is_integer(typ) or pa.types.is_boolean(typ) or pa.types.is_floating(typ)
            or pa.types.is_string(typ) or pa.types.is_large_string(typ)
            or pa.types.is_null(typ)):
        raise PipelineError(not_a_label(typ), column=label)
    if positive is not None and not pa.types.is_null(typ):
        positive = label_value(positive, typ)
    values: dict = {}
    for _, _, part in found:
        for v, where in part.items():
            values.setdefault(v, where)
    return label_classes(values, label, positive, typ=typ)


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


def _frame_classes(z, classes, name):
    """A partition's predicted classes: ``classes[1]`` where the margin is > 0."""
    import pandas as pd

    return pd.Series(classes[(z.to_numpy() > 0).astype(np.intp)], index=z.index, name=name)


def _frame_pair(z, *, kernel):
    """``kernel`` of -z and z of a partition's margins, as columns p0 and p1."""
    import pandas as pd

    v = z.to_numpy()
    return pd.DataFrame({"p0": kernel(-v), "p1": kernel(v)}, index=z.index)


def _scalar(value):
    """A NumPy scalar as the Python value (what a model file's JSON holds)."""
    return value.item() if hasattr(value, "item") else value


def _validate_xy(model, X, y, sample_weight):
    """``X`` (float64, column-major), ``y`` and the sample weights, checked as scikit-learn
    checks them (with its messages where it is installed); sets ``n_features_in_`` and
    ``feature_names_in_``."""
    sk = _sklearn_validation()
    if sk is None:  # pragma: no cover - without scikit-learn
        X, y = _plain_x(X), None if y is None else np.asarray(y).reshape(-1)
        if y is None or len(y) != len(X):
            raise ValueError("LogisticModel requires y to be passed, with one value a row")
        model.n_features_in_ = X.shape[1]
    else:
        X, y = sk[0](model, X, y, dtype=np.float64, order="F")
        sk[1](y)
    sw = None
    if sample_weight is not None:
        sw = np.asarray(sample_weight, dtype=np.float64)
        if sw.ndim == 0:
            sw = np.full(len(X), float(sw))
        if sw.shape != (len(X),):
            raise ValueError(f"sample_weight.shape == {sw.shape}, expected {(len(X),)}!")
        bad = ~np.isfinite(sw) | (sw < 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"sample_weight must be finite and non-negative; row {i} is "
                             f"{sw[i]!r}")
    return np.asfortranarray(X), y, sw


def _validate_x(model, X) -> np.ndarray:
    sk = _sklearn_validation()
    if sk is None:  # pragma: no cover - without scikit-learn
        X = _plain_x(X)
        if X.shape[1] != model.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but LogisticModel is expecting "
                             f"{model.n_features_in_} features as input")
        return X
    return sk[0](model, X, dtype=np.float64, reset=False)


def _sklearn_validation():
    """scikit-learn's ``validate_data`` and ``check_classification_targets``, or None when
    it is not installed (imported on first use: 0.5 s the CLI never pays)."""
    try:
        from sklearn.utils.multiclass import check_classification_targets
        from sklearn.utils.validation import validate_data
    except ImportError:  # pragma: no cover - without scikit-learn
        return None
    return validate_data, check_classification_targets


def _plain_x(X) -> np.ndarray:  # pragma: no cover - without scikit-learn
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError("Expected a 2D array; reshape your data")
    if not np.all(np.isfinite(X)):
        raise ValueError("Input X contains NaN or infinity")
    return X
