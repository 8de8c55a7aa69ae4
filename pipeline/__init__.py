"""pipeline: out-of-core sigmoid transforms and logistic regression over Parquet/CSV.

Everything but the errors is loaded on first use (the kernels: NumPy; the rest: pyarrow or
Dask), so ``import pipeline`` stays cheap, and the command can list an object-store input
before it imports them (:mod:`pipeline.cli.entry`).
"""

from __future__ import annotations

from .errors import PipelineError

__version__ = "0.1.0"

_LAZY = {
    "read": "api", "write": "api", "transform_files": "api", "score_files": "api",
    "evaluate_files": "api", "train_files": "api", "ExecOptions": "config.exec_options",
    "sigmoid_columns": "ops.transform", "LogisticModel": "model.estimator",
    "ConvergenceWarning": "model.estimator", "SigmoidTransformer": "model.sklearn_compat",
    "generate": "run.synthetic", "sigmoid": "ops.kernels", "log_sigmoid": "ops.kernels",
    "sigmoid_derivative": "ops.kernels",
}

__all__ = ["PipelineError", *_LAZY]


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
