"""``train`` over files: the feature set, the label's classes, the chunks a fit reads, the
model file's lease, overwrite and resume."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from ..config.exec_options import ExecOptions, with_storage_options
from ..config.params import COUNT, MISSING_NO_KEEP, check
from ..errors import PipelineError
from ..io.formats import input_format, is_numeric_type, parse_null_values
from ..io.identity import both_values, first_difference
from ..io.lease import hold
from ..io.local_storage import LocalStorage
from ..io.storage import open_storage
from ..model.estimator import LogisticModel, parse_class_weight
from ..model.modelfile import class_weight_json
from ..ops.design import Block, block_nbytes, load_block
from ..ops.device import resolve_device
from ..ops.values import (
    first_values,
    label_classes,
    label_value,
    validate_missing,
)
from ..run.execution import open_executor
from ..run.tasks import FileChunkTask, file_tasks, run_reduce_task
from ._inputs import (
    Path,
    dtype_param,
    note_left_out,
    plan_input,
    require_categorical,
    require_label,
)

if TYPE_CHECKING:
    from distributed import Client



@dataclass(frozen=True)
class TrainChunk:
    """One chunk's features and label, read and validated (cached or re-read each pass)."""

    task: FileChunkTask
    features: tuple[str, ...]
    label: str
    device: str = "cpu"
    missing: str = "error"
    classes: tuple = (1, 0)  # (positive, negative) label values
    weight: str | None = None  # the sample-weight column
    categorical: tuple[str, ...] = ()  # one-hot encoded columns
    max_categories: int = 1000

    @property
    def index(self) -> int:
        return self.task.index

    @property
    def source_path(self) -> str:
        return self.task.source_path

    @property
    def rows(self) -> int | None:
        return self.task.rows

    @property
    def plan_key(self) -> list:
        return self.task.plan_key

    def produce(self) -> pa.Table:
        """The chunk's features and label as read (:meth:`load` makes the arrays)."""
        return self.task.read()

    def load(self) -> Block:
        """The chunk's :class:`~pipeline.ops.design.Block`: ``(X, y, rows_dropped)``."""
        table, origin = self.task.read_located()
        block = load_block(table, self.features, self.label, origin, missing=self.missing,
                           classes=self.classes, weight=self.weight,
                           categorical=self.categorical, max_categories=self.max_categories)
        if self.device == "gpu":  # cached in GPU memory; each pass runs there
            import cupy

            if block.cats:
                raise PipelineError("categorical features train on the CPU; use --device cpu")
            return Block(cupy.asarray(block.X), cupy.asarray(block.y), block.rows_dropped,
                         None if block.weight is None else cupy.asarray(block.weight))
        return block


def _first_label_values(label: str, table, origin) -> dict:
    return first_values(table.column(label), origin)


def _label_classes(source, label: str, positive, executor) -> tuple:
    """(positive, negative): the label's two values, found by a pass over the label column
    unless the label is bool."""
    typ = source.schema.field(label).type
    if positive is not None:
        positive = label_value(positive, typ)
    if pa.types.is_boolean(typ):
        positive = True if positive is None else positive
        return positive, not positive
    fn = functools.partial(_first_label_values, label)
    tasks = file_tasks(source, fn, columns=(label,), used=(label,))
    found = sorted(((t.index, r) for t, rs in executor.map_unordered(run_reduce_task, tasks)
                    for r in rs), key=lambda item: item[0])
    values: dict = {}
    for _, part in found:
        for v, where in part.items():
            values.setdefault(v, where)
    return label_classes(values, label, positive, typ=typ)


def train_files(input_path: Path, model_out: Path | None, *, label: str = "label",
                features: Sequence[str] | None = None, exclude: Sequence[str] | None = None,
                features_from: str = "float", C: float = 1.0,
                penalty: str | None = "l2", tol: float = 1e-10, max_iter: int = 50,
                positive: bool | int | float | str | None = None, missing: str = "error",
                weight: str | None = None, class_weight: str | dict | None = None,
                categorical: Sequence[str] = (), max_categories: int = 1000,
                drop_first: bool | None = None,
                dtype: Sequence[str] | None = None,
                null_values: str | Sequence[str] | None = None,
                options: ExecOptions | None = None,
                client: Client | None = None, log: Callable[[dict], None] | None = None,
                note: Callable[[str], None] | None = None,
                storage_options: dict | None = None) -> LogisticModel:
    """``pipeline train``: fit out of core, then write the model file atomically.

    The label is bool, integer or string with exactly two values; the positive class is the
    larger one (scikit-learn's ``classes_[1]``) unless ``positive`` names it (text is parsed
    to the label's type). Rows with a missing feature or label are an error, or left out and
    counted as the model's ``rows_dropped`` with ``missing="drop"``. INPUT and the model
    file may be URLs (``storage_options`` for their file systems); on an object store the
    model file is one PUT, written only when the fit is done.

    ``weight`` names a column of sample weights (finite, non-negative); ``class_weight`` is
    ``"balanced"`` or a mapping (or JSON object text) from each class, as text, to its
    weight: the objective is scikit-learn's ``LogisticRegression(C=C,
    class_weight=...).fit(X, y, sample_weight=...)``.

    ``categorical`` names string, integer or bool columns to one-hot encode (scikit-learn's
    ``OneHotEncoder(handle_unknown="ignore")``): the vocabulary is learned in the loading pass,
    sorted, at most ``max_categories`` values per column (more is an error naming it), and
    stored in the model file as ``categories``. ``drop_first`` gives each one a reference
    level, its first value, whose coefficient is 0 (R's treatment coding, scikit-learn's
    ``OneHotEncoder(drop="first")``); None: on without a penalty, off with one. A design
    that is rank-deficient all the same is warned about, and without a penalty its
    minimum-norm optimum is stored (the same whatever the chunking).

    ``features`` are names or shell-style patterns (``"f*"``, matched against the numeric
    columns); without them, the default set is every float column (``features_from=
    "float"``) or every float, integer and bool column (``"numeric"``), other than the
    label, the weight and the categorical columns. ``exclude`` (names or patterns) leaves
    columns out of either.
    """
    options = with_storage_options(options, storage_options)
    model = LogisticModel(C=C, penalty=penalty, tol=tol, max_iter=max_iter,
                          class_weight=parse_class_weight(class_weight), drop_first=drop_first)
    model._validate_params()
    if missing == "keep":
        raise PipelineError('train cannot keep rows with missing values (a row without a '
                            'value has no loss); use missing="error" or missing="drop"',
                            params=("missing", "missing"))
    validate_missing(missing, MISSING_NO_KEEP)
    model_out = None if model_out is None else os.fspath(model_out)
    lease = None
    if model_out is not None:  # one writer per MODEL, as per OUT (README)
        lease = hold(*open_storage(model_out, options.storage_options), model_out,
                     what="model file")
    try:
        exists = model_out is not None and _model_exists(model_out, options)
        if exists and not (options.overwrite or options.resume):
            raise PipelineError("model file already exists; pass overwrite=True to replace it or "
                                "resume=True to keep it when it was trained the same way",
                                path=model_out, params=("overwrite", "resume"))
        device = resolve_device(options.device)
        source = plan_input(input_path, options, dtype, null_values=null_values)
        if model_out is not None:
            _check_model_out(model_out, source, options)
        require_label(source, label)
        named = features is not None
        categorical = tuple(categorical or ())
        check("max_categories", max_categories, COUNT)
        features = select_features(source, features, exclude, features_from,
                                   others=(label, weight, *categorical))
        if not features and not categorical:
            raise PipelineError("no floating-point feature columns; name them with features=NAMES",
                                path=source.paths[0], params=("features",))
        source.require_columns(features)
        require_categorical(source, categorical, (label, weight, *features))
        if weight is not None:
            source.require_columns([weight])
        if not named and features_from == "float":
            note_left_out(note, source, features,
                           exclude=(label, *([weight] if weight else []), *(exclude or ())))
        model.input_ = source.fingerprint()
        model.missing_ = missing
        model.dtype_ = dtype_param(dtype)
        model.null_values_ = list(parse_null_values(null_values))
        if exists and options.resume:
            # Training is one atomic write at the end, so an interrupted run left no model file;
            # an existing one is kept only if it is this very job's result.
            old = LogisticModel.load(model_out, storage_options=options.storage_options)
            _check_resumed_reading(old, model, positive, source.schema.field(label).type,
                                   model_out)
            refusal = _training_difference(old, model, features, label, weight, categorical)
            if refusal is not None:
                raise PipelineError(f"cannot resume: {refusal}; rerun with overwrite=True",
                                    path=model_out, params=refusal.params + ("overwrite",))
            return old
        extra = (weight,) if weight is not None else ()
        tasks = file_tasks(source, None, columns=(*features, *categorical, label, *extra),
                           numeric=(*features, *extra),
                           used=(*features, *categorical, label, *extra))
        with open_executor(options, client) as ex:
            classes = _label_classes(source, label, positive, ex)
            chunks = [TrainChunk(t, tuple(features), label, device, missing, classes, weight,
                                 categorical, max_categories) for t in tasks]
            cache = _fits_in_memory(source, len(features) + len(extra) + len(categorical), ex)
            model.fit_chunks(chunks, ex, features=features, label=label, classes=classes,
                             weight=weight, categorical=categorical,
                             max_categories=max_categories, cache=cache, log=log)
        if model_out is not None:
            lease.check()  # still this run's (object stores: renewed now), else not written
            model.save(model_out, storage_options=options.storage_options)
        return model
    finally:
        if lease is not None:
            lease.release()


_PATTERN_CHARS = frozenset("*?[")


def select_features(source, features, exclude, features_from: str, *, others=()) -> list:
    """The numeric feature columns: ``features`` (names, or shell-style patterns matched in
    the input's column order against its numeric columns) or the default set that
    ``features_from`` names, less ``exclude`` (names or patterns) and ``others``."""
    import fnmatch

    from ..config.options import FEATURE_SETS
    from ..config.params import choice

    choice("features_from", features_from, FEATURE_SETS)
    names = source.schema.names
    numeric = [n for n in names if n not in others and (
        is_numeric_type(source.schema.field(n).type) if features_from == "numeric"
        or features is not None else pa.types.is_floating(source.schema.field(n).type))]

    def expand(items, pool, what):
        out = []
        for item in items:
            if _PATTERN_CHARS.isdisjoint(item):
                out.append(item)
                continue
            hits = fnmatch.filter(pool, item)
            if not hits:
                raise PipelineError(f"{what} pattern {item!r} matches no numeric column",
                                    path=source.paths[0], params=(what,))
            out.extend(hits)
        return list(dict.fromkeys(out))

    chosen = numeric if features is None else expand(features, numeric, "features")
    if exclude:
        for item in exclude:
            if _PATTERN_CHARS.isdisjoint(item) and item not in names:
                raise PipelineError("no such column in the input (to exclude)",
                                    path=source.paths[0], column=item, params=("exclude",))
        left = set(expand(exclude, names, "exclude"))
        chosen = [n for n in chosen if n not in left]
    return chosen


def _model_exists(path: str, options: ExecOptions) -> bool:
    """Whether the model file exists (on a local disk or a URL); a folder is an error."""
    storage, key = open_storage(path, options.storage_options)
    if storage.isdir(key):
        raise PipelineError("model path is a folder, not a file", path=path)
    return storage.exists(key)


def _check_model_out(model_out, source, options: ExecOptions) -> None:
    """The model file is never an input file, and --overwrite replaces only a model file."""
    path = os.fspath(model_out)
    storage, key = open_storage(path, options.storage_options)
    if isinstance(storage, LocalStorage):  # symlinks and .. resolved on this disk
        same = any(os.path.realpath(key) == os.path.realpath(p) for p in source.paths)
    else:
        same = any(p in (path, key, storage.url(key)) for p in source.paths)
    if same:
        raise PipelineError("the model path is an input file; choose another", path=path)
    if storage.exists(key) and options.overwrite:
        try:
            LogisticModel.load(path, storage_options=options.storage_options)
        except PipelineError:
            raise PipelineError("overwrite=True replaces only a model file of this tool, and "
                                "this file is not one; not touched", path=path,
                                params=("overwrite",)) from None


def _check_resumed_reading(old: LogisticModel, new: LogisticModel, positive, typ,
                           model_out: str) -> None:
    """``--resume`` keeps a model only if its positive class (given, or the default the data
    implies), ``dtype`` and ``null_values`` are this run's: each one names the parameter."""
    if positive is not None:
        positive = label_value(positive, typ)
    elif pa.types.is_boolean(typ):
        positive = True
    else:  # the larger class (scikit-learn's classes_[1]); the input is checked to be the same
        try:
            positive = max(old.positive_, old.negative_)
        except TypeError:
            positive = old.positive_
    differs = [(name, mine, theirs) for name, mine, theirs in (
        ("positive", positive, old.positive_),
        ("dtype", new.dtype_, getattr(old, "dtype_", {})),
        ("null_values", new.null_values_, getattr(old, "null_values_", [])))
        if not (mine == theirs and type(mine) is type(theirs))]
    if differs:
        name, mine, theirs = differs[0]
        raise PipelineError(f"cannot resume: the model file was trained with {name} "
                            f"{theirs!r}, this run has {mine!r}; rerun with the same {name}, "
                            "or with overwrite=True", path=model_out,
                            params=(name, name, "overwrite"))


def _training_difference(old: LogisticModel, new: LogisticModel, features, label: str,
                         weight: str | None, categorical) -> PipelineError | None:
    """What differs first between the model file ``old`` and this training: a parameter,
    with both values, or an input file; None when it is this very job's result."""
    a, b = old.to_dict(), new.get_params()
    there = {"label": a["label"], "features": a["features"],
             "categorical": list(a["categories"]), "weight": a["weight"],
             "class_weight": a["class_weight"], "C": a["C"], "tol": a["tol"],
             "max_iter": a["max_iter"], "missing": a["missing"]}
    now = {"label": label, "features": list(features), "categorical": list(categorical),
           "weight": weight, "class_weight": class_weight_json(b["class_weight"]),
           "C": None if b["penalty"] is None else float(b["C"]), "tol": b["tol"],
           "max_iter": b["max_iter"], "missing": new.missing_}
    if categorical:
        there["drop_first"], now["drop_first"] = a.get("drop_first"), new._drop_first()
    name = first_difference(there, now)
    if name is not None:
        return PipelineError(f"{name} differs from the model file's" +
                             both_values(there[name], now[name]), params=(name,))
    files = ({str(f.get("path")): f for f in getattr(m, "input_", None) or []
              if isinstance(f, dict)} for m in (old, new))
    name = first_difference(*files)
    if name is not None or getattr(old, "input_", None) != new.input_:
        return PipelineError(f"the input file {name} is new, gone or changed since the model "
                             "file was trained" if name else "the input differs from the "
                             "model file's")
    return None


def _fits_in_memory(source, p: int, executor) -> bool:
    """Cache the parsed blocks when the executor can hold them (``Executor.fits_in_memory``)."""
    rows = source.total_rows
    if rows is None and source.fmt == "parquet":  # planned from the listing: decoded bytes
        return executor.fits_in_memory(sum(p.size for c in source.chunks for p in c.pieces))
    if rows is None:  # CSV: float text is ~2.5x its binary size; be generous
        # (compressed CSV: float text compresses about 2-3x; count it as 4x its file)
        need = sum(source.storage.size(f) * (4 if input_format(f)[1] else 1)
                   for f in source.paths)
    else:
        need = block_nbytes(rows, p)
    return executor.fits_in_memory(need)
