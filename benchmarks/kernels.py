"""Kernel benchmark: pipeline's sigmoid and log-sigmoid vs scipy.special, one process.

    python benchmarks/kernels.py [--n 8000000] [--repeat 7]

8M elements of float64 and float32, ``out=`` preallocated for every contender, runs
interleaved, median reported. Two inputs: N(0, 5²) (typical features) and one with a tenth
of the values in the far tails (|x| up to 800), where stable formulas take their slow path.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import scipy.special as sp

from pipeline import log_sigmoid, sigmoid


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=8_000_000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    inputs = {"N(0, 25)": rng.standard_normal(args.n) * 5}
    tails = rng.standard_normal(args.n) * 5
    idx = rng.choice(args.n, args.n // 10, replace=False)
    tails[idx] = rng.uniform(-800, 800, len(idx))
    inputs["10% tails"] = tails
    pairs = [("sigmoid", sigmoid, "expit", sp.expit),
             ("log_sigmoid", log_sigmoid, "log_expit", sp.log_expit)]
    print(f"{'kernel':12s} {'dtype':8s} {'input':10s} {'pipeline ns/el':>15s} "
          f"{'scipy ns/el':>12s} {'speed-up':>9s}")
    for dtype in (np.float64, np.float32):
        for label, x64 in inputs.items():
            x = x64.astype(dtype)
            out = np.empty_like(x)
            for name, ours, sname, theirs in pairs:
                a, b = [], []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    ours(x, out=out)
                    a.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    theirs(x, out=out)
                    b.append(time.perf_counter() - t0)
                ta, tb = statistics.median(a), statistics.median(b)
                print(f"{name:12s} {np.dtype(dtype).name:8s} {label:10s} "
                      f"{ta / args.n * 1e9:>15.2f} {tb / args.n * 1e9:>12.2f} "
                      f"{tb / ta:>8.2f}x   (scipy.special.{sname})")


if __name__ == "__main__":
    main()
