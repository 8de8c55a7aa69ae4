"""Binary logistic regression, fitted out of core to scikit-learn's exact optimum.

The estimator: its parameters, ``fit`` (NumPy, pandas or dask input, or chunk loaders through
:meth:`LogisticModel.fit_chunks`), prediction, and the JSON model file. The objective is
scikit-learn's ``LogisticRegression(penalty="l2", C=C)`` on the raw features; it is minimised
by :func:`pipeline.model.newton.newton_solve` from the per-chunk statistics of
:mod:`pipeline.model.stats`, summed over the chunks by the executor. Losses go through log σ,
probabilities through the stable sigmoid.
"""

from __future__ import annotations

import functools

import numpy as np

from ..config.params import (
    InstanceOf,
    Nullable,
    check,
)
from ..errors import PipelineError
from ..ops import kernels
from ..ops.design import (
    Block,
)
from ..ops.values import one_class_label
from .dask_frames import _frame_classes, _frame_margin, _frame_pair
from .fit import ChunkFit, ConvergenceWarning, RankWarning
from .modelfile import _PENALTIES, CLASS_WEIGHT, ModelFile, parse_class_weight
from .stats import (
    margin,
)

__all__ = ["LogisticModel", "ConvergenceWarning", "RankWarning", "parse_class_weight"]


class LogisticModel(ChunkFit, ModelFile):
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
        from ..config.options import constraint

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
        from .dask_frames import fit_frame

        return fit_frame(self, X, label=label, features=features, weight=weight,
                         categorical=categorical, max_categories=max_categories,
                         positive=positive, client=client, executor=executor, log=log)

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
