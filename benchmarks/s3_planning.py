"""Planning many objects: requests, time and the client's memory, measured on a few counts
and extrapolated to 100,000.

    python benchmarks/s3_planning.py [--counts 500,1000,2000] [--latency 20]
                                     [--io-concurrency 32]

Small Parquet files (200 rows x 6 columns, about 9 KB each) go into moto's S3 server; a
process plans them (``pipeline.io.sources.plan``: the listing and every footer) through the
proxy of tests/s3_proxy.py, which waits LATENCY ms before each answer and counts the
requests. Printed for each count: the requests by kind, the peak in flight, the wall time of
the plan and the growth of the process's RSS from before the plan to after it (footers and
kept small files), then the per-object slopes and what they give for 100,000 objects.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from harness import PY

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from s3_proxy import BENCH_ENV as ENV  # noqa: E402
from s3_proxy import bucket_behind_proxy  # noqa: E402

BUCKET = "planning"

PLAN = """
import json, sys, time, psutil
from pipeline.io.sources import plan
import pipeline.io.reading, pipeline.io.csv_plan, pipeline.io.parquet_plan  # imported first
proc = psutil.Process()
rss0 = proc.memory_info().rss
t0 = time.perf_counter()
source = plan(sys.argv[1], io_concurrency=int(sys.argv[2]))
wall = time.perf_counter() - t0
print(json.dumps({"wall": wall, "rss": proc.memory_info().rss - rss0,
                  "files": len(source.paths), "chunks": len(source.chunks)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--counts", default="500,1000,2000")
    ap.add_argument("--latency", type=float, default=20.0, help="ms before each answer")
    ap.add_argument("--io-concurrency", type=int, default=32)
    args = ap.parse_args()
    os.environ.update(ENV)
    counts = [int(c) for c in args.counts.split(",")]
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    with bucket_behind_proxy(ENV, BUCKET, delay=args.latency / 1000) as (_, fs, proxy):
        rng = np.random.default_rng(0)
        sink = pa.BufferOutputStream()
        pq.write_table(pa.table({**{f"f{j}": rng.normal(size=200) for j in range(5)},
                                 "id": np.arange(200)}), sink)
        body = sink.getvalue().to_pybytes()
        rows = []
        for n in counts:
            prefix = f"{BUCKET}/n{n}"
            fs.pipe({f"{prefix}/part-{i:06d}.parquet": body for i in range(n)})
            proxy.reset()
            res = subprocess.run([PY, "-c", PLAN, f"s3://{prefix}", str(args.io_concurrency)],
                                 env={**os.environ, "AWS_ENDPOINT_URL": proxy.endpoint},
                                 capture_output=True, text=True, check=True)
            got = json.loads(res.stdout)
            rows.append((n, got["wall"], got["rss"], dict(proxy.counts), proxy.peak))
            print(f"  {n} objects: {got['wall']:.2f} s", file=sys.stderr)
        print(f"\nplanning N small Parquet objects ({len(body):,} bytes each) behind "
              f"{args.latency:g} ms per request, io_concurrency {args.io_concurrency}")
        print(f"{'objects':>8s} {'plan s':>7s} {'RSS growth MiB':>15s} {'in flight':>9s}  requests")
        for n, wall, rss, counts_, peak in rows:
            print(f"{n:>8d} {wall:>7.2f} {rss / 2**20:>15.1f} {peak:>9d}  "
                  + ", ".join(f"{k} {v}" for k, v in sorted(counts_.items())))
        if len(rows) >= 2:
            (n0, w0, r0, *_), (n1, w1, r1, *_) = rows[0], rows[-1]
            dw, dr = (w1 - w0) / (n1 - n0), (r1 - r0) / (n1 - n0)
            print(f"\nper object: {dw * 1000:.2f} ms of wall time, {dr / 1024:.2f} KiB of RSS "
                  f"(the slopes from {n0:,} to {n1:,} objects)")
            print(f"100,000 objects, extrapolated: {w1 + dw * (100_000 - n1):.0f} s, "
                  f"{(r1 + dr * (100_000 - n1)) / 2**20:.0f} MiB of RSS growth")


if __name__ == "__main__":
    main()
