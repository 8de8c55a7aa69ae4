"""Newton's method for the L2-penalised logistic objective, given a statistics callback.

The solver knows nothing of data, chunks or estimators: it asks a callback for the summed
statistics at a point and minimises scikit-learn's objective, scaled by the data's total
weight ``S`` (the row count without weights), which leaves the optimum unchanged::

    f(w, b) = (sum_i s_i * loss_i) / S + ||w||² / (2 C S)

Each step solves the Newton system after a diagonal (Jacobi) rescaling, which conditions it
for raw, unscaled features without changing the optimum, and backtracks until the objective
decreases enough.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ..errors import PipelineError


class PassStats(NamedTuple):
    """Sums over the data at one point (the intercept last in ``grad`` and ``hess``)."""

    weight: float       # S: the rows' total weight (the row count without weights)
    loss: float         # sum_i s_i * loss_i
    grad: np.ndarray    # (p + 1,)
    hess: np.ndarray    # (p + 1, p + 1)
    wrong: int          # rows on the wrong side of the boundary (0: separable)
    rows: int           # rows counted


@dataclass
class NewtonResult:
    coef: np.ndarray
    intercept: float
    loss: float                  # the scaled objective f at the solution
    grad_norm: float
    rows: int
    passes: int
    iterations: int
    converged: bool
    separable: bool              # stopped because the classes separate (no penalty)
    history: list = field(default_factory=list)


def newton_solve(pass_stats: Callable[[np.ndarray, float], PassStats], p: int, *,
                 C: float | None, tol: float, max_iter: int,
                 first: PassStats | None = None, log: Callable | None = None,
                 t0: float | None = None, start: tuple | None = None,
                 penalty_weight: float | None = None) -> NewtonResult:
    """Minimise the objective above from w = 0, b = 0.

    ``pass_stats(coef, intercept)`` returns the :class:`PassStats` of one pass over the
    data; ``first``, when given, is that of the starting point (computed while loading).
    ``start = (coef, intercept)`` is a better point to go on from after w = 0 (a warm start,
    e.g. the optimum on a sample): it is kept if its objective is lower. ``penalty_weight``
    scales the penalty instead of the passes' total weight (a sample's objective then
    estimates the full one's). ``C=None`` is no penalty. Stops when the Newton decrement's
    half-square (the decrease the next step predicts) is below ``tol * max(1, f)``, after
    ``max_iter`` iterations, or, without a penalty, when the classes separate. Each pass
    appends ``{"pass", "loss", "grad_norm", "seconds", "rss_bytes"}`` to the history and hands
    it to ``log``.
    """
    lam_scale = 0.0 if C is None else 1.0 / float(C)
    coef = np.zeros(p)
    b = 0.0
    history: list[dict] = []
    t0 = time.perf_counter() if t0 is None else t0

    def evaluate(coef, b, stats=None):
        stats = pass_stats(coef, b) if stats is None else stats
        S = float(stats.weight)
        if stats.rows == 0:
            raise PipelineError("no rows to train on")
        if not S > 0:
            raise PipelineError("the sample weights sum to zero: no rows with a positive "
                                "weight to train on")
        reg = lam_scale / (S if penalty_weight is None else float(penalty_weight))
        f = stats.loss / S + 0.5 * reg * float(coef @ coef)
        g = stats.grad / S
        g[:p] += reg * coef
        H = stats.hess / S
        H[np.arange(p), np.arange(p)] += reg
        entry = {"pass": len(history) + 1, "loss": f, "grad_norm": float(np.max(np.abs(g))),
                 "seconds": round(time.perf_counter() - t0, 6), "rss_bytes": _rss()}
        history.append(entry)
        if log is not None:
            log(entry)
        return stats.rows, f, g, H, stats.wrong

    n, f, g, H, wrong = evaluate(coef, b, first)
    if start is not None:
        c2, b2 = np.asarray(start[0], dtype=np.float64), float(start[1])
        n2, f2, g2, H2, wrong2 = evaluate(c2, b2)
        if f2 < f:
            coef, b, n, f, g, H, wrong = c2, b2, n2, f2, g2, H2, wrong2
    converged = False
    separable = False
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 - reported after
        step = newton_step(H, g)
        dec = float(-g @ step)
        if dec / 2 <= tol * max(1.0, abs(f)) or not np.isfinite(dec):
            converged = bool(np.isfinite(dec))
            if converged:  # the last step (predicted ≤ tol) is kept only once evaluated
                c2, b2 = coef + step[:p], b + step[p]
                n2, f2, g2, H2, wrong2 = evaluate(c2, b2)
                if np.isfinite(f2) and f2 <= f + 1e-12 * max(1.0, abs(f)):  # rounding
                    coef, b, n, f, g, H, wrong = c2, b2, n2, f2, g2, H2, wrong2
            break
        if C is None and wrong == 0:
            separable = True
            break
        t = 1.0
        while True:
            c2, b2 = coef + t * step[:p], b + t * step[p]
            n, f2, g2, H2, wrong2 = evaluate(c2, b2)
            if f2 <= f - 1e-4 * t * dec or t < 1e-8:
                break
            t *= 0.5
        coef, b, f, g, H, wrong = c2, b2, f2, g2, H2, wrong2
    if not (np.all(np.isfinite(coef)) and np.isfinite(b)):
        raise PipelineError("the solver produced non-finite coefficients")
    return NewtonResult(coef=coef, intercept=float(b), loss=float(f),
                        grad_norm=float(np.max(np.abs(g))), rows=int(n), passes=len(history),
                        iterations=iterations, converged=converged, separable=separable,
                        history=history)


def newton_step(H: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Solve H d = -g after Jacobi rescaling (conditions raw, unscaled features).

    A coordinate whose Hessian diagonal is 0 (a feature that is 0 on every row) has no
    curvature: it takes no step (its coefficient stays where it is, 0 from the start, as in
    scikit-learn), instead of a step of its gradient's rounding divided by nothing.
    """
    import scipy.linalg  # here, not at import: the CLI's start-up is paid on every run

    diag = np.diag(H)
    live = np.flatnonzero(diag > 0)
    d = np.zeros(len(g))
    if not len(live):
        return d
    dscale = np.sqrt(diag[live])
    Hs = H[np.ix_(live, live)] / dscale[:, None] / dscale[None, :]
    gs = g[live] / dscale
    try:
        cf = scipy.linalg.cho_factor(Hs, check_finite=False)
        ds = scipy.linalg.cho_solve(cf, -gs, check_finite=False)
    except np.linalg.LinAlgError:
        ds = np.linalg.lstsq(Hs + 1e-12 * np.eye(len(live)), -gs, rcond=None)[0]
    d[live] = ds / dscale
    return d


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss
