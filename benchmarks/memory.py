"""Memory benchmark: peak RSS of the whole process tree as the data grows 4x.

    python benchmarks/memory.py [--small 4000000] [--large 16000000]

transform and train, each with ``--workers 2 --memory-limit 1GiB`` (a local cluster of two
worker processes: their memory is included), on ``small`` and ``large`` rows x 20 float64.
Targets: growth <= 1.25x, peak <= 3 GiB.
"""

from __future__ import annotations

import argparse

from harness import CACHE, PY, clean, ensure_data, run_measured


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", type=int, default=4_000_000)
    ap.add_argument("--large", type=int, default=16_000_000)
    args = ap.parse_args()
    sets = {"small": ensure_data(args.small, 20, max(1, args.small // 500_000)),
            "large": ensure_data(args.large, 20, max(1, args.large // 500_000))}
    out = CACHE / "memory-out"
    limits = ["--workers", "2", "--memory-limit", "1GiB", "--quiet"]
    print(f"{'command':10s} {'rows':>12s} {'seconds':>8s} {'peak MiB':>9s}")
    peaks: dict = {}
    for cmd in ("transform", "train"):
        for size, data in sets.items():
            clean(out)
            target = out if cmd == "transform" else out.with_suffix(".json")
            clean(target)
            extra = ["--label", "label"] if cmd == "train" else []
            wall, peak = run_measured([PY, "-m", "pipeline", cmd, str(data), str(target),
                                       *extra, *limits])
            peaks[cmd, size] = peak
            rows = args.small if size == "small" else args.large
            print(f"{cmd:10s} {rows:>12,d} {wall:>8.2f} {peak / 2**20:>9.0f}")
            clean(target)
    for cmd in ("transform", "train"):
        growth = peaks[cmd, "large"] / peaks[cmd, "small"]
        print(f"{cmd}: peak growth for {args.large / args.small:.0f}x the rows: {growth:.2f}x "
              f"(target <= 1.25x), peak {peaks[cmd, 'large'] / 2**30:.2f} GiB (target <= 3)")


if __name__ == "__main__":
    main()
