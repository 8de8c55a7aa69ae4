"""The library's entry points; the CLI and job files call these and nothing else."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from .chunks import write_parts
from .design import Block, block_nbytes, is_categorical_type, load_block
from .device import resolve_device
from .errors import PipelineError, nearest_columns
from .execution import ExecOptions, open_executor, with_storage_options
from .identity import both_values, first_difference
from .lease import hold
from .model import LogisticModel, class_weight_json, parse_class_weight
from .options import constraint
from .params import COUNT, MISSING_NO_KEEP, STORAGE_OPTIONS, check, parse_size
from .score import EvalOp, ScoreOp, add_eval, combine_eval
from .sources import (
    default_blocksize,
    input_format,
    is_numeric_type,
    parse_dtypes,
    parse_null_values,
    plan,
)
from .storage import LocalStorage, open_storage
from .tasks import FileChunkTask, PartitionTask, file_tasks, run_reduce_task
from .transform import SigmoidOp, default_columns, left_out_columns, validate_sigmoid_options
from .values import (
    first_values,
    label_classes,
    label_value,
    missing_feature,
    not_a_label,
    validate_missing,
)
from .writer import job_identity, refuse_overlap, write_json

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client

Path = str | os.PathLike  # a local path or a URL


def read(input_path: Path, *, columns: Sequence[str] | None = None,
         blocksize: str | int | None = None, storage_options: dict | None = None,
         null_values: str | Sequence[str] | None = None) -> dd.DataFrame:
    """A lazy dask DataFrame over INPUT (file, folder, glob or URL), one partition per chunk.

    ``storage_options`` go to the file system of a URL (``{"endpoint_url": ...}``);
    ``null_values`` are CSV texts read as null besides the empty cell.
    """
    import dask.dataframe as dd

    if storage_options is not None:
        check("storage_options", storage_options, STORAGE_OPTIONS)
    source = plan(input_path, blocksize=parse_size(blocksize, name="blocksize"),
                  storage_options=storage_options, null_values=null_values)
    names = list(columns) if columns is not None else list(source.schema.names)
    source.require_columns(names, numeric=False)
    meta = source.schema.empty_table().select(names).to_pandas()
    numeric = tuple(n for n in names if n in default_columns(source.schema))
    fn = functools.partial(_read_frame, source.reader(), tuple(names), numeric)
    return dd.from_map(fn, source.chunks, meta=meta, enforce_metadata=False)


def _read_frame(reader, columns, numeric, chunk):
    return reader.read(chunk, list(columns), numeric).to_pandas()


def write(df: dd.DataFrame, out: Path, *, overwrite: bool = False, resume: bool = False,
          client: Client | None = None, device: str = "cpu", progress: bool = False,
          storage_options: dict | None = None) -> dict:
    """Write a dask DataFrame to an output folder (one part per partition), atomically.

    OUT may be a URL; ``storage_options`` go to its file system and are recorded redacted.
    """
    from dask.base import tokenize

    if storage_options is not None:
        check("storage_options", storage_options, STORAGE_OPTIONS)
    tasks = [PartitionTask(i, d) for i, d in enumerate(df.to_delayed())]
    job = job_identity("write", {}, tokenize(df))
    with open_executor(client=client) as ex:
        return write_parts(tasks, out, executor=ex, job=job, overwrite=overwrite,
                           resume=resume, device=device, progress=progress,
                           storage_options=storage_options)


def _write_tasks(command, tasks, source, out, params, options, client, device):
    job = job_identity(command, params, source.fingerprint())
    with open_executor(options, client) as ex:
        return write_parts(tasks, out, executor=ex, job=job, overwrite=options.overwrite,
                           resume=options.resume, device=device, progress=not options.quiet,
                           total_rows=source.total_rows,
                           storage_options=options.storage_options)


def _plan(input_path, options: ExecOptions, dtype, out=None, null_values=None):
    blocksize = options.blocksize_bytes() or default_blocksize(input_path, out)
    return plan(input_path, blocksize=blocksize, dtype=dtype, null_values=null_values,
                storage_options=options.storage_options,
                io_concurrency=options.io_concurrency)


def _dtype_param(dtype) -> dict:
    """``--dtype`` as recorded in the job (what ``--resume`` compares)."""
    return {k: str(v) for k, v in parse_dtypes(dtype).items()}


def _note_left_out(note, source, used, exclude=()) -> None:
    left = left_out_columns(source.schema, exclude=(*used, *exclude))
    if note is not None and left:
        note(f"numeric columns left out (integer or bool; name them to use them): "
             f"{', '.join(left)}")


def transform_files(input_path: Path, out: Path, *, columns: Sequence[str] | None = None,
                    temperature: float = 1.0, feature_range: tuple[float, float] = (0.0, 1.0),
                    output: str = "value", missing: str = "keep",
                    dtype: Sequence[str] | None = None,
                    null_values: str | Sequence[str] | None = None,
                    options: ExecOptions | None = None,
                    client: Client | None = None, note: Callable[[str], None] | None = None,
                    storage_options: dict | None = None) -> dict:
    """``pipeline transform``: the sigmoid of the chosen columns, every other column kept.

    ``missing`` decides what a null or NaN in a transformed column does: ``"keep"`` (NaN
    stays NaN, null stays null), ``"drop"`` (the row is left out and counted in the
    manifest's ``rows_dropped``) or ``"error"``. ``note`` receives a line naming the integer
    and bool columns that the default column set leaves out. INPUT and OUT may be URLs;
    ``storage_options`` (or ``options.storage_options``) go to their file systems.
    """
    options = with_storage_options(options, storage_options)
    feature_range = (float(feature_range[0]), float(feature_range[1]))
    validate_sigmoid_options(temperature, feature_range, output)
    validate_missing(missing)
    device = resolve_device(options.device)
    source = _plan(input_path, options, dtype, out, null_values)
    refuse_overlap(out, source.paths, input_arg=input_path)
    cols = tuple(columns) if columns else default_columns(source.schema)
    if not cols:
        raise PipelineError("no floating-point columns to transform; name them with "
                            "columns=NAMES", path=source.paths[0], params=("columns",))
    source.require_columns(cols)
    if not columns:
        _note_left_out(note, source, cols)
    op = SigmoidOp(cols, float(temperature), feature_range, output, device, missing)
    params = {"columns": list(cols), "temperature": float(temperature),
              "range": list(feature_range), "output": output, "missing": missing,
              "dtype": _dtype_param(dtype),
              "null_values": list(parse_null_values(null_values))}
    tasks = file_tasks(source, op, numeric=cols, drops_rows=missing == "drop",
                       batch_bytes=options.blocksize_bytes())
    return _write_tasks("transform", tasks, source, out, params, options, client, device)


def score_files(input_path: Path, model: Path | LogisticModel, out: Path, *,
                keep: Sequence[str] | None = None, threshold: float = 0.5,
                missing: str = "error", dtype: Sequence[str] | None = None,
                null_values: str | Sequence[str] | None = None,
                options: ExecOptions | None = None, client: Client | None = None,
                storage_options: dict | None = None) -> dict:
    """``pipeline score``: kept columns, ``probability`` and ``prediction`` per row.

    A row with a missing feature is an error (``missing="error"``), left out and counted
    (``"drop"``), or written with null probability and prediction (``"keep"``). INPUT, the
    model file and OUT may be URLs (``storage_options`` for their file systems).
    """
    options = with_storage_options(options, storage_options)
    model_path = os.fspath(model) if not isinstance(model, LogisticModel) else None
    if model_path:
        model = LogisticModel.load(model_path, storage_options=options.storage_options)
    check("threshold", threshold, constraint("score", "threshold"))
    validate_missing(missing)
    device = resolve_device(options.device)
    source = _plan(input_path, options, dtype, out, null_values)
    refuse_overlap(out, source.paths, input_arg=input_path)
    _require_model_features(source, model)
    keep = tuple(keep) if keep is not None else tuple(
        n for n in source.schema.names if n not in model.features_
        and n not in model.categories_)
    source.require_columns(keep, numeric=False)
    op = ScoreOp(tuple(model.features_), tuple(map(float, np.ravel(model.coef_))),
                 float(np.ravel(model.intercept_)[0]), keep, float(threshold), device, missing,
                 _model_categories(model))
    columns = tuple(dict.fromkeys([*keep, *model.features_, *model.categories_]))
    params = {"model": model.to_dict() | {"history": None}, "model_path": model_path,
              "keep": list(keep), "threshold": float(threshold), "missing": missing,
              "dtype": _dtype_param(dtype),
              "null_values": list(parse_null_values(null_values))}
    tasks = file_tasks(source, op, columns=columns, numeric=tuple(model.features_),
                       drops_rows=missing == "drop", batch_bytes=options.blocksize_bytes())
    return _write_tasks("score", tasks, source, out, params, options, client, device)


def evaluate_files(input_path: Path, model: Path | LogisticModel, *, label: str = "label",
                   missing: str = "error", weight: str | None = None, threshold: float = 0.5,
                   out: Path | None = None, dtype: Sequence[str] | None = None,
                   null_values: str | Sequence[str] | None = None,
                   options: ExecOptions | None = None, client: Client | None = None,
                   storage_options: dict | None = None) -> dict:
    """``pipeline evaluate``: rows, log_loss (via log σ), accuracy and AUC, out of core.

    The label's classes are the model's (``positive``, ``negative``); with
    ``missing="drop"`` rows with a missing feature or label are left out and counted as
    ``rows_dropped``. INPUT and the model file may be URLs (``storage_options`` for their
    file systems). With ``weight`` (a column of sample weights) the metrics are weighted,
    as scikit-learn's with ``sample_weight``, and ``weight_sum`` is reported.

    Computed in the same pass, in tables of fixed size: the ROC curve (``roc``: ``fpr``,
    ``tpr``, ``threshold``, at most 200 points), the calibration table (``calibration``:
    per tenth of predicted probability, the rows, the mean prediction and the observed
    rate), the histogram of predicted probabilities per class (``histogram``, 50 bins) and
    the confusion matrix at ``threshold`` (``confusion``: tn, fp, fn, tp). ``out`` names a
    JSON file that keeps all of it (``OUT/_evaluation.json`` beside a scored output
    folder is drawn by ``pipeline report OUT``).
    """
    if not (0.0 <= float(threshold) <= 1.0):
        raise PipelineError(f"threshold must be in [0, 1]; got {threshold!r}")
    options = with_storage_options(options, storage_options)
    if not isinstance(model, LogisticModel):
        model = LogisticModel.load(model, storage_options=options.storage_options)
    validate_missing(missing, MISSING_NO_KEEP)
    device = resolve_device(options.device)
    source = _plan(input_path, options, dtype, null_values=null_values)
    _require_label(source, label)
    _require_model_features(source, model)
    typ = source.schema.field(label).type
    positive = label_value(model.positive_, typ, what="the model's positive class")
    negative = label_value(model.negative_, typ, what="the model's negative class")
    op = EvalOp(tuple(model.features_), tuple(map(float, np.ravel(model.coef_))),
                float(np.ravel(model.intercept_)[0]), label, device, missing, positive,
                negative, weight, _model_categories(model), float(threshold))
    extra = (weight,) if weight is not None else ()
    if weight is not None:
        source.require_columns([weight])
    cats = tuple(model.categories_)
    tasks = file_tasks(source, op, columns=(*model.features_, *cats, label, *extra),
                       numeric=(*model.features_, *extra),
                       used=(*model.features_, *cats, label, *extra),
                       batch_bytes=options.blocksize_bytes())
    total = None
    with open_executor(options, client) as ex:
        for _, results in ex.map_unordered(run_reduce_task, tasks):
            for r in results:
                total = add_eval(total, r)
    result = combine_eval([total] if total is not None else [])
    if out is not None:
        write_json(out, result, options.storage_options)
    return result


def _require_label(source, label: str) -> None:
    if label not in source.schema.names:
        raise PipelineError("no such label column" + nearest_columns(label, source.schema.names),
                            path=source.paths[0], column=label)
    typ = source.schema.field(label).type
    if not (is_numeric_type(typ) or pa.types.is_string(typ) or pa.types.is_large_string(typ)):
        raise PipelineError(not_a_label(typ), path=source.paths[0], column=label)


def _require_model_features(source, model: LogisticModel) -> None:
    for name in [*model.features_, *model.categories_]:
        if name not in source.schema.names:
            raise missing_feature(name, source.paths[0], source.schema.names)
    source.require_columns(model.features_)
    _require_categorical(source, tuple(model.categories_), ())


def _require_categorical(source, categorical, others) -> None:
    for name in categorical:
        if name not in source.schema.names:
            raise PipelineError("no such column in the input" +
                                nearest_columns(name, source.schema.names),
                                path=source.paths[0], column=name)
        if name in others or list(categorical).count(name) > 1:
            raise PipelineError("a categorical column is named twice, or is also the label, "
                                "the weight or a numeric feature", path=source.paths[0],
                                column=name)
        if not is_categorical_type(source.schema.field(name).type):
            raise PipelineError("categorical column is not string, integer or bool "
                                f"({source.schema.field(name).type})", path=source.paths[0],
                                column=name)


def _model_categories(model: LogisticModel) -> tuple:
    return tuple((name, tuple(vocab)) for name, vocab in model.categories_.items())


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
        """The chunk's :class:`~pipeline.design.Block`: ``(X, y, rows_dropped)``."""
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
        source = _plan(input_path, options, dtype, null_values=null_values)
        if model_out is not None:
            _check_model_out(model_out, source, options)
        _require_label(source, label)
        named = features is not None
        categorical = tuple(categorical or ())
        check("max_categories", max_categories, COUNT)
        features = select_features(source, features, exclude, features_from,
                                   others=(label, weight, *categorical))
        if not features and not categorical:
            raise PipelineError("no floating-point feature columns; name them with features=NAMES",
                                path=source.paths[0], params=("features",))
        source.require_columns(features)
        _require_categorical(source, categorical, (label, weight, *features))
        if weight is not None:
            source.require_columns([weight])
        if not named and features_from == "float":
            _note_left_out(note, source, features,
                           exclude=(label, *([weight] if weight else []), *(exclude or ())))
        model.input_ = source.fingerprint()
        model.missing_ = missing
        model.dtype_ = _dtype_param(dtype)
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

    from .options import FEATURE_SETS
    from .params import choice

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
    if rows is None:  # CSV: float text is ~2.5x its binary size; be generous
        # (compressed CSV: float text compresses about 2-3x; count it as 4x its file)
        need = sum(source.storage.size(f) * (4 if input_format(f)[1] else 1)
                   for f in source.paths)
    else:
        need = block_nbytes(rows, p)
    return executor.fits_in_memory(need)


__all__ = ["read", "write", "transform_files", "score_files", "evaluate_files", "train_files",
           "ExecOptions"]
