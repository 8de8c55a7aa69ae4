"""CSV benchmark: CSV -> sigmoid -> Parquet, pipeline vs Polars and DuckDB, whole processes.

    python benchmarks/csv.py [--rows 4000000] [--files 4] [--repeat 3] [--plain-only]

Data: ``rows`` x 20 float64 features (plus ``id`` and ``label``) in ``files`` CSV files,
generated once with ``pipeline generate --format csv`` and cached, and the same files
gzip-compressed (``.csv.gz``). Every contender parses the CSV, computes the sigmoid of the 20
feature columns, keeps the other columns and writes snappy Parquet. Plain and gzip are two
tables; within each the contenders run interleaved and the ratios are pipeline / peer.

Polars: ``scan_csv -> sink_parquet`` on plain CSV; on gzip it reads each file with
``read_csv`` (``scan_csv`` does not stream compressed files in every version), which is
what a user of it would write.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import sys
from pathlib import Path

from harness import CACHE, PY, ensure_data, interleaved, print_table

FEATURES = 20

POLARS_PLAIN = """
import sys, polars as pl
cols = [f"f{j}" for j in range(N_FEATURES)]
lf = pl.scan_csv(sys.argv[1] + "/*.csv")
lf = lf.with_columns([(1 / (1 + (-pl.col(c)).exp())).alias(c) for c in cols])
lf.sink_parquet(sys.argv[2], compression="snappy")
""".replace("N_FEATURES", str(FEATURES))

POLARS_GZIP = """
import glob, sys, polars as pl
cols = [f"f{j}" for j in range(N_FEATURES)]
df = pl.concat([pl.read_csv(p) for p in sorted(glob.glob(sys.argv[1] + "/*.csv.gz"))])
df = df.with_columns([(1 / (1 + (-pl.col(c)).exp())).alias(c) for c in cols])
df.write_parquet(sys.argv[2], compression="snappy")
""".replace("N_FEATURES", str(FEATURES))

DUCKDB = """
import sys, duckdb
cols = ", ".join(f"1 / (1 + exp(-f{j})) AS f{j}" for j in range(N_FEATURES))
duckdb.sql(f"COPY (SELECT id, {cols}, label FROM read_csv('{sys.argv[1]}/{sys.argv[3]}')) "
           f"TO '{sys.argv[2]}' (FORMAT parquet, COMPRESSION snappy, PER_THREAD_OUTPUT true)")
""".replace("N_FEATURES", str(FEATURES))


def ensure_gzip(plain: Path) -> Path:
    """The plain CSV files gzip-compressed (level 6, as ``gzip`` does), once, cached."""
    path = plain.parent / f"{plain.name}-gz"
    done = path / "_DONE"
    if not done.exists():
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        for src in sorted(plain.glob("*.csv")):
            with open(src, "rb") as fin, gzip.open(path / f"{src.name}.gz", "wb",
                                                   compresslevel=6) as fout:
                shutil.copyfileobj(fin, fout, 8 << 20)
        done.touch()
    return path


def contenders(data: Path, out: Path, *, gz: bool) -> dict:
    tag = "gzip" if gz else "plain"
    pattern = "*.csv.gz" if gz else "*.csv"
    polars = POLARS_GZIP if gz else POLARS_PLAIN
    polars_name = ("polars read_csv ... write_parquet" if gz
                   else "polars scan_csv ... sink_parquet")
    return {
        f"pipeline transform ({tag})": ([PY, "-m", "pipeline", "transform", str(data),
                                         str(out / f"p-{tag}"), "--quiet"],
                                        [out / f"p-{tag}"]),
        f"{polars_name} ({tag})": ([PY, "-c", polars, str(data), str(out / f"pl-{tag}.parquet")],
                                   [out / f"pl-{tag}.parquet"]),
        f"duckdb read_csv ... COPY ({tag})": ([PY, "-c", DUCKDB, str(data),
                                               str(out / f"duck-{tag}"), pattern],
                                              [out / f"duck-{tag}"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=4_000_000)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--plain-only", action="store_true", help="skip the gzip table")
    args = ap.parse_args()
    plain = ensure_data(args.rows, FEATURES, args.files, fmt="csv")
    out = CACHE / "csv-out"
    out.mkdir(parents=True, exist_ok=True)
    runs = [(plain, False)] + ([] if args.plain_only else [(ensure_gzip(plain), True)])
    for data, gz in runs:
        results = interleaved(contenders(data, out, gz=gz), args.repeat)
        tag = "gzip" if gz else "plain"
        print_table(f"CSV ({tag}) -> Parquet transform: {args.rows:,} rows x {FEATURES} "
                    f"float64 in {args.files} files (whole processes, median of "
                    f"{args.repeat})", results, f"pipeline transform ({tag})")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
