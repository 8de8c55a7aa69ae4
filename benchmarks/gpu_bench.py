"""GPU benchmark (run by gpu.sh on a machine with CUDA): device vs host, side by side.

    python benchmarks/gpu_bench.py [--elements 100000000] [--rows 16000000]

1. The kernel alone: pipeline.sigmoid on 100M float32 elements resident on the device
   (CuPy) vs the same on the host (NumPy, out= preallocated); median of 7, synchronised.
2. transform and score of rows x 20 float64, whole processes, --device cpu vs --device gpu.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from harness import CACHE, PY, ensure_data, interleaved, print_table

from pipeline import sigmoid


def kernel_table(n: int, repeat: int = 7) -> None:
    import cupy

    x = np.random.default_rng(0).standard_normal(n).astype(np.float32) * 5
    out = np.empty_like(x)
    xd = cupy.asarray(x)
    sigmoid(xd)
    cupy.cuda.Device().synchronize()
    host, dev = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        sigmoid(x, out=out)
        host.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        sigmoid(xd)
        cupy.cuda.Device().synchronize()
        dev.append(time.perf_counter() - t0)
    h, d = statistics.median(host), statistics.median(dev)
    diff = np.abs(cupy.asnumpy(sigmoid(xd)).view(np.int32).astype(np.int64)
                  - out.view(np.int32).astype(np.int64)).max()
    print(f"\nkernel: sigmoid on {n:,} float32 elements")
    print(f"{'device':8s} {'seconds':>9s} {'elements/s':>14s}")
    print(f"{'cpu':8s} {h:>9.4f} {n / h:>14.3e}")
    print(f"{'gpu':8s} {d:>9.4f} {n / d:>14.3e}")
    print(f"gpu / cpu throughput: {h / d:.1f}x (target >= 20x); max ULP difference {diff}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--elements", type=int, default=100_000_000)
    ap.add_argument("--rows", type=int, default=16_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    kernel_table(args.elements)
    data = ensure_data(args.rows, 20, 32)
    out = CACHE / "gpu-out"
    model = out / "model.json"
    out.mkdir(parents=True, exist_ok=True)
    import subprocess

    subprocess.run([PY, "-m", "pipeline", "train", str(data), str(model), "--label", "label",
                    "--overwrite", "--quiet"], check=True)
    for cmd in ("transform", "score"):
        contenders = {}
        for dev in ("cpu", "gpu"):
            target = out / f"{cmd}-{dev}"
            args_ = [str(data), str(model), str(target)] if cmd == "score" else \
                [str(data), str(target)]
            contenders[f"pipeline {cmd} --device {dev}"] = (
                [PY, "-m", "pipeline", cmd, *args_, "--device", dev, "--quiet"], [target])
        res = interleaved(contenders, args.repeat)
        print_table(f"{cmd}: {args.rows:,} rows x 20 float64", res,
                    f"pipeline {cmd} --device cpu")


if __name__ == "__main__":
    main()
