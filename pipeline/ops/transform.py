"""The sigmoid transform of a table's columns, one chunk at a time.

:class:`SigmoidOp` is a plain picklable function of a ``pyarrow.Table`` (and of a pandas
block, for :func:`sigmoid_columns` on a dask DataFrame); Dask, or the local thread pool, only
maps it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from ..config.params import OUTPUTS, check, choice
from ..errors import PipelineError, nearest_columns
from . import kernels
from .buffers import empty_column, to_arrow
from .device import to_device, to_host
from .values import apply_missing, float_values, validate_missing

if TYPE_CHECKING:
    import dask.dataframe as dd


@dataclass(frozen=True)
class SigmoidOp:
    """σ(x / T), rescaled to ``feature_range``, or its derivative or log, on ``columns``."""

    columns: tuple[str, ...]
    temperature: float = 1.0
    feature_range: tuple[float, float] = (0.0, 1.0)
    output: str = "value"
    device: str = "cpu"
    missing: str = "keep"  # null or NaN in a column: keep (NaN→NaN, null→null), drop, error

    def __post_init__(self) -> None:
        validate_sigmoid_options(self.temperature, self.feature_range, self.output)
        validate_missing(self.missing)

    def apply_array(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The transformed column, written into ``out`` when given (CPU)."""
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        kernel = {"value": kernels.sigmoid, "derivative": kernels.sigmoid_derivative,
                  "log": kernels.log_sigmoid}[self.output]
        scale = self.temperature != 1.0
        if self.device == "gpu":
            res = to_device(np.asarray(x, dtype=dtype), "gpu")
            res = kernel(res / dtype.type(self.temperature) if scale else res)
        elif scale:
            res = np.divide(x, self.temperature, dtype=dtype, out=out)
            kernel(res, out=res)  # the kernels write each block once, last: in place is safe
        else:
            res = kernel(x.astype(dtype, copy=False),
                         out=out if out is not None else np.empty(x.shape, dtype))
        lo, hi = self.feature_range
        if self.output == "value" and (lo, hi) != (0.0, 1.0):
            res *= dtype.type(hi - lo)
            res += dtype.type(lo)
        return to_host(res)

    def __call__(self, table: pa.Table, source="") -> pa.Table:
        """The transformed table; ``source`` locates rows for errors (see ``RowOrigin``)."""
        if self.missing != "keep":
            table, source, _ = apply_missing(table, self.columns, self.missing, source)
        cols = list(table.columns)
        for name in self.columns:
            i = table.schema.get_field_index(name)
            col = table.column(i)
            # zero-copy view for floats without nulls; integers and bools exactly as float64
            x = float_values(col, name, source, keep_float32=True)
            buf = None
            if self.device == "cpu":
                dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float64
                out, buf = empty_column(len(x), dtype)
                values = self.apply_array(x, out)
            else:
                values = self.apply_array(x)
            mask = col.is_null().to_numpy(zero_copy_only=False) if col.null_count else None
            cols[i] = to_arrow(values, buf, mask)
        return pa.Table.from_arrays(cols, schema=_out_schema(table.schema, self.columns))

    def apply_frame(self, frame):
        frame = frame.copy()
        for name in self.columns:
            frame[name] = self.apply_array(frame[name].to_numpy(dtype=None, copy=False))
        return frame


def _out_schema(schema: pa.Schema, columns) -> pa.Schema:
    fields = []
    for f in schema:
        if f.name in columns and not pa.types.is_floating(f.type):
            f = f.with_type(pa.float64())
        fields.append(f)
    return pa.schema(fields, metadata=schema.metadata)


def validate_sigmoid_options(temperature, feature_range, output) -> None:
    """Check the transform's parameters against the rules ``pipeline transform`` declares."""
    from ..config.options import constraint

    check("temperature", temperature, constraint("transform", "temperature"))
    check("feature_range", feature_range, constraint("transform", "range"))
    choice("output", output, OUTPUTS)


def default_columns(schema: pa.Schema) -> tuple[str, ...]:
    """Every floating-point column."""
    return tuple(f.name for f in schema if pa.types.is_floating(f.type))


def left_out_columns(schema: pa.Schema, exclude=()) -> tuple[str, ...]:
    """Integer and bool columns, which the default column set leaves out (name them to use
    them)."""
    return tuple(f.name for f in schema if f.name not in exclude and (
        pa.types.is_integer(f.type) or pa.types.is_boolean(f.type)))


def sigmoid_columns(df: dd.DataFrame, *, columns: Sequence[str] | None = None,
                    temperature: float = 1.0, feature_range: tuple[float, float] = (0, 1),
                    output: str = "value", device: str = "cpu") -> dd.DataFrame:
    """Lazy sigmoid of ``columns`` (default: every floating-point column) of a dask DataFrame.

    Other columns pass through; names, order and dtypes are kept (float32 stays float32).
    """
    import pandas as pd

    if columns is None:
        columns = [c for c, t in df.dtypes.items() if pd.api.types.is_float_dtype(t)]
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise PipelineError("no such column" + nearest_columns(missing[0], df.columns),
                            column=missing[0])
    for c in columns:
        if not pd.api.types.is_numeric_dtype(df.dtypes[c]):
            raise PipelineError(f"column is not numeric ({df.dtypes[c]})", column=c)
    op = SigmoidOp(tuple(columns), float(temperature),
                   (float(feature_range[0]), float(feature_range[1])), output, device)
    meta = df._meta.copy()
    for c in columns:
        if not pd.api.types.is_float_dtype(meta.dtypes[c]):
            meta[c] = meta[c].astype("float64")
    return df.map_partitions(op.apply_frame, meta=meta)
