"""pipeline: out-of-core sigmoid transforms and logistic regression over Parquet/CSV.

The kernels import only NumPy; everything that needs pyarrow or Dask is loaded on first use,
so ``import pipeline`` stays cheap.
"""

from __future__ import annotations

from .errors import PipelineError
from .ops.kernels import log_sigmoid, sigmoid, sigmoid_derivative

__version__ = "0.1.0"

_LAZY = {
    "read": "api", "write": "api", "transform_files": "api", "score_files": "api",
    "evaluate_files": "api", "train_files": "api", "ExecOptions": "config.exec_options",
    "sigmoid_columns": "ops.transform", "LogisticModel": "model.estimator",
    "ConvergenceWarning": "model.estimator", "SigmoidTransformer": "model.sklearn_compat",
    "generate": "run.synthetic",
}

__all__ = ["sigmoid", "log_sigmoid", "sigmoid_derivative", "PipelineError", *_LAZY]


def __dir__() -> list[str]:
    """The module's names, the lazily imported ones (``read``, ``LogisticModel``, ...) too."""
    return sorted({*globals(), *_LAZY})


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
