"""``transform``, ``score`` and ``evaluate`` over files: plan the input, check it, run the
chunks and write (or reduce) them."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..config.exec_options import ExecOptions, with_storage_options
from ..config.options import constraint
from ..config.params import MISSING_NO_KEEP, check
from ..errors import PipelineError
from ..io.formats import parse_null_values
from ..io.parts import write_json
from ..io.writer import early_output, refuse_overlap
from ..model.estimator import LogisticModel
from ..ops.device import resolve_device
from ..ops.score import EvalOp, ScoreOp, add_eval, combine_eval
from ..ops.transform import SigmoidOp, default_columns, validate_sigmoid_options
from ..ops.values import (
    label_value,
    validate_missing,
)
from ..run.execution import open_executor
from ..run.tasks import file_tasks, run_reduce_task
from ._inputs import (
    Path,
    dtype_param,
    model_categories,
    note_left_out,
    plan_input,
    require_label,
    require_model_features,
    write_tasks,
)

if TYPE_CHECKING:
    from distributed import Client



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
    with early_output(out, input_path, options.storage_options) as early:
        source = plan_input(input_path, options, dtype, out, null_values, early)
        refuse_overlap(out, source.paths, input_arg=input_path)
        cols = tuple(columns) if columns else default_columns(source.schema)
        if not cols:
            raise PipelineError("no floating-point columns to transform; name them with "
                                "columns=NAMES", path=source.paths[0], params=("columns",))
        source.require_columns(cols)
        if not columns:
            note_left_out(note, source, cols)
        op = SigmoidOp(cols, float(temperature), feature_range, output, device, missing)
        params = {"columns": list(cols), "temperature": float(temperature),
                  "range": list(feature_range), "output": output, "missing": missing,
                  "dtype": dtype_param(dtype),
                  "null_values": list(parse_null_values(null_values))}
        tasks = file_tasks(source, op, numeric=cols, drops_rows=missing == "drop",
                           batch_bytes=options.blocksize_bytes())
        return write_tasks("transform", tasks, source, out, params, options, client, device,
                           early)


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
    with early_output(out, input_path, options.storage_options) as early:
        source = plan_input(input_path, options, dtype, out, null_values, early)
        refuse_overlap(out, source.paths, input_arg=input_path)
        require_model_features(source, model)
        keep = tuple(keep) if keep is not None else tuple(
            n for n in source.schema.names if n not in model.features_
            and n not in model.categories_)
        source.require_columns(keep, numeric=False)
        op = ScoreOp(tuple(model.features_), tuple(map(float, np.ravel(model.coef_))),
                     float(np.ravel(model.intercept_)[0]), keep, float(threshold), device, missing,
                     model_categories(model))
        columns = tuple(dict.fromkeys([*keep, *model.features_, *model.categories_]))
        params = {"model": model.to_dict() | {"history": None}, "model_path": model_path,
                  "keep": list(keep), "threshold": float(threshold), "missing": missing,
                  "dtype": dtype_param(dtype),
                  "null_values": list(parse_null_values(null_values))}
        tasks = file_tasks(source, op, columns=columns, numeric=tuple(model.features_),
                           drops_rows=missing == "drop", batch_bytes=options.blocksize_bytes())
        return write_tasks("score", tasks, source, out, params, options, client, device,
                           early)


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
    source = plan_input(input_path, options, dtype, null_values=null_values)
    require_label(source, label)
    require_model_features(source, model)
    typ = source.schema.field(label).type
    positive = label_value(model.positive_, typ, what="the model's positive class")
    negative = label_value(model.negative_, typ, what="the model's negative class")
    op = EvalOp(tuple(model.features_), tuple(map(float, np.ravel(model.coef_))),
                float(np.ravel(model.intercept_)[0]), label, device, missing, positive,
                negative, weight, model_categories(model), float(threshold))
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
