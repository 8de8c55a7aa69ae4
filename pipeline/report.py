"""``pipeline report OUT``: one self-contained HTML page of a run's per-chunk cost.

Plots are plain SVG written here (no plotting library, no network): seconds, rows/s and peak
RSS per chunk, a timeline of chunks per worker, and, where the output was scored with a model,
the model's loss and gradient norm per training pass.
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path

from .errors import PipelineError
from .writer import CHUNKS, SUCCESS

W, H, PAD = 640, 220, 48


def _scale(lo, hi, a, b):
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def _axes(title, xlabel, ylabel, xlo, xhi, ylo, yhi, fmt="{:.3g}") -> list[str]:
    out = [f'<text x="{W / 2}" y="16" text-anchor="middle" font-weight="bold">'
           f'{html.escape(title)}</text>',
           f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - 10}" y2="{H - PAD}" stroke="#333"/>',
           f'<line x1="{PAD}" y1="24" x2="{PAD}" y2="{H - PAD}" stroke="#333"/>',
           f'<text x="{W / 2}" y="{H - 10}" text-anchor="middle">{html.escape(xlabel)}</text>',
           f'<text x="12" y="{H / 2}" transform="rotate(-90 12 {H / 2})" '
           f'text-anchor="middle">{html.escape(ylabel)}</text>']
    for v, y in ((ylo, H - PAD), (yhi, 28)):
        out.append(f'<text x="{PAD - 4}" y="{y + 4}" text-anchor="end" font-size="10">'
                   f'{fmt.format(v)}</text>')
    for v, x in ((xlo, PAD), (xhi, W - 10)):
        out.append(f'<text x="{x}" y="{H - PAD + 14}" text-anchor="middle" font-size="10">'
                   f'{fmt.format(v)}</text>')
    return out


def scatter_svg(title, xlabel, ylabel, xs, ys, *, log_y=False, line=False) -> str:
    pts = [(x, y) for x, y in zip(xs, ys, strict=True)
           if y is not None and math.isfinite(y) and (y > 0 or not log_y)]
    if not pts:
        return ""
    tf = (lambda v: math.log10(v)) if log_y else (lambda v: v)
    xlo, xhi = min(p[0] for p in pts), max(p[0] for p in pts)
    ylo, yhi = min(tf(p[1]) for p in pts), max(tf(p[1]) for p in pts)
    if not log_y:
        ylo = min(ylo, 0.0)
    sx, sy = _scale(xlo, xhi, PAD + 4, W - 14), _scale(ylo, yhi, H - PAD - 2, 30)
    body = _axes(title, xlabel, ylabel + (" (log10)" if log_y else ""), xlo, xhi, ylo, yhi)
    if line and len(pts) > 1:
        path = " ".join(f"{sx(x):.1f},{sy(tf(y)):.1f}" for x, y in pts)
        body.append(f'<polyline points="{path}" fill="none" stroke="#4477aa"/>')
    for x, y in pts:
        body.append(f'<circle class="mark" cx="{sx(x):.1f}" cy="{sy(tf(y)):.1f}" r="3" '
                    f'fill="#4477aa"><title>{x}: {y:.4g}</title></circle>')
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}">' + \
        "".join(body) + "</svg>"


def timeline_svg(records) -> str:
    recs = [r for r in records if r.get("start")]
    if not recs:
        return ""
    workers = sorted({r.get("worker", "?") for r in recs})
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
            if r.get("worker", "?") == w:
                x0, x1 = sx(r["start"] - t0), sx(r["start"] - t0 + r["seconds"])
                body.append(f'<rect class="mark" x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 1):.1f}"'
                            f' height="16" fill="#66ccee" stroke="#225"><title>chunk '
                            f'{r["chunk"]}: {r["seconds"]:.3f}s</title></rect>')
    body.append(f'<text x="{W / 2}" y="{height - 10}" text-anchor="middle">seconds since '
                f'start (0 to {t1 - t0:.2f})</text>')
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}">' + \
        "".join(body) + "</svg>"


def load_records(out: Path) -> list[dict]:
    records = []
    for line in (out / CHUNKS).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return sorted(records, key=lambda r: r["chunk"])


def write_report(out: str | os.PathLike) -> str:
    """Write ``OUT/_report.html`` and return a short text summary."""
    out = Path(out)
    if not (out / CHUNKS).exists():
        raise PipelineError(f"not an output folder of this tool (no {CHUNKS})", path=str(out))
    records = load_records(out)
    manifest = json.loads((out / SUCCESS).read_text()) if (out / SUCCESS).exists() else None
    idx = [r["chunk"] for r in records]
    secs = [r["seconds"] for r in records]
    rate = [r["rows"] / r["seconds"] if r["seconds"] > 0 else None for r in records]
    peak = [r["peak_rss_bytes"] / 2**20 for r in records]
    plots = [
        scatter_svg("seconds per chunk", "chunk", "seconds", idx, secs),
        scatter_svg("rows/s per chunk", "chunk", "rows/s", idx, rate),
        scatter_svg("peak RSS per chunk", "chunk", "MiB", idx, peak),
        timeline_svg(records),
    ]
    history = _model_history(manifest)
    if history:
        passes = [h["pass"] for h in history]
        plots.append(scatter_svg("training loss per pass", "pass", "loss",
                                 passes, [h["loss"] for h in history], line=True))
        plots.append(scatter_svg("gradient norm per pass", "pass", "max |gradient|",
                                 passes, [h["grad_norm"] for h in history], log_y=True,
                                 line=True))
    rows = sum(r["rows"] for r in records)
    lines = [f"output: {out}", f"chunks: {len(records)}", f"rows: {rows:,}"]
    if manifest:
        lines += [f"complete: yes ({manifest.get('command')})",
                  f"seconds: {manifest.get('seconds', 0):.3f}",
                  f"peak RSS: {manifest.get('peak_rss_bytes', 0) / 2**20:.0f} MiB"]
        if manifest.get("seconds"):
            lines.append(f"rows/s: {manifest['rows'] / manifest['seconds']:,.0f}")
    else:
        lines.append("complete: no (no _SUCCESS; resumable)")
    if secs:
        lines.append(f"chunk seconds: min {min(secs):.3f}  median "
                     f"{sorted(secs)[len(secs) // 2]:.3f}  max {max(secs):.3f}")
    summary = "\n".join(lines)
    table = "".join(
        f"<tr><td>{r['chunk']}</td><td>{html.escape(str(r.get('source')))}</td>"
        f"<td>{r['rows']}</td><td>{r['seconds']:.3f}</td><td>{r.get('cpu_seconds', 0):.3f}</td>"
        f"<td>{r['peak_rss_bytes'] / 2**20:.0f}</td><td>{html.escape(str(r.get('worker')))}"
        f"</td><td>{r.get('device')}</td></tr>" for r in records)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>pipeline report: {html.escape(out.name)}</title>
<style>body{{font-family:sans-serif;margin:2em}} svg{{display:block;margin:1em 0;
border:1px solid #ddd}} td,th{{padding:2px 8px;font-size:12px}} pre{{background:#f4f4f4;
padding:1em}}</style></head><body>
<h1>pipeline report</h1><pre>{html.escape(summary)}</pre>
{''.join(p for p in plots if p)}
<h2>chunks</h2><table><tr><th>chunk</th><th>source</th><th>rows</th><th>seconds</th>
<th>cpu s</th><th>peak MiB</th><th>worker</th><th>device</th></tr>{table}</table>
</body></html>
"""
    tmp = out / "_report.html.tmp"
    tmp.write_text(page)
    os.replace(tmp, out / "_report.html")
    return summary


def _model_history(manifest) -> list[dict]:
    if not manifest:
        return []
    params = manifest.get("params") or {}
    path = params.get("model_path")
    if path and os.path.exists(path):
        try:
            return json.loads(Path(path).read_text()).get("history") or []
        except (OSError, json.JSONDecodeError):
            return []
    return []
