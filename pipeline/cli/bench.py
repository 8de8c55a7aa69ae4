"""``pipeline bench``: activation functions side by side (time, memory, accuracy).

Sigmoids: ours (stable), the naive ``1/(1+exp(-x))``, the naive with ``clip(x, -500, 500)``,
and ``scipy.special.expit``; then tanh, ReLU and leaky ReLU for scale. Time is the median of
``repeat`` calls allocating their result; memory is what one call adds to RSS; accuracy is the
worst distance in ULP to the exactly rounded sigmoid (long-double reference) on a grid that
includes the tails, float64.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import psutil

from ..ops import kernels


def _naive(x):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def _clipped(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -500, 500)))


def _expit(x):
    from scipy.special import expit

    return expit(x)


ACTIVATIONS = {
    "sigmoid (pipeline, stable)": (kernels.sigmoid, True),
    "sigmoid naive 1/(1+exp(-x))": (_naive, True),
    "sigmoid naive, clipped ±500": (_clipped, True),
    "scipy.special.expit": (_expit, True),
    "tanh": (np.tanh, False),
    "relu": (lambda x: np.maximum(x, 0.0), False),
    "leaky relu (0.01)": (lambda x: np.maximum(x, 0.01 * x), False),
}


def _ordered(v: np.ndarray) -> np.ndarray:
    i = v.view(np.int64)
    return np.where(i < 0, np.iinfo(np.int64).min - i, i)


def worst_ulp(fn) -> float:
    grid = np.concatenate([np.linspace(-745, 745, 200_001), np.linspace(-40, 40, 200_001)])
    x = grid.astype(np.longdouble)
    with np.errstate(all="ignore"):
        e = np.exp(-np.abs(x))
        ref = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(np.float64)
        got = np.asarray(fn(grid), dtype=np.float64)
    if not np.all(np.isfinite(got)):
        return float("inf")
    return float(np.max(np.abs(_ordered(got) - _ordered(ref))))


def measure(fn, x: np.ndarray, repeat: int) -> tuple[float, int]:
    proc = psutil.Process()
    times, added = [], 0
    for _ in range(repeat):
        before = proc.memory_info().rss
        t0 = time.perf_counter()
        res = fn(x)
        times.append(time.perf_counter() - t0)
        added = max(added, proc.memory_info().rss - before)
        del res
    return float(np.median(times)), int(added)


def run_bench(*, sizes=(1_000_000, 10_000_000), repeat: int = 5, as_json: bool = False,
              out=None) -> list[dict]:
    out = out or sys.stdout
    rng = np.random.default_rng(0)
    rows = []
    ulps = {name: worst_ulp(fn) for name, (fn, is_sig) in ACTIVATIONS.items() if is_sig}
    for n in sizes:
        x = rng.standard_normal(n) * 5
        for name, (fn, _is_sig) in ACTIVATIONS.items():
            sec, added = measure(fn, x, repeat)
            rows.append({"activation": name, "elements": n, "ms_per_call": sec * 1e3,
                         "ns_per_element": sec * 1e9 / n, "memory_added_bytes": added,
                         "worst_ulp": ulps.get(name)})
    if as_json:
        print(json.dumps(rows, indent=1), file=out)
        return rows
    head = f"{'activation':30s} {'elements':>11s} {'ms/call':>9s} {'ns/elem':>8s} " \
           f"{'MiB added':>9s} {'worst ULP':>10s}"
    print(head, file=out)
    print("-" * len(head), file=out)
    for r in rows:
        u = r["worst_ulp"]
        ulp = "" if u is None else ("inf" if not np.isfinite(u) else f"{u:.3g}")
        print(f"{r['activation']:30s} {r['elements']:>11,d} {r['ms_per_call']:>9.2f} "
              f"{r['ns_per_element']:>8.2f} {r['memory_added_bytes'] / 2**20:>9.1f} {ulp:>10s}",
              file=out)
    return rows
