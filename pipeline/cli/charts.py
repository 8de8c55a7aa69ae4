"""The report's charts as inline SVG: axes with round (1-2-5) ticks, scatter and line
charts, the per-chunk timeline, the ROC curve, calibration and score histograms."""

from __future__ import annotations

import html
import math

W, H, PAD = 640, 300, 56
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


def nice_ticks(lo: float, hi: float, *, target: int = 5, integer: bool = False
               ) -> list[float]:
    """Round tick values inside [lo, hi]: multiples of a step of 1, 2 or 5 times a power of
    ten, about ``target`` of them (at least 3 where the range allows); ``integer``: whole
    steps only (chunk and pass numbers)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi < lo:
        lo, hi = hi, lo
    span = hi - lo
    if span <= 0:
        return [lo]
    steps = []
    for e in range(math.floor(math.log10(span)) - 2, math.floor(math.log10(span)) + 2):
        steps.extend(m * 10.0 ** e for m in (1, 2, 5))
    if integer:
        steps = [st for st in steps if st >= 1 and float(st).is_integer()] or [1.0]
    best = None
    for step in sorted(steps):
        first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
        n = last - first + 1
        if n < 2:
            continue
        score = abs(n - target) + (10 if n < 3 and span / step >= 2 else 0)
        if best is None or score < best[0]:
            best = (score, step, first, last)
    if best is None:
        return [lo, hi] if not integer else sorted({round(lo), round(hi)})
    _, step, first, last = best
    digits = max(0, -math.floor(math.log10(step)) + 1)
    return [round(k * step, digits) for k in range(first, last + 1)]


def _tick(v: float, fmt: str = "{:g}") -> str:
    """A tick label that fits left of the axis: 1.2M, 840k, else ``fmt``."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e4, "k")):
        if abs(v) >= scale:
            return f"{v / (1e3 if suffix == 'k' else scale):.3g}{suffix}"
    return fmt.format(v)


def _axes(title, xlabel, ylabel, xlo, xhi, ylo, yhi, fmt="{:g}", *,
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
    for v in nice_ticks(ylo, yhi):  # ticks and grid lines at round values (1-2-5 steps)
        y = sy(v)
        out.append(f'<line x1="{PAD}" y1="{y:.1f}" x2="{W - 10}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{PAD - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10">'
                   f'{_tick(v, fmt)}</text>')
    for v in nice_ticks(xlo, xhi, integer=int_x):  # chunk and pass numbers: whole ticks
        out.append(f'<text x="{sx(v):.1f}" y="{H - PAD + 14}" text-anchor="middle" '
                   f'font-size="10">{int(v) if int_x else _tick(v, fmt)}</text>')
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
    fmt = "{:.10g}"  # the ticks are round: as many digits as their step needs
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
    body = _axes(title, xlabel, ylabel, *xlim, *ylim)
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


def as_number(value) -> float | None:
    """A record's numeric field, or None when absent or not a finite number (JSON true is
    not a number here)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return value
    return None


def timeline_svg(records) -> str:
    recs = [r for r in records
            if as_number(r.get("start")) is not None and as_number(r.get("seconds")) is not None]
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


def evaluation_svgs(ev: dict, classes: tuple[str, str] = ("positive class",
                                                          "negative class")) -> list[str]:
    """The ROC curve, the calibration table and the score histograms of an evaluation."""
    plots = []
    roc = ev.get("roc") or {}
    if isinstance(roc, dict) and roc.get("fpr"):
        auc = as_number(ev.get("auc"))
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
                               [(classes[0], edges, pos), (classes[1], edges, neg)],
                               ylim=(0.0, top), bars=True))
    return plots
