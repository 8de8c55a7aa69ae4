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
import math
import os
import posixpath

from .errors import PipelineError
from .storage import open_storage
from .writer import CHUNKS, JOB, SUCCESS

W, H, PAD = 640, 300, 56
EVALUATION = "_evaluation.json"
COLORS = ("#4477aa", "#ee6677", "#228833")


def _svg(width, height, body) -> str:
    """An SVG that scales to its container's width (the page's grid column)."""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
            f'width="100%" preserveAspectRatio="xMidYMid meet">' + "".join(body) + "</svg>")


def _padded(lo: float, hi: float, frac: float = 0.05) -> tuple[float, float]:
    """A range around the data with a margin, so that no mark sits on an axis."""
    span = hi - lo
    if span == 0:
        span = abs(hi) or 1.0
    return lo - frac * span, hi + frac * span


def _scale(lo, hi, a, b):
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def _tick(v: float, fmt: str) -> str:
    """A tick label that fits left of the axis: 1.2M, 839k, else ``fmt``."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e4, "k")):
        if abs(v) >= scale:
            return f"{v / (1e3 if suffix == 'k' else scale):.3g}{suffix}"
    return fmt.format(v)


def _axes(title, xlabel, ylabel, xlo, xhi, ylo, yhi, fmt="{:.3g}", *,
          int_x: bool = False) -> list[str]:
    out = [f'<text x="{W / 2}" y="16" text-anchor="middle" font-weight="bold">'
           f'{html.escape(title)}</text>',
           f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - 10}" y2="{H - PAD}" stroke="#333"/>',
           f'<line x1="{PAD}" y1="24" x2="{PAD}" y2="{H - PAD}" stroke="#333"/>',
           f'<text x="{W / 2}" y="{H - 10}" text-anchor="middle">{html.escape(xlabel)}</text>',
           f'<text x="12" y="{H / 2}" transform="rotate(-90 12 {H / 2})" '
           f'text-anchor="middle">{html.escape(ylabel)}</text>']
    sy = _scale(ylo, yhi, H - PAD - 2, 30)
    sx = _scale(xlo, xhi, PAD + 4, W - 14)
    for k in range(5):  # ticks and grid lines at quarters of each range
        v = ylo + (yhi - ylo) * k / 4
        y = sy(v)
        out.append(f'<line x1="{PAD}" y1="{y:.1f}" x2="{W - 10}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{PAD - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10">'
                   f'{_tick(v, fmt)}</text>')
    xticks = [xlo + (xhi - xlo) * k / 4 for k in range(5)]
    if int_x:  # chunk and pass numbers: whole ticks, each once
        xticks = sorted({round(v) for v in xticks if xlo <= round(v) <= xhi})
    for v in xticks:
        out.append(f'<text x="{sx(v):.1f}" y="{H - PAD + 14}" text-anchor="middle" '
                   f'font-size="10">{v if int_x else fmt.format(v)}</text>')
    return out


def scatter_svg(title, xlabel, ylabel, xs, ys, *, log_y=False, line=False) -> str:
    pts = [(x, y) for x, y in zip(xs, ys, strict=True)
           if y is not None and math.isfinite(y) and (y > 0 or not log_y)]
    if not pts:
        return ""
    tf = (lambda v: math.log10(v)) if log_y else (lambda v: v)
    xlo, xhi = min(p[0] for p in pts), max(p[0] for p in pts)
    if xlo == xhi:  # one point: an axis around it
        xlo, xhi = xlo - 1, xhi + 1
    ylo, yhi = _padded(min(tf(p[1]) for p in pts), max(tf(p[1]) for p in pts))
    fmt = "{:.6g}" if not log_y and (yhi - ylo) < 1e-3 * max(abs(yhi), 1e-300) else "{:.3g}"
    sx, sy = _scale(xlo, xhi, PAD + 4, W - 14), _scale(ylo, yhi, H - PAD - 2, 30)
    body = _axes(title, xlabel, ylabel + (" (log10)" if log_y else ""), xlo, xhi, ylo, yhi,
                 fmt, int_x=all(float(p[0]).is_integer() for p in pts))
    if line and len(pts) > 1:
        path = " ".join(f"{sx(x):.1f},{sy(tf(y)):.1f}" for x, y in pts)
        body.append(f'<polyline points="{path}" fill="none" stroke="#4477aa"/>')
    for x, y in pts:
        body.append(f'<circle class="mark" cx="{sx(x):.1f}" cy="{sy(tf(y)):.1f}" r="3" '
                    f'fill="#4477aa"><title>{x}: {y:.6g}</title></circle>')
    return _svg(W, H, body)


def lines_svg(title, xlabel, ylabel, series, *, xlim=(0.0, 1.0), ylim=(0.0, 1.0),
              diagonal=False, bars=False) -> str:
    """Several series ``(name, xs, ys)`` on fixed axes: lines (or bars, side by side),
    with a legend; ``diagonal`` draws y = x (the chance line, perfect calibration)."""
    if not any(len(xs) for _, xs, _ in series):
        return ""
    sx, sy = _scale(*xlim, PAD + 4, W - 14), _scale(*ylim, H - PAD - 2, 30)
    body = _axes(title, xlabel, ylabel, *xlim, *ylim, "{:.2g}")
    if diagonal:
        body.append(f'<line x1="{sx(xlim[0]):.1f}" y1="{sy(ylim[0]):.1f}" '
                    f'x2="{sx(xlim[1]):.1f}" y2="{sy(ylim[1]):.1f}" stroke="#999" '
                    'stroke-dasharray="4 3"/>')
    for k, (name, xs, ys) in enumerate(series):
        color = COLORS[k % len(COLORS)]
        if bars:
            step = (xs[1] - xs[0]) if len(xs) > 1 else 1.0
            width = (sx(xs[0] + step) - sx(xs[0])) / (len(series) + 0.5)
            for x, y in zip(xs, ys, strict=True):
                x0 = sx(x) + k * width
                body.append(f'<rect class="mark" x="{x0:.1f}" y="{sy(y):.1f}" '
                            f'width="{max(width, 0.5):.1f}" height="{sy(ylim[0]) - sy(y):.1f}" '
                            f'fill="{color}" opacity="0.8"><title>{name} {x:.3g}: {y:.4g}'
                            '</title></rect>')
        else:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, ys, strict=True))
            body.append(f'<polyline class="mark" points="{path}" fill="none" '
                        f'stroke="{color}" stroke-width="2"/>')
            for x, y in zip(xs, ys, strict=True) if len(xs) <= 20 else ():
                body.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}">'
                            f'<title>{x:.3g}: {y:.3g}</title></circle>')
        body.append(f'<rect x="{W - 170}" y="{34 + 16 * k}" width="10" height="10" '
                    f'fill="{color}"/><text x="{W - 155}" y="{43 + 16 * k}" font-size="11">'
                    f'{html.escape(name)}</text>')
    return _svg(W, H, body)


def _number(value) -> float | None:
    """A record's numeric field, or None when absent or not a finite number (JSON true is
    not a number here)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return value
    return None


def timeline_svg(records) -> str:
    recs = [r for r in records
            if _number(r.get("start")) is not None and _number(r.get("seconds")) is not None]
    if not recs:
        return ""
    workers = sorted({str(r.get("worker", "?")) for r in recs})
    t0 = min(r["start"] for r in recs)
    t1 = max(r["start"] + r["seconds"] for r in recs)
    height = max(H, 40 + 22 * len(workers) + PAD)
    sx = _scale(0, t1 - t0, PAD + 110, W - 14)
    body = [f'<text x="{W / 2}" y="16" text-anchor="middle" font-weight="bold">'
            'chunks over wall-clock time, per worker</text>']
    for i, w in enumerate(workers):
        y = 30 + 22 * i
        body.append(f'<text x="{PAD + 106}" y="{y + 13}" text-anchor="end" font-size="10">'
                    f'{html.escape(w[-28:])}</text>')
        for r in recs:
            if str(r.get("worker", "?")) == w:
                x0, x1 = sx(r["start"] - t0), sx(r["start"] - t0 + r["seconds"])
                body.append(f'<rect class="mark" x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 1):.1f}"'
                            f' height="16" fill="#66ccee" stroke="#225"><title>chunk '
                            f'{r["chunk"]}: {r["seconds"]:.3f}s</title></rect>')
    body.append(f'<text x="{W / 2}" y="{height - 10}" text-anchor="middle">seconds since '
                f'start (0 to {t1 - t0:.2f})</text>')
    return _svg(W, height, body)


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
        if isinstance(rec, dict) and _number(rec.get("chunk")) is not None:
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
    v = _number(value)
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
    secs = [_number(r.get("seconds")) for r in records]
    rows_each = [_number(r.get("rows")) for r in records]
    rate = [n / t if n is not None and t else None for n, t in zip(rows_each, secs, strict=True)]
    peak = [_number(r.get("peak_rss_bytes")) for r in records]
    peak = [None if v is None else v / 2**20 for v in peak]
    plots = [
        scatter_svg("seconds per chunk", "chunk", "seconds", idx, secs),
        scatter_svg("rows/s per chunk", "chunk", "rows/s", idx, rate),
        scatter_svg("peak RSS per chunk", "chunk", "MiB", idx, peak),
        timeline_svg(records),
    ]
    history = _model_history(manifest, storage_options)
    if history:
        passes = [h.get("pass") for h in history]
        plots.append(scatter_svg("training loss per pass", "pass", "loss",
                                 passes, [_number(h.get("loss")) for h in history], line=True))
        plots.append(scatter_svg("gradient norm per pass", "pass", "max |gradient|",
                                 passes, [_number(h.get("grad_norm")) for h in history],
                                 log_y=True, line=True))
    evaluation = _load_evaluation(storage, root)
    if evaluation:
        plots.extend(evaluation_svgs(evaluation))
    rows = sum(n for n in rows_each if n is not None)
    lines = [f"output: {shown}", f"chunks: {len(records)}", f"rows: {rows:,.0f}", completeness]
    if manifest:
        seconds = _number(manifest.get("seconds"))
        peak_total = _number(manifest.get("peak_rss_bytes"))
        if seconds is not None:
            lines.append(f"seconds: {seconds:.3f}")
        if peak_total is not None:
            lines.append(f"peak RSS: {peak_total / 2**20:.0f} MiB")
        if seconds and _number(manifest.get("rows")) is not None:
            lines.append(f"rows/s: {manifest['rows'] / seconds:,.0f}")
    timed = [t for t in secs if t is not None]
    if timed:
        lines.append(f"chunk seconds: min {min(timed):.3f}  median "
                     f"{sorted(timed)[len(timed) // 2]:.3f}  max {max(timed):.3f}")
    if len(timed) < len(records):
        lines.append(f"chunks without timings: {len(records) - len(timed)} (kept by --resume)")
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
<div class="charts">{''.join(f"<div>{p}</div>" for p in plots if p)}</div>
{_confusion_html(evaluation)}
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
    return [h for h in history if isinstance(h, dict) and _number(h.get("pass")) is not None]


def _load_evaluation(storage, out: str) -> dict | None:
    """``OUT/_evaluation.json`` (``pipeline evaluate --out``), when present and readable."""
    path = storage.join(out, EVALUATION)
    try:
        evaluation = json.loads(_read(storage, path) or "") if storage.exists(path) else None
    except ValueError:
        return None
    return evaluation if isinstance(evaluation, dict) else None


def evaluation_svgs(ev: dict) -> list[str]:
    """The ROC curve, the calibration table and the score histograms of an evaluation."""
    plots = []
    roc = ev.get("roc") or {}
    if isinstance(roc, dict) and roc.get("fpr"):
        auc = _number(ev.get("auc"))
        plots.append(lines_svg(f"ROC curve (AUC {auc:.4f})" if auc is not None else "ROC curve",
                               "false positive rate", "true positive rate",
                               [("model", roc["fpr"], roc["tpr"])], diagonal=True))
    cal = [c for c in ev.get("calibration") or [] if isinstance(c, dict)]
    if cal:
        plots.append(lines_svg("calibration: observed rate per predicted-probability bin",
                               "mean predicted probability", "observed positive rate",
                               [("model", [c["mean_predicted"] for c in cal],
                                 [c["observed_rate"] for c in cal])], diagonal=True))
    hist = ev.get("histogram") or {}
    if isinstance(hist, dict) and hist.get("edges"):
        edges = hist["edges"][:-1]
        pos, neg = hist.get("positive") or [], hist.get("negative") or []
        tp, tn = sum(pos) or 1.0, sum(neg) or 1.0
        pos, neg = [v / tp for v in pos], [v / tn for v in neg]
        top = max([*pos, *neg, 1e-12]) * 1.05
        plots.append(lines_svg("predicted probability per class (share of the class)",
                               "predicted probability", "share of rows",
                               [("positive class", edges, pos), ("negative class", edges, neg)],
                               ylim=(0.0, top), bars=True))
    return plots


def _confusion_html(ev: dict | None) -> str:
    conf = (ev or {}).get("confusion")
    if not isinstance(conf, dict):
        return ""
    cells = {k: _cell(conf.get(k), "{:,.0f}") for k in ("tn", "fp", "fn", "tp")}
    threshold = _cell((ev or {}).get("threshold"), "{:g}")
    return (f"<h2>confusion matrix at threshold {threshold}</h2><table class=\"confusion\">"
            "<tr><th></th><th>predicted negative</th><th>predicted positive</th></tr>"
            f"<tr><th>actual negative</th><td>{cells['tn']}</td><td>{cells['fp']}</td></tr>"
            f"<tr><th>actual positive</th><td>{cells['fn']}</td><td>{cells['tp']}</td></tr>"
            "</table>")
