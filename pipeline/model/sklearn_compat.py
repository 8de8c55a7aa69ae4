"""A scikit-learn compatible sigmoid transformer for in-memory Pipelines.

scikit-learn stays optional: the class follows its conventions (``__init__`` stores
parameters, ``fit`` learns ``n_features_in_``) and uses ``BaseEstimator`` and
``TransformerMixin`` when scikit-learn is installed.
"""

from __future__ import annotations

import numpy as np

from ..ops.transform import SigmoidOp, validate_sigmoid_options

try:
    from sklearn.base import BaseEstimator, TransformerMixin
except ImportError:  # pragma: no cover - exercised only without scikit-learn
    BaseEstimator = object

    class TransformerMixin:  # minimal stand-in
        def fit_transform(self, X, y=None, **fit_params):
            return self.fit(X, y, **fit_params).transform(X)


class SigmoidTransformer(TransformerMixin, BaseEstimator):
    """Elementwise stable sigmoid, rescaled to ``feature_range``.

    Examples
    --------
    >>> import numpy as np
    >>> SigmoidTransformer(feature_range=(-1, 1)).fit_transform(np.array([[0.0], [1e9]]))
    array([[0.],
           [1.]])
    """

    def __init__(self, feature_range=(0, 1), temperature=1.0, output="value"):
        self.feature_range = feature_range
        self.temperature = temperature
        self.output = output

    def fit(self, X, y=None):
        validate_sigmoid_options(self.temperature, tuple(self.feature_range), self.output)
        X = self._as_array(X)
        self.n_features_in_ = X.shape[1]
        if hasattr(X, "columns"):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        return self

    @staticmethod
    def _as_array(X):
        a = np.asarray(X)
        if a.ndim != 2:
            raise ValueError(f"Expected a 2-D array, got shape {a.shape}")
        return a

    def transform(self, X):
        if not hasattr(self, "n_features_in_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("SigmoidTransformer is not fitted yet; call fit first")
        a = self._as_array(X)
        if a.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {a.shape[1]} features, but SigmoidTransformer is "
                             f"expecting {self.n_features_in_} features as input")
        lo, hi = self.feature_range
        op = SigmoidOp((), float(self.temperature), (float(lo), float(hi)), self.output)
        return op.apply_array(np.ascontiguousarray(a))  # the CLI's own per-chunk function

    def get_feature_names_out(self, input_features=None):
        if input_features is None:
            input_features = getattr(self, "feature_names_in_",
                                     [f"x{i}" for i in range(self.n_features_in_)])
        return np.asarray(list(input_features), dtype=object)
