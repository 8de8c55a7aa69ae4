"""``pipeline report OUT``: one self-contained HTML page of a run's per-chunk cost.

Plots are plain SVG written here (no plotting library, no network): seconds, rows/s and peak
RSS per chunk, a timeline of chunks per worker, and, where the output was scored with a model,
the model's loss and gradient norm per training pass. An evaluation kept beside the output
(``pipeline evaluate ... --out OUT/_evaluation.json``) adds its ROC curve, calibration,
score histograms per class and confusion matrix. Axes are fitted to the data (not to 0);
the charts scale to the page's width, two or more abreast.

OUT may be a URL: the run's files are read, and ``_report.html`` written (one PUT on an object
store; a temporary name and a rename on a local disk), through the storage seam.
"""

from __future__ import annotations

import html
import json
import os
import posixpath

from ..errors import PipelineError
from ..io.parts import CHUNKS, JOB, SUCCESS
from ..io.storage import open_storage
from ..io.urls import is_url
from .charts import as_number, evaluation_svgs, scatter_svg, timeline_svg

W, H, PAD = 640, 300, 56
EVALUATION = "_evaluation.json"
def _read(storage, path: str) -> str | None:
    """A small file's text (undecodable bytes replaced), or None when it cannot be read."""
    try:
        with storage.open(path, "rb") as fh:
            return fh.read().decode("utf-8", errors="replace")
    except OSError:
        return None


def load_records(storage, out: str) -> list[dict]:
    """The per-chunk records of the output folder ``out`` (on ``storage``) in chunk order.

    A line that is not a JSON object with a chunk number (cut by an interruption, damaged)
    is skipped; a record may lack any other field (a resumed run keeps only ``chunk``,
    ``part`` and ``rows`` for the parts it found), which the report then leaves blank.
    """
    text = _read(storage, storage.join(out, CHUNKS))
    if text is None:
        return []
    records = []
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and as_number(rec.get("chunk")) is not None:
            records.append(rec)
    return sorted(records, key=lambda r: r["chunk"])


def _load_manifest(storage, out: str) -> tuple[dict | None, str]:
    """``_SUCCESS`` and the report's line on completeness."""
    path = storage.join(out, SUCCESS)
    if not storage.exists(path):
        return None, ("complete: no (no _SUCCESS): the output is incomplete; rerun its "
                      "command with --resume to finish it")
    try:
        manifest = json.loads(_read(storage, path) or "")
    except json.JSONDecodeError:
        manifest = None
    if not isinstance(manifest, dict):
        return None, f"complete: unknown ({SUCCESS} is damaged)"
    return manifest, f"complete: yes ({manifest.get('command')})"


def _cell(value, fmt: str = "{}", scale: float = 1.0) -> str:
    v = as_number(value)
    return "" if v is None else html.escape(fmt.format(v / scale))


def write_report(out: str | os.PathLike, *, storage_options: dict | None = None) -> str:
    """Write ``OUT/_report.html`` and return a short text summary.

    Works on any output folder this tool leaves: complete, resumed, or incomplete (no
    ``_SUCCESS``: the summary says so, and what records exist are drawn). OUT may be a URL;
    ``storage_options`` go to its file system (and to that of the model a score used).
    """
    shown = os.fspath(out)
    storage, root = open_storage(shown, storage_options)
    if not storage.isdir(root) or not any(storage.exists(storage.join(root, f))
                                          for f in (CHUNKS, SUCCESS, JOB)):
        raise PipelineError(f"not an output folder of this tool (no {CHUNKS}, {SUCCESS} or "
                            f"{JOB})", path=shown)
    records = load_records(storage, root)
    manifest, completeness = _load_manifest(storage, root)
    idx = [r["chunk"] for r in records]
    secs = [as_number(r.get("seconds")) for r in records]
    rows_each = [as_number(r.get("rows")) for r in records]
    rate = [n / t if n is not None and t else None for n, t in zip(rows_each, secs, strict=True)]
    peak = [as_number(r.get("peak_rss_bytes")) for r in records]
    peak = [None if v is None else v / 2**20 for v in peak]
    plots = [  # one chunk's dot says no more than the summary's line
        scatter_svg("seconds per chunk", "chunk", "seconds", idx, secs),
        scatter_svg("rows/s per chunk", "chunk", "rows/s", idx, rate),
        scatter_svg("peak RSS per chunk", "chunk", "MiB", idx, peak),
        timeline_svg(records),
    ] if len(records) > 1 else []
    history = _model_history(manifest, storage_options)
    if history:
        passes = [h.get("pass") for h in history]
        plots.append(scatter_svg("training loss per pass", "pass", "loss",
                                 passes, [as_number(h.get("loss")) for h in history], line=True))
        plots.append(scatter_svg("gradient norm per pass", "pass", "max |gradient|",
                                 passes, [as_number(h.get("grad_norm")) for h in history],
                                 log_y=True, line=True))
    evaluation = _load_evaluation(storage, root)
    model = _scored_model(manifest)
    classes = _class_names(model)
    if evaluation:
        plots.extend(evaluation_svgs(evaluation, classes))
    rows = sum(n for n in rows_each if n is not None)
    lines = [f"output: {shown}", f"chunks: {len(records)}", f"rows: {rows:,.0f}", completeness]
    if manifest:
        seconds = as_number(manifest.get("seconds"))
        peak_total = as_number(manifest.get("peak_rss_bytes"))
        if seconds is not None:
            lines.append(f"seconds: {seconds:.3f}")
        if peak_total is not None:
            lines.append(f"peak RSS: {peak_total / 2**20:.0f} MiB")
        if seconds and as_number(manifest.get("rows")) is not None:
            lines.extend(_rate(manifest, seconds))
    timed = [t for t in secs if t is not None]
    if timed:
        lines.append(f"chunk seconds: min {min(timed):.3f}  median "
                     f"{sorted(timed)[len(timed) // 2]:.3f}  max {max(timed):.3f}")
    if len(timed) < len(records):
        lines.append(f"chunks without timings: {len(records) - len(timed)} (kept by --resume)")
    page_path = (os.path.join(shown, "_report.html") if not is_url(shown) else
                 shown.rstrip("/") + "/_report.html")
    lines.append(f"report: {page_path}")
    summary = "\n".join(lines)
    table = "".join(
        f"<tr><td>{r['chunk']}</td><td>{html.escape(str(r.get('source', '')))}</td>"
        f"<td>{_cell(r.get('rows'), '{:.0f}')}</td><td>{_cell(r.get('seconds'), '{:.3f}')}</td>"
        f"<td>{_cell(r.get('cpu_seconds'), '{:.3f}')}</td>"
        f"<td>{_cell(r.get('peak_rss_bytes'), '{:.0f}', 2**20)}</td>"
        f"<td>{html.escape(str(r.get('worker', '')))}</td>"
        f"<td>{html.escape(str(r.get('device', '')))}</td></tr>" for r in records)
    name = posixpath.basename(shown.replace(os.sep, "/").rstrip("/"))
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>pipeline report: {html.escape(name)}</title>
<style>body{{font-family:sans-serif;margin:2em}} svg{{display:block;border:1px solid #ddd;
background:#fff}} .charts{{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));
gap:1em;margin:1em 0}} td,th{{padding:2px 8px;font-size:12px}} pre{{background:#f4f4f4;
padding:1em}} table.confusion td{{font-size:14px;text-align:right;border:1px solid #ccc;
padding:6px 14px}}</style></head><body>
<h1>pipeline report</h1><pre>{html.escape(summary)}</pre>
{_model_html(model, manifest, storage, root, evaluation)}
<div class="charts">{''.join(f"<div>{p}</div>" for p in plots if p)}</div>
{_confusion_html(evaluation, classes)}
<h2>chunks</h2><table><tr><th>chunk</th><th>source</th><th>rows</th><th>seconds</th>
<th>cpu s</th><th>peak MiB</th><th>worker</th><th>device</th></tr>{table}</table>
</body></html>
"""
    storage.write_text(storage.join(root, "_report.html"), page)  # whole or not at all
    return summary


def _model_history(manifest, storage_options: dict | None) -> list[dict]:
    """The training history of the model a scored output used, when it can be read."""
    params = (manifest or {}).get("params")
    path = params.get("model_path") if isinstance(params, dict) else None
    if not isinstance(path, str):
        return []
    try:
        storage, key = open_storage(path, storage_options)
    except PipelineError:  # its file system is not installed here: no history to draw
        return []
    try:
        history = json.loads(_read(storage, key) or "").get("history")
    except (json.JSONDecodeError, AttributeError):
        return []
    if not isinstance(history, list):
        return []
    return [h for h in history if isinstance(h, dict) and as_number(h.get("pass")) is not None]


def _load_evaluation(storage, out: str) -> dict | None:
    """``OUT/_evaluation.json`` (``pipeline evaluate --out``), when present and readable."""
    path = storage.join(out, EVALUATION)
    try:
        evaluation = json.loads(_read(storage, path) or "") if storage.exists(path) else None
    except ValueError:
        return None
    return evaluation if isinstance(evaluation, dict) else None


def _rate(manifest: dict, seconds: float) -> list[str]:
    """The run's rows/s: after a resume, only the rows this run wrote, over its own time."""
    kept_parts = as_number(manifest.get("resumed_parts")) or 0
    kept_rows = as_number(manifest.get("resumed_rows"))
    if not kept_parts:
        return [f"rows/s: {manifest['rows'] / seconds:,.0f}"]
    if kept_rows is None:  # an older manifest: which rows this run wrote is not known
        return []
    done = manifest["rows"] - kept_rows
    return [f"rows/s: {done / seconds:,.0f} (this run: {done:,.0f} rows in {seconds:.3f} s; "
            f"{kept_rows:,.0f} rows in {kept_parts:.0f} parts kept from the interrupted run)"]


def _scored_model(manifest) -> dict | None:
    """The model a scored output used (recorded in its ``_SUCCESS``), when it has one."""
    params = (manifest or {}).get("params")
    model = params.get("model") if isinstance(params, dict) else None
    if not isinstance(model, dict) or not isinstance(model.get("features"), list) or \
            not isinstance(model.get("coef"), list):
        return None
    return model


def _class_names(model: dict | None) -> tuple[str, str]:
    """The (positive, negative) classes: as the label holds them where it holds text
    ("Yes"), else with the label's name (``late=1``)."""
    if not model:
        return "positive class", "negative class"
    label = str(model.get("label", "label"))
    return tuple(v if isinstance(v, str) else f"{label}={json.dumps(v)}"
                 for v in (model.get("positive", 1), model.get("negative", 0)))


def _terms(model: dict) -> list[tuple[str, float]]:
    """(name, coefficient): the intercept, the features, then ``column=level`` for each
    category level with a coefficient (a reference level, dropped, has none)."""
    coef = [c for c in model["coef"] if as_number(c) is not None]
    names = [str(f) for f in model["features"]]
    categories = model.get("categories") or {}
    # one coefficient per level, or (a reference level dropped) one fewer per column
    dropped = len(coef) < len(names) + sum(len(v) for v in categories.values())
    for col, vocab in categories.items():
        levels = [f"{col}={v}" for v in vocab]
        names.extend(levels[1:] if dropped else levels)
    terms = [("(intercept)", model.get("intercept"))]
    terms.extend(zip(names, coef, strict=False))
    return [(n, c) for n, c in terms if as_number(c) is not None]


def _model_html(model: dict | None, manifest, storage, root: str, ev: dict | None) -> str:
    """The model a scored output used: classes, fit, coefficients, and its metrics on the
    label where the label is known (an evaluation kept here, or the label kept in the
    scores)."""
    if not model:
        return ""
    pos, neg = (repr(model.get(k, d)) for k, d in (("positive", 1), ("negative", 0)))
    label = str(model.get("label", "label"))
    C = as_number(model.get("C"))
    fit = [f"label {label!r}: positive class {pos}, negative class {neg}",
           f"L2 penalty, C = {C:g}" if C is not None else "no penalty"]
    for key, word in (("rows", "rows trained on"), ("passes", "passes"),
                      ("iterations", "iterations")):
        if as_number(model.get(key)) is not None:
            fit.append(f"{word}: {model[key]:,}")
    if isinstance(model.get("converged"), bool):
        fit.append(f"converged: {'yes' if model['converged'] else 'no'}")
    if as_number(model.get("loss")) is not None:
        fit.append(f"training loss: {model['loss']:.6g}")
    coefs = "".join(f'<tr class="coef"><td>{html.escape(n)}</td><td>{c:.7g}</td></tr>'
                    for n, c in _terms(model))
    metrics, where = _label_metrics(ev, model, manifest, storage, root)
    rows = "".join(f'<tr class="metric"><th>{html.escape(k)}</th>'
                   f'<td>{int(v) if k == "rows" else f"{v:.7g}"}</td></tr>'
                   for k, v in metrics.items())
    return (f"<h2>model</h2><p>{html.escape('; '.join(fit))}</p>"
            f"<p>{html.escape(where)}</p><table class=\"metrics\">{rows}</table>"
            f"<table><tr><th>term</th><th>coefficient</th></tr>{coefs}</table>")


def _label_metrics(ev, model, manifest, storage, root) -> tuple[dict, str]:
    """Log loss, accuracy and AUC, and where they come from; or why there are none."""
    label = str(model.get("label", "label"))
    if ev and as_number(ev.get("log_loss")) is not None:
        keys = (("rows", "rows"), ("log loss", "log_loss"), ("accuracy", "accuracy"),
                ("AUC", "auc"))
        return ({k: ev[j] for k, j in keys if as_number(ev.get(j)) is not None},
                f"on the evaluation kept here ({EVALUATION}), label {label!r}:")
    params = (manifest or {}).get("params") or {}
    if label not in (params.get("keep") or []):
        return {}, (f"the scores do not keep the label {label!r}: log loss, accuracy and "
                    f"AUC need it (score with --keep ... {label}, or keep an evaluation "
                    f"here: pipeline evaluate INPUT MODEL --label {label} --out "
                    f"OUT/{EVALUATION})")
    try:
        found = _scores_metrics(storage, root, manifest, model, label,
                                float(params.get("threshold", 0.5)))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return {}, f"the label {label!r} in the scores could not be read ({exc})"
    if found is None:
        return {}, f"the label {label!r} in the scores holds no row of both classes"
    return found, (f"on the label {label!r} kept in the scores (log loss from the stored "
                   f"probabilities; accuracy at the scores' threshold):")


def _scores_metrics(storage, root, manifest, model, label: str, threshold: float
                    ) -> dict | None:
    """The metrics of the scores' ``probability`` against their label, part by part (two
    columns at a time); the AUC with ``pipeline evaluate``'s margin bins."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..ops.kernels import log_sigmoid
    from ..ops.score import AUC_BINS, AUC_RANGE

    rows, loss, correct = 0, 0.0, 0
    pos_hist = np.zeros(AUC_BINS)
    neg_hist = np.zeros(AUC_BINS)
    for part in manifest.get("parts") or []:
        with storage.open(storage.join(root, part["part"]), "rb") as fh:
            t = pq.read_table(fh, columns=[label, "probability"])
        col = t.column(label)
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        is_pos, is_neg = (_equals(col, model.get(k, d)) for k, d in
                          (("positive", 1), ("negative", 0)))
        p = t.column("probability").to_numpy(zero_copy_only=False).astype(np.float64)
        ok = (is_pos | is_neg) & np.isfinite(p)
        p, y = p[ok], is_pos[ok]
        # the margin back from the probability (float64 holds σ to 1 - 2^-53)
        q = np.clip(p, np.finfo(np.float64).tiny, 1 - 2.0 ** -53)
        z = np.log(q) - np.log1p(-q)
        loss -= float(np.sum(log_sigmoid(np.where(y, z, -z))))
        correct += int(np.count_nonzero((p >= threshold) == y))
        rows += len(y)
        bins = np.minimum(((np.clip(z, -AUC_RANGE, AUC_RANGE) + AUC_RANGE) *
                           (AUC_BINS / (2 * AUC_RANGE))).astype(np.int64), AUC_BINS - 1)
        pos_hist += np.bincount(bins[y], minlength=AUC_BINS)
        neg_hist += np.bincount(bins[~y], minlength=AUC_BINS)
    P, N = pos_hist.sum(), neg_hist.sum()
    if not (P and N):
        return None
    auc = (pos_hist @ (np.cumsum(neg_hist) - neg_hist) + 0.5 * (pos_hist @ neg_hist)) / (P * N)
    return {"rows": rows, "log loss": loss / rows, "accuracy": correct / rows,
            "AUC": float(auc)}


def _equals(col, value):
    """Where the label column equals ``value`` (a JSON value: "Yes", 1, true), as NumPy."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        scalar = pa.scalar(value).cast(col.type)
    except (pa.ArrowException, TypeError, ValueError):
        scalar = pa.scalar(str(value).lower() if isinstance(value, bool) else str(value))
        col = col.cast(pa.string())
    eq = pc.fill_null(pc.equal(col, scalar), False)
    return np.asarray(eq.to_numpy(zero_copy_only=False), dtype=bool)


def _confusion_html(ev: dict | None, classes: tuple[str, str] = ("positive", "negative")
                    ) -> str:
    conf = (ev or {}).get("confusion")
    if not isinstance(conf, dict):
        return ""
    cells = {k: _cell(conf.get(k), "{:,.0f}") for k in ("tn", "fp", "fn", "tp")}
    threshold = _cell((ev or {}).get("threshold"), "{:g}")
    pos, neg = (html.escape(c.removesuffix(" class")) for c in classes)
    return (f"<h2>confusion matrix at threshold {threshold}</h2><table class=\"confusion\">"
            f"<tr><th></th><th>predicted {neg}</th><th>predicted {pos}</th></tr>"
            f"<tr><th>actual {neg}</th><td>{cells['tn']}</td><td>{cells['fp']}</td></tr>"
            f"<tr><th>actual {pos}</th><td>{cells['fn']}</td><td>{cells['tp']}</td></tr>"
            "</table>")
