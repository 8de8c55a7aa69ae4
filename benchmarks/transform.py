"""Transform benchmark: pipeline vs Polars streaming, DuckDB and naive dask, whole processes.

    python benchmarks/transform.py [--rows 16000000] [--files 32] [--repeat 3]

Data: ``rows`` x 20 float64 features (plus ``id`` and ``label``) in ``files`` Parquet files,
generated once and cached. Every contender computes the sigmoid of the 20 feature columns,
keeps the other columns and writes snappy Parquet. Then the memory check: pipeline's peak RSS
on the data and on a data set 4x smaller.
"""

from __future__ import annotations

import argparse
import sys

from harness import CACHE, PY, clean, ensure_data, interleaved, print_table, run_measured

FEATURES = 20

POLARS = """
import sys, polars as pl
cols = [f"f{j}" for j in range(N_FEATURES)]
lf = pl.scan_parquet(sys.argv[1] + "/*.parquet")
lf = lf.with_columns([(1 / (1 + (-pl.col(c)).exp())).alias(c) for c in cols])
lf.sink_parquet(sys.argv[2], compression="snappy")
""".replace("N_FEATURES", str(FEATURES))

DUCKDB = """
import sys, duckdb
cols = ", ".join(f"1 / (1 + exp(-f{j})) AS f{j}" for j in range(N_FEATURES))
duckdb.sql(f"COPY (SELECT id, {cols}, label FROM read_parquet('{sys.argv[1]}/*.parquet')) "
           f"TO '{sys.argv[2]}' (FORMAT parquet, COMPRESSION snappy, PER_THREAD_OUTPUT true)")
""".replace("N_FEATURES", str(FEATURES))

DASK = """
import sys, dask.dataframe as dd
from scipy.special import expit
cols = [f"f{j}" for j in range(N_FEATURES)]
def f(df):
    df = df.copy()
    df[cols] = expit(df[cols].to_numpy())
    return df
df = dd.read_parquet(sys.argv[1] + "/*.parquet")
df.map_partitions(f, meta=df._meta).to_parquet(sys.argv[2], compression="snappy")
""".replace("N_FEATURES", str(FEATURES))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=16_000_000)
    ap.add_argument("--files", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-peers", action="store_true")
    args = ap.parse_args()
    data = ensure_data(args.rows, FEATURES, args.files)
    out = CACHE / "transform-out"
    contenders = {
        "pipeline transform": ([PY, "-m", "pipeline", "transform", str(data), str(out / "p"),
                                "--quiet"], [out / "p"]),
    }
    if not args.skip_peers:
        contenders.update({
            "polars scan_parquet ... sink_parquet": ([PY, "-c", POLARS, str(data),
                                                      str(out / "pl.parquet")],
                                                     [out / "pl.parquet"]),
            "duckdb COPY ... TO parquet": ([PY, "-c", DUCKDB, str(data), str(out / "duck")],
                                           [out / "duck"]),
            "dask map_partitions(expit).to_parquet": ([PY, "-c", DASK, str(data),
                                                       str(out / "dask")], [out / "dask"]),
        })
    out.mkdir(parents=True, exist_ok=True)
    results = interleaved(contenders, args.repeat)
    print_table(f"transform: {args.rows:,} rows x {FEATURES} float64 in {args.files} Parquet "
                f"files (whole processes, median of {args.repeat})", results,
                "pipeline transform")
    # memory as the input grows 4x
    small = ensure_data(args.rows // 4, FEATURES, max(1, args.files // 4))
    peaks = {}
    for name, d in (("1/4 size", small), ("full size", data)):
        clean(out / "m")
        wall, peak = run_measured([PY, "-m", "pipeline", "transform", str(d), str(out / "m"),
                                   "--quiet"])
        peaks[name] = peak
        print(f"pipeline transform {name} ({d.name}): {wall:.2f} s, peak RSS "
              f"{peak / 2**20:.0f} MiB")
    clean(out / "m")
    print(f"peak RSS growth for 4x the input: {peaks['full size'] / peaks['1/4 size']:.2f}x "
          "(target <= 1.25x)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
