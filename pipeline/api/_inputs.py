"""What the library's entry points share: planning an input, the checks of its columns, the
job's recorded parameters and the write of its parts."""

from __future__ import annotations

import os

import pyarrow as pa

from ..config.exec_options import ExecOptions
from ..errors import PipelineError, nearest_columns
from ..io.formats import default_blocksize, is_numeric_type, parse_dtypes
from ..io.sources import plan
from ..io.writer import EarlyOutput, job_identity
from ..model.estimator import LogisticModel
from ..ops.buffers import fast_pool
from ..ops.design import is_categorical_type
from ..ops.transform import left_out_columns
from ..ops.values import (
    missing_feature,
    not_a_label,
)
from ..run.chunks import write_parts
from ..run.execution import open_executor

Path = str | os.PathLike  # a local path or a URL


def write_tasks(command, tasks, source, out, params, options, client, device, early=None):
    job = job_identity(command, params, source.fingerprint())
    with open_executor(options, client) as ex:
        return write_parts(tasks, out, executor=ex, job=job, overwrite=options.overwrite,
                           resume=options.resume, device=device, progress=not options.quiet,
                           total_rows=source.total_rows,
                           storage_options=options.storage_options, early=early)


def plan_input(input_path, options: ExecOptions, dtype, out=None, null_values=None,
               early: EarlyOutput | None = None):
    """INPUT planned; ``early`` (OUT on an object store) surveyed meanwhile."""
    blocksize = options.blocksize_bytes() or default_blocksize(input_path, out)
    # the samples and the small files parsed at planning: on the pool the chunks use
    # (mimalloc's fresh pages for each planning thread's tables cost a small-CSV run on an
    # object store 0.3 s of system time, measured)
    with fast_pool():
        return plan(input_path, blocksize=blocksize, dtype=dtype, null_values=null_values,
                    storage_options=options.storage_options,
                    io_concurrency=options.io_concurrency,
                    listed=early.start if early is not None else None)


def dtype_param(dtype) -> dict:
    """``--dtype`` as recorded in the job (what ``--resume`` compares)."""
    return {k: str(v) for k, v in parse_dtypes(dtype).items()}


def note_left_out(note, source, used, exclude=()) -> None:
    left = left_out_columns(source.schema, exclude=(*used, *exclude))
    if note is not None and left:
        note(f"numeric columns left out (integer or bool; name them to use them): "
             f"{', '.join(left)}")


def require_label(source, label: str) -> None:
    if label not in source.schema.names:
        raise PipelineError("no such label column" + nearest_columns(label, source.schema.names),
                            path=source.paths[0], column=label)
    typ = source.schema.field(label).type
    if not (is_numeric_type(typ) or pa.types.is_string(typ) or pa.types.is_large_string(typ)):
        raise PipelineError(not_a_label(typ), path=source.paths[0], column=label)


def require_model_features(source, model: LogisticModel) -> None:
    for name in [*model.features_, *model.categories_]:
        if name not in source.schema.names:
            raise missing_feature(name, source.paths[0], source.schema.names)
    source.require_columns(model.features_)
    require_categorical(source, tuple(model.categories_), ())


def require_categorical(source, categorical, others) -> None:
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


def model_categories(model: LogisticModel) -> tuple:
    return tuple((name, tuple(vocab)) for name, vocab in model.categories_.items())
