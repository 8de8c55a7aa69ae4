"""The design matrix of one chunk: its features as float64 columns and its 0/1 label.

A loaded chunk is a :class:`Block`, validated once when it is read and then kept in worker
memory between passes (or re-read each pass); the statistics of :mod:`pipeline.model.stats` are
computed from it.

Categorical columns are one-hot encoded, scikit-learn's ``OneHotEncoder(handle_unknown=
"ignore")``: a block keeps, per categorical column, the chunk's own vocabulary and each row's
code in it (never the wide one-hot matrix); the model's vocabulary is the union over the
chunks, sorted (as ``OneHotEncoder``'s ``categories="auto"``), and the coefficients are the
numeric features' first, then each categorical column's, in the order of its vocabulary.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pyarrow as pa

from ..errors import PipelineError, located_error
from .values import apply_missing, binary_label, float_values


class Block(NamedTuple):
    """One chunk, loaded: ``X`` (n, p) float64, column-major; ``y`` float64 0/1;
    ``rows_dropped``, the rows left out for missing values; ``weight``, each row's sample
    weight (None: every row weighs 1)."""

    X: np.ndarray
    y: np.ndarray | None
    rows_dropped: int = 0
    weight: np.ndarray | None = None
    cats: tuple = ()  # per categorical column: (the chunk's vocabulary, int32 codes in it)


def load_block(block, features, label: str | None, source="", *, missing: str = "error",
               classes: tuple = (1, 0), weight: str | None = None, categorical=(),
               max_categories: int = 1000) -> Block:
    """Features as a float64 (n, p) array and the label as float64 0/1, validated.

    ``block`` is a ``pyarrow.Table`` or a pandas DataFrame; ``source`` names where its rows
    come from (a :class:`~pipeline.io.sources.RowOrigin` locates each row's file and row).
    Features may be float, integer or bool columns (converted exactly); the label equals
    ``classes[0]`` (the positive class, 1) or ``classes[1]`` (0). Rows with a missing feature
    or label are an error, or dropped with ``missing="drop"``. ``weight`` names a column of
    sample weights: numbers, non-negative and finite (else an error naming the row and value).
    ``categorical`` names string, integer or bool columns to one-hot encode (at most
    ``max_categories`` values each).

    X is column-major, so each column is one contiguous copy; its memory comes from
    pyarrow's pool (no fresh huge-page mappings per chunk).
    """
    from ..io.formats import decode_dictionaries
    from .buffers import empty_column

    table = decode_dictionaries(block if isinstance(block, pa.Table) else pa.Table.from_pandas(
        block, preserve_index=False))
    used = [*features, *categorical, *([label] if label is not None else []),
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
    cats = tuple(encode_category(table.column(name), name, source, max_categories)
                 for name in categorical)
    return Block(X, y, rows_in - n, w, cats)


def is_categorical_type(typ: pa.DataType) -> bool:
    """String, integer or bool (or a dictionary of them): what a categorical column may be."""
    if pa.types.is_dictionary(typ):
        typ = typ.value_type
    return (pa.types.is_string(typ) or pa.types.is_large_string(typ)
            or pa.types.is_integer(typ) or pa.types.is_boolean(typ))


def encode_category(col, name: str, source, max_categories: int) -> tuple[list, np.ndarray]:
    """A categorical column as (its distinct values in this chunk, each row's int32 code)."""
    import pyarrow.compute as pc

    if not is_categorical_type(col.type):
        raise PipelineError(f"categorical column is not string, integer or bool ({col.type})",
                            path=str(source) or None, column=name)
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    enc = pc.dictionary_encode(col)
    vocab = enc.dictionary.to_pylist()
    check_category_count(name, len(vocab), max_categories, path=str(source) or None)
    return vocab, enc.indices.to_numpy(zero_copy_only=False).astype(np.int32, copy=False)


def check_category_count(name: str, count: int, max_categories: int, *,
                         path: str | None = None) -> None:
    if count > max_categories:
        raise PipelineError(f"categorical column has more than {max_categories} distinct "
                            f"values ({count} seen); raise --max-categories or leave it out",
                            path=path, column=name)


def merge_vocabularies(vocabs) -> list:
    """The sorted union of a column's chunk vocabularies."""
    merged: set = set()
    for v in vocabs:
        merged.update(v)
    return sorted(merged)


def category_positions(n_numeric: int, categories: list[list], local: tuple) -> np.ndarray:
    """Where a block's columns (numeric, then its own vocabularies) sit among the model's
    coefficients (numeric, then the model's ``categories``), as indices."""
    pos = [np.arange(n_numeric)]
    offset = n_numeric
    for vocab, mine in zip(categories, local, strict=True):
        index = {v: i for i, v in enumerate(vocab)}
        pos.append(offset + np.array([index[v] for v in mine], dtype=np.int64))
        offset += len(vocab)
    return np.concatenate(pos)


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


def block_nbytes(rows: int, p: int, *, weighted: bool = False, categorical: int = 0) -> int:
    """Bytes of ``rows`` parsed rows: ``p`` float64 features, the float64 label and weight,
    and an int32 code per categorical column."""
    return rows * ((p + 1 + int(weighted)) * 8 + 4 * categorical)
