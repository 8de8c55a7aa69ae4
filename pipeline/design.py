"""The design matrix of one chunk: its features as float64 columns and its 0/1 label.

A loaded chunk is a :class:`Block`, validated once when it is read and then kept in worker
memory between passes (or re-read each pass); the statistics of :mod:`pipeline.stats` are
computed from it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pyarrow as pa

from .errors import PipelineError, located_error
from .values import apply_missing, binary_label, float_values


class Block(NamedTuple):
    """One chunk, loaded: ``X`` (n, p) float64, column-major; ``y`` float64 0/1;
    ``rows_dropped``, the rows left out for missing values; ``weight``, each row's sample
    weight (None: every row weighs 1)."""

    X: np.ndarray
    y: np.ndarray | None
    rows_dropped: int = 0
    weight: np.ndarray | None = None


def load_block(block, features, label: str | None, source="", *, missing: str = "error",
               classes: tuple = (1, 0), weight: str | None = None) -> Block:
    """Features as a float64 (n, p) array and the label as float64 0/1, validated.

    ``block`` is a ``pyarrow.Table`` or a pandas DataFrame; ``source`` names where its rows
    come from (a :class:`~pipeline.sources.RowOrigin` locates each row's file and row).
    Features may be float, integer or bool columns (converted exactly); the label equals
    ``classes[0]`` (the positive class, 1) or ``classes[1]`` (0). Rows with a missing feature
    or label are an error, or dropped with ``missing="drop"``. ``weight`` names a column of
    sample weights: numbers, non-negative and finite (else an error naming the row and value).

    X is column-major, so each column is one contiguous copy; its memory comes from
    pyarrow's pool (no fresh huge-page mappings per chunk).
    """
    from .buffers import empty_column

    table = block if isinstance(block, pa.Table) else pa.Table.from_pandas(
        block, preserve_index=False)
    used = [*features, *([label] if label is not None else []),
            *([weight] if weight is not None else [])]
    for name in used:
        if name not in table.column_names:
            raise PipelineError("no such column in the input", path=str(source) or None,
                                column=name)
    rows_in = table.num_rows
    table, source, _ = apply_missing(table, used, missing, source)
    n = table.num_rows
    flat, _ = empty_column(n * len(features), np.float64)
    X = flat.reshape((len(features), n)).T  # (n, p), column-major
    for j, name in enumerate(features):
        float_values(table.column(name), name, source, out=X[:, j])
        if not np.isfinite(X[:, j].sum()):  # cheap; inf propagates into the sum
            bad = ~np.isfinite(X[:, j])
            if bad.any():
                raise located_error("feature is infinite", source, column=name,
                                    index=int(np.argmax(bad)))
    y = None
    if label is not None:
        y = binary_label(table.column(label), label, classes[0], classes[1], source)
    w = None if weight is None else sample_weights(table.column(weight), weight, source)
    return Block(X, y, rows_in - n, w)


def sample_weights(col, name: str, source) -> np.ndarray:
    """A weight column as float64: every value finite and non-negative, else an error naming
    the row and the value."""
    w = float_values(col, name, source)
    if w.dtype != np.float64:
        w = w.astype(np.float64)
    if not (np.isfinite(w.sum()) and w.min(initial=0.0) >= 0):
        bad = ~np.isfinite(w) | (w < 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise located_error(f"weight {w[i]!r} is not a finite non-negative number",
                                source, column=name, index=i)
    return w


def block_nbytes(rows: int, p: int, *, weighted: bool = False) -> int:
    """Bytes of ``rows`` parsed rows: ``p`` float64 features, the float64 label and weight."""
    return rows * (p + 1 + int(weighted)) * 8
