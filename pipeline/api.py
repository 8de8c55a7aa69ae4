"""The library's entry points; the CLI and job files call these and nothing else."""

from __future__ import annotations

import functools
import inspect
import os
from dataclasses import dataclass

from .device import resolve_device
from .errors import PipelineError, parse_size
from .execution import ExecOptions, open_executor, with_storage_options
from .model import LogisticModel, block_nbytes, load_block
from .params import STORAGE_OPTIONS, check
from .score import EvalOp, ScoreOp, combine_eval
from .sources import plan
from .storage import LocalStorage, open_storage
from .tasks import FileChunkTask, PartitionTask, file_tasks, run_reduce_task
from .transform import SigmoidOp, default_columns, validate_sigmoid_options
from .writer import job_identity, refuse_overlap, write_parts


def _plan(input_path, blocksize: int | None, storage_options: dict | None):
    """Discover and chunk INPUT, passing ``storage_options`` on to the readers where they
    take them (local inputs need none)."""
    if storage_options and "storage_options" in inspect.signature(plan).parameters:
        return plan(input_path, blocksize=blocksize, storage_options=storage_options)
    return plan(input_path, blocksize=blocksize)


def read(input_path, columns=None, blocksize=None, *, storage_options: dict | None = None):
    """A lazy dask DataFrame over INPUT (file, folder, glob or URL), one partition per chunk.

    ``storage_options`` go to the file system of a URL (``{"endpoint_url": ...}``).
    """
    import dask.dataframe as dd

    if storage_options is not None:
        check("storage_options", storage_options, STORAGE_OPTIONS)
    source = _plan(input_path, parse_size(blocksize, name="blocksize"), storage_options)
    names = list(columns) if columns is not None else list(source.schema.names)
    source.require_columns(names, numeric=False)
    meta = source.schema.empty_table().select(names).to_pandas()
    numeric = tuple(n for n in names if n in default_columns(source.schema))
    fn = functools.partial(_read_frame, source.reader(), tuple(names), numeric)
    return dd.from_map(fn, source.chunks, meta=meta, enforce_metadata=False)


def _read_frame(reader, columns, numeric, chunk):
    return reader.read(chunk, list(columns), numeric).to_pandas()


def write(df, out, overwrite: bool = False, resume: bool = False, *, client=None,
          device: str = "cpu", progress: bool = False,
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


def transform_files(input_path, out, *, columns=None, temperature: float = 1.0,
                    feature_range=(0.0, 1.0), output: str = "value",
                    options: ExecOptions | None = None, client=None,
                    storage_options: dict | None = None) -> dict:
    """``pipeline transform``: the sigmoid of the chosen columns, every other column kept.

    INPUT and OUT may be URLs; ``storage_options`` (or ``options.storage_options``) go to
    their file systems.
    """
    options = with_storage_options(options, storage_options)
    feature_range = (float(feature_range[0]), float(feature_range[1]))
    validate_sigmoid_options(temperature, feature_range, output)
    device = resolve_device(options.device)
    source = _plan(input_path, options.blocksize_bytes(), options.storage_options)
    refuse_overlap(out, source.paths, input_arg=input_path)
    cols = tuple(columns) if columns else default_columns(source.schema)
    if not cols:
        raise PipelineError("no floating-point columns to transform; name them with "
                            "--columns", path=source.paths[0])
    source.require_columns(cols)
    op = SigmoidOp(cols, float(temperature), feature_range, output, device)
    params = {"columns": list(cols), "temperature": float(temperature),
              "range": list(feature_range), "output": output}
    return _write_tasks("transform", file_tasks(source, op, numeric=cols), source, out, params,
                        options, client, device)


def score_files(input_path, model, out, *, keep=None, threshold: float = 0.5,
                options: ExecOptions | None = None, client=None,
                storage_options: dict | None = None) -> dict:
    """``pipeline score``: kept columns, ``probability`` and ``prediction`` per row.

    INPUT, the model file and OUT may be URLs (``storage_options`` for their file systems).
    """
    options = with_storage_options(options, storage_options)
    model_path = os.fspath(model) if not isinstance(model, LogisticModel) else None
    if model_path:
        model = LogisticModel.load(model_path, storage_options=options.storage_options)
    if not (0.0 <= float(threshold) <= 1.0):
        raise PipelineError(f"--threshold must be in [0, 1]; got {threshold!r}")
    device = resolve_device(options.device)
    source = _plan(input_path, options.blocksize_bytes(), options.storage_options)
    refuse_overlap(out, source.paths, input_arg=input_path)
    _require_model_features(source, model)
    keep = tuple(keep) if keep is not None else tuple(
        n for n in source.schema.names if n not in model.features_)
    source.require_columns(keep, numeric=False)
    op = ScoreOp(tuple(model.features_), tuple(map(float, model.coef_)), model.intercept_,
                 keep, float(threshold), device)
    columns = tuple(dict.fromkeys([*keep, *model.features_]))
    params = {"model": model.to_dict() | {"history": None}, "model_path": model_path,
              "keep": list(keep), "threshold": float(threshold)}
    tasks = file_tasks(source, op, columns=columns, numeric=tuple(model.features_))
    return _write_tasks("score", tasks, source, out, params, options, client, device)


def evaluate_files(input_path, model, *, label: str = "label",
                   options: ExecOptions | None = None, client=None,
                   storage_options: dict | None = None) -> dict:
    """``pipeline evaluate``: rows, log_loss (via log σ), accuracy and AUC, out of core.

    INPUT and the model file may be URLs (``storage_options`` for their file systems).
    """
    options = with_storage_options(options, storage_options)
    if not isinstance(model, LogisticModel):
        model = LogisticModel.load(model, storage_options=options.storage_options)
    device = resolve_device(options.device)
    source = _plan(input_path, options.blocksize_bytes(), options.storage_options)
    if label not in source.schema.names:
        raise PipelineError("no such label column", path=source.paths[0], column=label)
    _require_model_features(source, model)
    source.require_columns([label])
    op = EvalOp(tuple(model.features_), tuple(map(float, model.coef_)), model.intercept_,
                label, device)
    tasks = file_tasks(source, op, columns=(*model.features_, label),
                       numeric=tuple(model.features_))
    with open_executor(options, client) as ex:
        parts = [r for _, r in ex.map_unordered(run_reduce_task, tasks)]
    return combine_eval(parts)


def _require_model_features(source, model: LogisticModel) -> None:
    for name in model.features_:
        if name not in source.schema.names:
            raise PipelineError("the model's feature is missing from the input",
                                path=source.paths[0], column=name)
    source.require_columns(model.features_)


@dataclass(frozen=True)
class TrainChunk:
    """One chunk's features and label, read and validated (cached or re-read each pass)."""

    task: FileChunkTask
    features: tuple[str, ...]
    label: str
    device: str = "cpu"

    @property
    def source_path(self) -> str:
        return self.task.source_path

    def load(self):
        X, y = load_block(self.task.read(), self.features, self.label, self.task.source_path,
                          first_row=-1)
        if self.device == "gpu":  # cached in GPU memory; each pass runs there
            import cupy

            return cupy.asarray(X), cupy.asarray(y)
        return X, y


def train_files(input_path, model_out, *, label: str = "label", features=None,
                C: float = 1.0, penalty: str | None = "l2", tol: float = 1e-10,
                max_iter: int = 50, options: ExecOptions | None = None, client=None,
                log=None, storage_options: dict | None = None) -> LogisticModel:
    """``pipeline train``: fit out of core, then write the model file atomically.

    INPUT and the model file may be URLs (``storage_options`` for their file systems); on
    an object store the model file is one PUT, written only when the fit is done.
    """
    options = with_storage_options(options, storage_options)
    model = LogisticModel(C=C, penalty=penalty, tol=tol, max_iter=max_iter)
    model._validate_params()
    model_out = None if model_out is None else os.fspath(model_out)
    exists = model_out is not None and _model_exists(model_out, options)
    if exists and options.overwrite and options.resume:
        raise PipelineError("--overwrite and --resume cannot be used together", path=model_out)
    if exists and not (options.overwrite or options.resume):
        raise PipelineError("model file already exists; pass --overwrite to replace it or "
                            "--resume to keep it when it was trained the same way",
                            path=model_out)
    device = resolve_device(options.device)
    source = _plan(input_path, options.blocksize_bytes(), options.storage_options)
    if model_out is not None:
        _check_model_out(model_out, source, options)
    if label not in source.schema.names:
        raise PipelineError("no such label column", path=source.paths[0], column=label)
    if features is None:
        features = [n for n in default_columns(source.schema) if n != label]
    if not features:
        raise PipelineError("no floating-point feature columns; name them with --features",
                            path=source.paths[0])
    source.require_columns([*features, label])
    model.features_ = list(features)
    model.label_ = label
    model.input_ = source.fingerprint()
    if exists and options.resume:
        # Training is one atomic write at the end, so an interrupted run left no model file;
        # an existing one is kept only if it is this very job's result.
        old = LogisticModel.load(model_out, storage_options=options.storage_options)
        if not _same_training(old, model):
            raise PipelineError("cannot resume: the model file was trained with other "
                                "parameters or input; rerun with --overwrite",
                                path=model_out)
        return old
    tasks = file_tasks(source, None, columns=(*features, label), numeric=tuple(features))
    chunks = [TrainChunk(t, tuple(features), label, device) for t in tasks]
    with open_executor(options, client) as ex:
        cache = _fits_in_memory(source, len(features), ex)
        model._fit_chunks(chunks, ex, cache=cache, log=log)
    if model_out is not None:
        model.save(model_out, storage_options=options.storage_options)
    return model


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
            raise PipelineError("--overwrite replaces only a model file of this tool, and "
                                "this file is not one; not touched", path=path) from None


def _same_training(old: LogisticModel, new: LogisticModel) -> bool:
    a, b = old.to_dict(), new.get_params()
    return (a["features"] == new.features_ and a["label"] == new.label_
            and a["C"] == (None if b["penalty"] is None else float(b["C"]))
            and a["tol"] == b["tol"] and a["max_iter"] == b["max_iter"]
            and getattr(old, "input_", None) == new.input_)


def _fits_in_memory(source, p: int, executor) -> bool:
    """Cache the parsed blocks when the executor can hold them (``Executor.fits_in_memory``)."""
    rows = source.total_rows
    if rows is None:  # CSV: float text is ~2.5x its binary size; be generous
        need = sum(os.path.getsize(f) for f in source.paths)
    else:
        need = block_nbytes(rows, p)
    return executor.fits_in_memory(need)


__all__ = ["read", "write", "transform_files", "score_files", "evaluate_files", "train_files",
           "ExecOptions"]
