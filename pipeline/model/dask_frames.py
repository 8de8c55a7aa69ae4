"""The model on dask DataFrames: fitting partition by partition, the label's classes found by
a pass, margins, probabilities and classes per partition."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..errors import PipelineError
from ..ops.design import (
    load_block,
)
from .modelfile import same_class
from .stats import (
    margin,
)


def fit_frame(model, X, *, label: str, features, weight, categorical, max_categories,
              positive, client, executor, log):
    """:meth:`LogisticModel.fit` on a dask DataFrame: each partition loaded and validated on
    the workers, the classes found as ``pipeline train`` finds them."""
    # a dask DataFrame: each partition is loaded and validated on the workers
    from ..run.execution import open_executor

    categorical = tuple(categorical or ())
    if features is None:  # every floating-point column but the label, as the CLI does
        import pandas as pd

        features = [c for c in X.columns if c not in (label, weight, *categorical)
                    and pd.api.types.is_float_dtype(X.dtypes[c])]
    if label not in X.columns:
        raise PipelineError("no such label column", column=label)
    parts = X.to_delayed()
    label_parts = X[[label]].to_delayed()
    kw = {"features": features, "label": label, "weight": weight,
          "categorical": categorical, "max_categories": max_categories, "log": log}

    def fit(ex, classes):
        loaders = [_PartitionLoader(i, p, tuple(features), label, weight, categorical,
                                    max_categories, classes)
                   for i, p in enumerate(parts)]
        return model.fit_chunks(loaders, ex, classes=classes, **kw)

    def run(ex):
        import pandas as pd

        dtype = X.dtypes[label]
        if pd.api.types.is_bool_dtype(dtype):
            return fit(ex, (True, False) if positive is None or
                       same_class(positive, True) else (False, True))
        if positive is None and pd.api.types.is_integer_dtype(dtype):
            # a 0/1 label needs no pass of its own: the first pass finds any other value
            try:
                return fit(ex, (1, 0))
            except PipelineError as exc:
                if not getattr(exc, "detail", str(exc)).startswith(
                        "label has a third value"):
                    raise
        return fit(ex, _partition_classes(label_parts, label, positive, ex))

    if executor is not None:
        return run(executor)
    with open_executor(client=client) as ex:
        return run(ex)


@dataclass
class _PartitionLoader:
    index: int
    partition: object
    features: tuple
    label: str
    weight: str | None = None
    categorical: tuple = ()
    max_categories: int = 1000
    classes: tuple = (1, 0)  # (positive, negative)

    @property
    def source_path(self) -> str:
        return f"partition {self.index}"

    @property
    def rows(self) -> int | None:
        return None  # a partition's rows are known once computed

    @property
    def plan_key(self) -> int:
        return self.index

    def produce(self) -> pa.Table:
        """The partition's rows as a table (the :class:`~pipeline.run.chunks.ChunkTask` form)."""
        return pa.Table.from_pandas(self.partition.compute(scheduler="sync"),
                                    preserve_index=False)

    def load(self):
        frame = self.partition.compute(scheduler="sync")
        return load_block(frame, self.features, self.label, self.source_path,
                          weight=self.weight, categorical=self.categorical,
                          max_categories=self.max_categories, classes=self.classes)


def _frame_margin(frame, model):
    """The margin of a pandas DataFrame's rows, categorical columns encoded (by name)."""
    import pandas as pd

    from ..ops.score import chunk_margin

    coef, b = model.coef_.ravel(), float(model.intercept_[0])
    if not hasattr(frame, "columns"):
        raise PipelineError("a model with categorical features predicts from a DataFrame "
                            "with its columns by name")
    if model.categories_:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        z = chunk_margin(table, model.features_, coef, b, "X", "cpu",
                         tuple((k, tuple(v)) for k, v in model.categories_.items()))
    else:
        z = margin(frame[list(model.features_)].to_numpy(dtype=np.float64), coef, b)
    return pd.Series(z, index=frame.index, name="margin")


def _partition_label_values(item):
    """A partition's label: its type (dictionaries decoded) and first distinct values."""
    from ..io.formats import decode_dictionaries
    from ..ops.values import first_values

    index, part, label = item
    table = decode_dictionaries(pa.Table.from_pandas(part.compute(scheduler="sync"),
                                                     preserve_index=False))
    return index, table.schema.field(label).type, first_values(table.column(label),
                                                              f"partition {index}")


def _partition_classes(parts, label: str, positive, executor) -> tuple:
    """(positive, negative) of a dask DataFrame's label, as ``pipeline train`` finds them:
    a pass over the label column (none for a bool label)."""
    from ..ops.values import label_classes, label_value, not_a_label

    found = sorted((r for _, r in executor.map_unordered(
        _partition_label_values, [(i, p, label) for i, p in enumerate(parts)])),
        key=lambda r: r[0])
    typ = next((t for _, t, v in found if v), found[0][1] if found else pa.int64())
    if not (pa.types.is_integer(typ) or pa.types.is_boolean(typ) or pa.types.is_floating(typ)
            or pa.types.is_string(typ) or pa.types.is_large_string(typ)
            or pa.types.is_null(typ)):
        raise PipelineError(not_a_label(typ), column=label)
    if positive is not None and not pa.types.is_null(typ):
        positive = label_value(positive, typ)
    values: dict = {}
    for _, _, part in found:
        for v, where in part.items():
            values.setdefault(v, where)
    return label_classes(values, label, positive, typ=typ)


def _frame_classes(z, classes, name):
    """A partition's predicted classes: ``classes[1]`` where the margin is > 0."""
    import pandas as pd

    return pd.Series(classes[(z.to_numpy() > 0).astype(np.intp)], index=z.index, name=name)


def _frame_pair(z, *, kernel):
    """``kernel`` of -z and z of a partition's margins, as columns p0 and p1."""
    import pandas as pd

    v = z.to_numpy()
    return pd.DataFrame({"p0": kernel(-v), "p1": kernel(v)}, index=z.index)
