"""Scoring and evaluation of one chunk with a fitted model (plain NumPy, no Dask)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..config.params import MISSING_NO_KEEP
from ..errors import PipelineError
from . import kernels
from .buffers import empty_column, to_arrow
from .design import sample_weights
from .device import to_host
from .values import (
    apply_missing,
    binary_label,
    float_values,
    missing_feature,
    validate_missing,
)

# Margin bins for the AUC (uniform in z over ±AUC_RANGE, the ends open): pairs within one bin
# count as ties, which bounds the error by half the share of (positive, negative) pairs that
# share a bin; reported as auc_error_bound. Binning z, not p, keeps the tails apart.
AUC_BINS = 1 << 18
AUC_RANGE = 40.0
# The evaluation's tables, fixed in size whatever the rows: calibration in CALIBRATION_BINS
# equal bins of predicted probability, score histograms in SCORE_BINS, the ROC curve drawn
# through at most ROC_POINTS of the AUC's margin bins.
CALIBRATION_BINS = 10
SCORE_BINS = 50
ROC_POINTS = 200


def chunk_margin(table: pa.Table, features, coef, intercept, source="",
                 device: str = "cpu", categories=()) -> np.ndarray:
    """x·w + b for every row, accumulated column by column (no (n, p) copy).

    ``categories`` is the model's ``(column, vocabulary)`` pairs, whose coefficients follow
    the numeric features' in ``coef``: a row adds its category's coefficient, or nothing for
    a value outside the vocabulary (scikit-learn's ``handle_unknown="ignore"``).
    """
    coef = np.asarray(coef, dtype=np.float64)
    if categories:
        z = chunk_margin(table, features, coef[:len(features)], intercept, source, device)
        start = len(features)
        for name, vocab in categories:
            z += _category_terms(table, name, vocab, coef[start:start + len(vocab)], source,
                                 device)
            start += len(vocab)
        return z
    n = table.num_rows
    cols = []
    for name in features:
        i = table.schema.get_field_index(name)
        if i < 0:
            raise missing_feature(name, str(source) or None)
        # float, integer or bool, exactly as float64; a missing value (kept) becomes NaN
        cols.append(float_values(table.column(i), name, source))
    if device == "gpu":
        import cupy

        X = cupy.stack([cupy.asarray(c, dtype=cupy.float64) for c in cols], axis=1)
        return X @ cupy.asarray(coef) + intercept
    z, _ = empty_column(n, np.float64)  # from the pool: no fresh mapping per chunk
    z.fill(intercept)
    tmp = np.empty(min(n, 65536))
    for start in range(0, n, 65536):  # cache-sized blocks: z stays in L2 across columns
        stop = min(start + 65536, n)
        zb, tb = z[start:stop], tmp[: stop - start]
        for w, c in zip(coef, cols, strict=True):
            np.multiply(c[start:stop], w, out=tb)
            zb += tb
    return z


def _category_terms(table: pa.Table, name: str, vocab, coef: np.ndarray, source,
                    device: str):
    """Each row's coefficient for its value of the categorical column ``name`` (0 when the
    value is not in ``vocab``; NaN for a missing value, as a numeric feature gives)."""
    import pyarrow.compute as pc

    i = table.schema.get_field_index(name)
    if i < 0:
        raise PipelineError("the model's feature is missing from the input",
                            path=str(source) or None, column=name)
    col = table.column(i)
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    try:
        values = pa.array(list(vocab)).cast(col.type)
    except (pa.ArrowException, TypeError, ValueError):
        try:
            values = pa.array([str(v).lower() if isinstance(v, bool) else str(v)
                               for v in vocab]).cast(col.type)
        except (pa.ArrowException, TypeError, ValueError):
            raise PipelineError(f"categorical column has type {col.type}, which the model's "
                                "categories are not", path=str(source) or None,
                                column=name) from None
    idx = pc.index_in(col, value_set=values).to_numpy(zero_copy_only=False)
    idx = np.where(np.isnan(idx), -1, idx).astype(np.int64) if idx.dtype.kind == "f" else \
        idx.astype(np.int64)
    table_coef = np.append(coef, 0.0)  # index -1: an unknown value adds nothing
    terms = table_coef[idx]
    if col.null_count:
        terms[np.asarray(col.is_null().to_numpy(zero_copy_only=False), bool)] = np.nan
    if device == "gpu":
        import cupy

        return cupy.asarray(terms)
    return terms


@dataclass(frozen=True)
class ScoreOp:
    """Kept columns, then ``probability`` (float64) and ``prediction`` (int8).

    A row with a missing feature (null or NaN) is an error (``missing="error"``), left out
    (``"drop"``), or written with null results (``"keep"``).
    """

    features: tuple[str, ...]
    coef: tuple[float, ...]
    intercept: float
    keep: tuple[str, ...]
    threshold: float = 0.5
    device: str = "cpu"
    missing: str = "error"
    categories: tuple = ()  # the model's (column, vocabulary) pairs

    def __post_init__(self) -> None:
        validate_missing(self.missing)

    def __call__(self, table: pa.Table, source="") -> pa.Table:
        for name in self.keep:
            if name not in table.column_names:
                raise PipelineError("no such column to keep", path=str(source) or None,
                                    column=name)
        used = [*self.features, *(name for name, _ in self.categories)]
        z = self._margin_if_complete(table, used, source)
        mask = None
        if z is None:
            table, source, mask = apply_missing(table, used, self.missing, source)
            z = chunk_margin(table, self.features, np.array(self.coef), self.intercept,
                             source, self.device, self.categories)
        p = to_host(kernels.sigmoid(z) if self.device == "gpu" else kernels.sigmoid(z, out=z))
        pred = (p >= self.threshold).astype(np.int8)
        arrays = [table.column(k) for k in self.keep] + [to_arrow(p, mask=mask),
                                                          to_arrow(pred, mask=mask)]
        return pa.Table.from_arrays(arrays, names=[*self.keep, "probability", "prediction"])

    def _margin_if_complete(self, table: pa.Table, used, source) -> np.ndarray | None:
        """The margin when no used value is missing, found in one pass over the margin
        instead of one over each feature: a NaN in any feature makes its row's margin NaN
        (NaN times any weight is NaN), and nulls are counted in the columns' metadata.
        None when a row may be missing (the rule in ``apply_missing`` decides)."""
        if self.device != "cpu":
            return None
        names = set(table.column_names)
        for name in used:
            if name not in names:
                return None  # chunk_margin's error names it
            col = table.column(name)
            if col.null_count or (name not in self.features and
                                  pa.types.is_floating(col.type)):
                return None
        z = chunk_margin(table, self.features, np.array(self.coef), self.intercept, source,
                         self.device, self.categories)
        return None if math.isnan(float(np.sum(z))) else z  # inf - inf: the slow path too


@dataclass(frozen=True)
class EvalOp:
    """Sufficient statistics of one chunk for log loss, accuracy and AUC.

    The label equals ``positive`` (class 1) or ``negative`` (class 0); rows with a missing
    feature or label are an error, or left out and counted with ``missing="drop"``.
    """

    features: tuple[str, ...]
    coef: tuple[float, ...]
    intercept: float
    label: str
    device: str = "cpu"
    missing: str = "error"
    positive: object = 1
    negative: object = 0
    weight: str | None = None  # a column of sample weights: weighted metrics
    categories: tuple = ()     # the model's (column, vocabulary) pairs
    threshold: float = 0.5     # of the confusion matrix

    def __post_init__(self) -> None:
        validate_missing(self.missing, MISSING_NO_KEEP)

    def __call__(self, table: pa.Table, source="") -> dict:
        if self.label not in table.column_names:
            raise PipelineError("no such label column", path=str(source) or None,
                                column=self.label)
        rows_in = table.num_rows
        used = [*self.features, *(name for name, _ in self.categories), self.label,
                *([self.weight] if self.weight else [])]
        for name in used[len(used) - (1 if self.weight else 0):]:
            if name not in table.column_names:
                raise PipelineError("no such weight column", path=str(source) or None,
                                    column=name)
        table, source, _ = apply_missing(table, used, self.missing, source)
        y = binary_label(table.column(self.label), self.label, self.positive, self.negative,
                         source)
        z = to_host(chunk_margin(table, self.features, np.array(self.coef), self.intercept,
                                 source, self.device, self.categories))
        pos = y > 0.5
        m = np.where(pos, z, -z)
        right = (m > 0) | ((z == 0) & pos)
        scaled = (np.clip(z, -AUC_RANGE, AUC_RANGE) + AUC_RANGE) * (AUC_BINS / (2 * AUC_RANGE))
        bins = np.minimum(scaled.astype(np.int64), AUC_BINS - 1)
        if self.weight is None:
            log_loss = -float(np.sum(kernels.log_sigmoid(m)))   # log σ, never log(rounded p)
            correct = int(np.count_nonzero(right))
            w = wp = wn = None
        else:
            w = sample_weights(table.column(self.weight), self.weight, source)
            log_loss = -float(kernels.log_sigmoid(m) @ w)
            correct = float(w[right].sum())
            wp, wn = w[pos], w[~pos]
        p = kernels.sigmoid(z)
        cal = np.minimum((p * CALIBRATION_BINS).astype(np.int64), CALIBRATION_BINS - 1)
        sb = np.minimum((p * SCORE_BINS).astype(np.int64), SCORE_BINS - 1)
        said = p >= self.threshold
        ones = np.ones(len(y)) if w is None else w
        return {
            "rows": len(y), "log_loss_sum": log_loss, "correct": correct,
            "pos_hist": np.bincount(bins[pos], weights=wp, minlength=AUC_BINS),
            "neg_hist": np.bincount(bins[~pos], weights=wn, minlength=AUC_BINS),
            "cal_count": np.bincount(cal, weights=ones, minlength=CALIBRATION_BINS),
            "cal_pred": np.bincount(cal, weights=ones * p, minlength=CALIBRATION_BINS),
            "cal_pos": np.bincount(cal[pos], weights=wp, minlength=CALIBRATION_BINS),
            "score_pos": np.bincount(sb[pos], weights=wp, minlength=SCORE_BINS),
            "score_neg": np.bincount(sb[~pos], weights=wn, minlength=SCORE_BINS),
            "confusion": np.array([[ones[~pos & ~said].sum(), ones[~pos & said].sum()],
                                   [ones[pos & ~said].sum(), ones[pos & said].sum()]]),
            **({"weight_sum": float(w.sum())} if w is not None else {}),
            "threshold": self.threshold,
            **({"rows_dropped": rows_in - len(y)} if self.missing == "drop" else {}),
        }


def add_eval(total: dict | None, part: dict) -> dict:
    """Two chunks' evaluation tables as one (so that a run holds one, whatever its chunks)."""
    if total is None:
        return dict(part)
    return {k: (v if k == "threshold" else v + part[k]) for k, v in total.items()}


# What ``pipeline evaluate`` prints; ``--out`` keeps the curves and tables as well.
SUMMARY_KEYS = ("rows", "weight_sum", "rows_dropped", "log_loss", "accuracy", "auc",
                "auc_error_bound", "threshold", "confusion")


def evaluation_summary(result: dict) -> dict:
    return {k: result[k] for k in SUMMARY_KEYS if k in result}


def combine_eval(parts: list[dict]) -> dict:
    rows = sum(p["rows"] for p in parts)
    if rows == 0:
        raise PipelineError("no rows to evaluate")
    pos = np.sum([p["pos_hist"] for p in parts], axis=0).astype(np.float64)
    neg = np.sum([p["neg_hist"] for p in parts], axis=0).astype(np.float64)
    P, N = pos.sum(), neg.sum()
    if P == 0 or N == 0:
        auc = bound = float("nan")
    else:
        neg_below = np.cumsum(neg) - neg
        auc = float((pos @ neg_below + 0.5 * (pos @ neg)) / (P * N))
        bound = float(0.5 * (pos @ neg) / (P * N))
    weighted = any("weight_sum" in p for p in parts)
    total = sum(p["weight_sum"] for p in parts) if weighted else rows
    if not total > 0:
        raise PipelineError("no rows with a positive weight to evaluate")
    curves = _curves(parts, pos, neg, threshold=parts[0].get("threshold", 0.5))
    return {
        "rows": int(rows),
        **({"weight_sum": total} if weighted else {}),
        "log_loss": sum(p["log_loss_sum"] for p in parts) / total,
        "accuracy": sum(p["correct"] for p in parts) / total,
        "auc": auc,
        "auc_error_bound": bound,
        **({"rows_dropped": sum(p["rows_dropped"] for p in parts)}
           if any("rows_dropped" in p for p in parts) else {}),
        **curves,
    }


def _curves(parts: list[dict], pos: np.ndarray, neg: np.ndarray, *, threshold: float) -> dict:
    """The ROC curve, calibration table, score histograms per class and confusion matrix,
    from the chunks' fixed-size tables (weighted counts where the rows have weights)."""
    def total(key):
        return np.sum([p[key] for p in parts], axis=0)

    P, N = pos.sum(), neg.sum()
    # ROC: thresholds from the highest margin bin down; keep the bins where the share of rows
    # above the threshold passes each 1/ROC_POINTS step (and both ends)
    tp = np.concatenate([[0.0], np.cumsum(pos[::-1])])
    fp = np.concatenate([[0.0], np.cumsum(neg[::-1])])
    share = (tp + fp) / max(P + N, 1e-300)
    keep = np.unique(np.concatenate([[0, len(tp) - 1], np.searchsorted(
        share, np.linspace(0, 1, ROC_POINTS + 1)[1:-1]).clip(0, len(tp) - 1)]))
    z_edges = np.linspace(AUC_RANGE, -AUC_RANGE, AUC_BINS + 1)  # margin at each cut
    roc = {"fpr": (fp[keep] / N).tolist() if N else [], "tpr": (tp[keep] / P).tolist()
           if P else [], "threshold": [float(kernels.sigmoid(np.float64(z_edges[k])))
                                       for k in keep] if P and N else []}
    count, pred, hits = total("cal_count"), total("cal_pred"), total("cal_pos")
    edges = np.linspace(0, 1, CALIBRATION_BINS + 1)
    calibration = [{"bin": [float(edges[i]), float(edges[i + 1])], "count": float(count[i]),
                    "mean_predicted": float(pred[i] / count[i]),
                    "observed_rate": float(hits[i] / count[i])}
                   for i in range(CALIBRATION_BINS) if count[i] > 0]
    conf = total("confusion")
    return {
        "threshold": threshold,
        "confusion": {"tn": float(conf[0, 0]), "fp": float(conf[0, 1]),
                      "fn": float(conf[1, 0]), "tp": float(conf[1, 1])},
        "roc": roc,
        "calibration": calibration,
        "histogram": {"edges": np.linspace(0, 1, SCORE_BINS + 1).tolist(),
                      "positive": total("score_pos").tolist(),
                      "negative": total("score_neg").tolist()},
    }
