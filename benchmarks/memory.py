"""Memory benchmark: peak RSS of the whole process tree as the data grows 4x.

    python benchmarks/memory.py [--small 4000000] [--large 16000000]

transform and train, each with ``--workers 2 --memory-limit 1GiB`` (a local cluster of two
worker processes: their memory is included), on ``small`` and ``large`` rows x 20 float64;
and train with categorical features (the same data with two text columns of 50 and 7 values
one-hot encoded: p = 20 + 57). Targets: growth <= 1.25x, peak <= 3 GiB.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness import CACHE, PY, clean, ensure_data, run_measured


def with_categories(data: Path) -> Path:
    """``data`` with text columns ``g`` (50 values) and ``h`` (7), file by file (cached)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = data.with_name(data.name + "-cat")
    if (out / "_done").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    for part in sorted(data.glob("part-*.parquet")):
        t = pq.read_table(part)
        ids = t["id"].to_numpy()
        for name, k in (("g", 50), ("h", 7)):
            codes = pa.array(((ids * 7919) % k).astype(np.int32))
            words = pa.array([f"{name}{i:02d}" for i in range(k)])
            t = t.append_column(name, pa.DictionaryArray.from_arrays(codes, words)
                                .cast(pa.string()))
        pq.write_table(t, out / part.name)
    (out / "_done").write_text("")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", type=int, default=4_000_000)
    ap.add_argument("--large", type=int, default=16_000_000)
    ap.add_argument("--commands", nargs="+", default=["transform", "train", "train-categorical"])
    args = ap.parse_args()
    sets = {"small": ensure_data(args.small, 20, max(1, args.small // 500_000)),
            "large": ensure_data(args.large, 20, max(1, args.large // 500_000))}
    out = CACHE / "memory-out"
    limits = ["--workers", "2", "--memory-limit", "1GiB", "--quiet"]
    print(f"{'command':10s} {'rows':>12s} {'seconds':>8s} {'peak MiB':>9s}")
    peaks: dict = {}
    cat_sets = {size: with_categories(data) for size, data in sets.items()} \
        if "train-categorical" in args.commands else {}
    for cmd in args.commands:
        for size, data in (cat_sets if cmd == "train-categorical" else sets).items():
            clean(out)
            target = out if cmd == "transform" else out.with_suffix(".json")
            clean(target)
            extra = ["--label", "label"] if cmd.startswith("train") else []
            if cmd == "train-categorical":
                extra += ["--features", *(f"f{j}" for j in range(20)), "--categorical",
                          "g", "h"]
            wall, peak = run_measured([PY, "-m", "pipeline", cmd.split("-")[0], str(data),
                                       str(target), *extra, *limits])
            peaks[cmd, size] = peak
            rows = args.small if size == "small" else args.large
            print(f"{cmd:10s} {rows:>12,d} {wall:>8.2f} {peak / 2**20:>9.0f}")
            clean(target)
    for cmd in args.commands:
        growth = peaks[cmd, "large"] / peaks[cmd, "small"]
        print(f"{cmd}: peak growth for {args.large / args.small:.0f}x the rows: {growth:.2f}x "
              f"(target <= 1.25x), peak {peaks[cmd, 'large'] / 2**30:.2f} GiB (target <= 3)")


if __name__ == "__main__":
    main()
