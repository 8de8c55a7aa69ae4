"""The values of the columns a command uses: missing cells, exact float64, binary labels.

One rule each, shared by every per-chunk op (transform, train, score, evaluate), all
vectorised. A block's rows are located for error messages through its ``source`` (see
:func:`pipeline.errors.located_error`). ``pyarrow.compute`` is imported where a function
needs it (25 ms and 9 MiB that a clean float run does not pay).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..config.params import MISSING, choice
from ..errors import PipelineError, located_error, nearest_columns
from ..io.formats import is_numeric_type
from .buffers import column_numpy

# Integers beyond this magnitude have no exact float64.
EXACT_INT = 2**53


def validate_missing(missing: str, allowed: tuple[str, ...] = MISSING) -> None:
    choice("missing", missing, allowed)


def missing_mask(table: pa.Table, names) -> np.ndarray | None:
    """Rows where any of ``names`` is null or NaN; None when there is no such row."""
    mask = None
    for name in names:
        col = table.column(name)
        if col.null_count == 0 and not pa.types.is_floating(col.type):
            continue
        chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
        if col.null_count == 0 and all(np.isfinite(column_numpy(c).sum()) for c in chunks):
            continue  # cheap: NaN propagates into the sum
        import pyarrow.compute as pc

        if pa.types.is_floating(col.type):
            m = pc.is_null(col, nan_is_null=True)
        elif col.null_count:
            m = pc.is_null(col)
        else:
            continue
        m = np.asarray(m.to_numpy(zero_copy_only=False) if isinstance(m, pa.Array)
                       else m.combine_chunks().to_numpy(zero_copy_only=False), dtype=bool)
        mask = m if mask is None else (mask | m)
    return mask if mask is not None and mask.any() else None


class KeptRows:
    """The source of a block after some rows were dropped: locates rows of the rest."""

    def __init__(self, source, kept: np.ndarray) -> None:
        self.source, self.kept = source, kept

    def __str__(self) -> str:
        return str(self.source)

    def locate(self, index: int) -> tuple[str | None, int | None]:
        j = int(self.kept[index])
        if hasattr(self.source, "locate"):
            return self.source.locate(j)
        return (str(self.source) if self.source else None), j


def apply_missing(table: pa.Table, names, missing: str, source
                  ) -> tuple[pa.Table, object, np.ndarray | None]:
    """The ``--missing`` rule on the used columns ``names``.

    Returns ``(table, source, mask)``: ``error`` raises naming the first missing cell;
    ``drop`` returns the other rows (and a source that still locates them); ``keep`` returns
    everything and the mask of rows whose results are null.
    """
    mask = missing_mask(table, names)
    if mask is None:
        return table, source, None
    if missing == "error":
        i = int(np.argmax(mask))
        column = next(n for n in names if _is_missing(table.column(n), i))
        raise located_error('missing value (null or NaN); pass missing="drop" to skip such '
                            "rows", source, column=column, index=i, params=("missing",))
    if missing == "drop":
        kept = np.flatnonzero(~mask)
        return table.take(pa.array(kept)), KeptRows(source, kept), None
    return table, source, mask


def _is_missing(col, i: int) -> bool:
    v = col[i]
    return not v.is_valid or (pa.types.is_floating(col.type) and v.as_py() != v.as_py())


def float_values(col, name: str, source, *, keep_float32: bool = False,
                 out: np.ndarray | None = None) -> np.ndarray:
    """A float, integer or bool column as float64 NumPy, exactly (nulls become NaN), written
    into ``out`` when given; float32 stays float32 with ``keep_float32``.

    Integers beyond 2**53 in magnitude have no exact float64: an error naming the row.
    """
    typ = col.type
    if pa.types.is_integer(typ):
        if typ.bit_width == 64 and len(col) and _int_range_exceeds(col):
            import pyarrow.compute as pc

            big = pc.or_(pc.less(col, -EXACT_INT), pc.greater(col, EXACT_INT))
            i = pc.index(big, True).as_py()
            raise located_error(f"integer {col[i].as_py()} is beyond 2**53 in magnitude "
                                "and has no exact float64", source, column=name, index=i)
    elif not (pa.types.is_floating(typ) or pa.types.is_boolean(typ)):
        raise located_error(f"column is not numeric ({typ})", source, column=name)
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    if out is None and len(chunks) == 1:
        return _float_chunk(chunks[0], keep_float32)
    if out is None:
        out = np.empty(len(col), np.float32 if keep_float32 and typ == pa.float32()
                       else np.float64)
    start = 0
    for c in chunks:  # chunk by chunk: no combined copy
        out[start:start + len(c)] = _float_chunk(c, True)
        start += len(c)
    return out


def _int_range_exceeds(col) -> bool:
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    for c in chunks:
        if c.null_count:
            c = c.drop_null()
        if len(c):
            x = column_numpy(c)
            if x.min() < -EXACT_INT or x.max() > EXACT_INT:
                return True
    return False


def _float_chunk(c: pa.Array, keep_float32: bool) -> np.ndarray:
    if pa.types.is_floating(c.type):
        x = column_numpy(c)
        return x if keep_float32 or x.dtype == np.float64 else x.astype(np.float64)
    if c.null_count == 0:  # exact: magnitudes are checked to be within 2**53
        return column_numpy(c).astype(np.float64)
    return column_numpy(c.cast(pa.float64()))  # nulls become NaN


def label_value(value, typ: pa.DataType, *, what: str = "positive"):
    """``value`` (text from the command line, or a JSON value) as a value of the label's type."""
    try:
        return pa.scalar(value).cast(typ).as_py()
    except (pa.ArrowException, TypeError, ValueError):
        pass
    try:
        return pa.scalar(str(value)).cast(typ).as_py()
    except (pa.ArrowException, TypeError, ValueError):
        raise PipelineError(f"{what} {value!r} is not a value of the label's type "
                            f"({typ})", params=(what,)) from None


def label_classes(values: dict, label: str, positive=None, *, typ=None) -> tuple:
    """(positive, negative) from the label's distinct values in input order
    (``{value: (path, row)}``): exactly two; the positive class is the larger one, as
    scikit-learn's ``classes_[1]``, unless ``positive`` is given."""
    distinct = list(values)
    if len(distinct) > 2:
        third = distinct[2]
        path, row = values[third]
        raise PipelineError(f"label has a third value {third!r} (a binary label takes exactly "
                            f"two values; found {distinct[0]!r} and {distinct[1]!r} first)",
                            path=path, column=label, row=row)
    if len(distinct) == 2:
        if positive is None:
            return max(distinct), min(distinct)
        if positive not in distinct:
            raise PipelineError(f"positive {positive!r} is not a value of the label (it "
                                f"takes {distinct[0]!r} and {distinct[1]!r})", column=label,
                                params=("positive",))
        return positive, next(v for v in distinct if v != positive)
    if not distinct:
        raise PipelineError("label has no values (every row is missing, or there are no "
                            "rows)", column=label)
    raise one_class_label(label, distinct[0], path=values[distinct[0]][0])


def one_class_label(label: str | None, value, *, path: str | None = None) -> PipelineError:
    """A label with one class (of any type) has nothing to fit: the one sentence, from the
    CLI and the library alike."""
    value = value.item() if isinstance(value, np.generic) else value
    return PipelineError(f"label takes only one value ({value!r}); a binary label takes two "
                         "(a fit on one class has no finite optimum)", path=path,
                         column=label)


def first_values(col, source, limit: int = 3) -> dict:
    """The first ``limit`` distinct non-missing values of a label column and where each first
    occurs: ``{value: (path, row)}``, in row order."""
    import pyarrow.compute as pc

    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    valid = pc.is_valid(col) if not pa.types.is_floating(col.type) else \
        pc.invert(pc.is_null(col, nan_is_null=True))
    uniq = pc.unique(col.filter(valid))[:limit]  # in order of first occurrence
    firsts = sorted((pc.index(col, v).as_py(), v.as_py()) for v in uniq)
    out = {}
    for i, v in firsts:
        path, row = (source.locate(i) if hasattr(source, "locate")
                     else (str(source) if source else None, i))
        out[v] = (path, row)
    return out


def not_a_label(typ: pa.DataType) -> str:
    """Why a column cannot be a label: the one sentence, wherever it is found."""
    return f"label column is not bool, integer or string ({typ})"


def missing_feature(name: str, path: str | None, names=None) -> PipelineError:
    """The input lacks a feature of the model (when planned, or in a chunk); ``names``, the
    input's columns, give the nearest."""
    hint = nearest_columns(name, names) if names is not None else ""
    return PipelineError("the model's feature is missing from the input" + hint, path=path,
                         column=name)


def binary_label(col, name: str, positive, negative, source) -> np.ndarray:
    """The label as float64 0/1 (1 where it equals ``positive``); any value that is neither
    class is an error naming its row."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        import pyarrow.compute as pc

        pos = np.asarray(pc.equal(col, pa.scalar(positive).cast(col.type))
                         .to_numpy(zero_copy_only=False), dtype=bool)
        ok = pos | np.asarray(pc.equal(col, pa.scalar(negative).cast(col.type))
                              .to_numpy(zero_copy_only=False), dtype=bool) \
            if negative is not None else np.ones(len(pos), bool)
    elif is_numeric_type(col.type):
        v = column_numpy(col)
        pos = v == positive
        ok = pos | (v == negative) if negative is not None else np.ones(len(v), bool)
    else:
        raise located_error(not_a_label(col.type), source, column=name)
    if not ok.all():
        i = int(np.argmin(ok))
        raise located_error(f"label has a third value {col[i].as_py()!r} (the classes are "
                            f"{negative!r} and {positive!r})", source, column=name, index=i)
    return pos.astype(np.float64)
