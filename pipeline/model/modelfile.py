"""The model's JSON file (never pickle): writing, reading and checking every field, and the
rules of the class weights it records."""

from __future__ import annotations

import json
import os
from typing import Self

import numpy as np

from ..config.params import (
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
from ..errors import PipelineError

_PENALTIES = ("l2", None)

# The warm start (see ``LogisticModel._solve``): on this many rows or more, held in memory,
# the objective is first solved on this share of every block's rows. On 8M x 20 the sample
# of 1/32 was solved in 0.07 s and left 3 passes over all the rows instead of 5. The
# sample is every 32nd row (``stats.block_sample``), fair on rows ordered by time or label.


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


def same_class(key, value) -> bool:
    """Whether a class-weight key names the class ``value``: equal, or equal as text (JSON
    keys are strings: "1" names 1, "true" names True)."""
    if isinstance(key, bool) or isinstance(value, bool):
        return str(key).lower() == str(value).lower()
    return key == value or str(key) == str(value)


class ModelFile:
    """The model file half of :class:`~pipeline.model.estimator.LogisticModel` (a mixin)."""

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
        from ..io.parts import write_json

        write_json(path, self.to_dict(), storage_options)

    @classmethod
    def load(cls, path: str | os.PathLike, *, storage_options: dict | None = None
             ) -> Self:
        """Read and check a model file at ``path``, a local path or a URL."""
        from ..io.storage import open_storage

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
    def from_dict(cls, d: dict, *, path: str | None = None) -> Self:
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
