"""The object-store commit's cost: an ``--overwrite`` of an output of ``parts`` parts on moto's
S3 server (its own process on 127.0.0.1), its commit timed and its requests counted.

    python benchmarks/commit_s3.py [--parts 100] [--rows 2000] [--repeat 3]

The commit is everything after the last part's record (README, "The commit on object
stores", steps 4 to 6): the lease checked, the staged parts copied to their final names, the
conditional ``_SUCCESS``, the records, ``_job.json`` published, the old output's parts and the
attempt's staged objects deleted. Its requests go through a counting proxy (tests/s3_proxy.py);
its seconds are timed without the proxy. The window in which a plain listing reader sees both
outputs is the copy plus ``_SUCCESS`` plus the deletion: about the whole commit.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
from s3_proxy import BENCH_ENV as ENV  # noqa: E402
from s3_proxy import bucket_behind_proxy  # noqa: E402

from pipeline.io.parts import write_part  # noqa: E402
from pipeline.io.writer import build_manifest, open_output  # noqa: E402


def _output(url: str, parts: int, rows: int, seed: int, endpoint: str) -> tuple[object, dict]:
    """An --overwrite attempt with every part written and recorded: ready to commit."""
    job = {"command": "bench", "params": {"seed": seed}, "input": [], "plan": {},
           "device": "cpu"}
    opts = {"endpoint_url": endpoint}
    folder = open_output(url, job, overwrite=True, storage_options=opts)
    folder.open(dict.fromkeys(range(parts), rows))
    target = folder.target("parquet")
    rng = np.random.default_rng(seed)
    records = {}
    for i in range(parts):
        table = pa.table({"x": rng.standard_normal(rows)})
        got, _, uploaded = write_part(table, target, i)
        rec = {"chunk": i, "part": target.name(i), "rows": got, **uploaded}
        folder.append_record(rec)
        records[i] = rec
    manifest = build_manifest(job, records, dict.fromkeys(range(parts), "bench"),
                              fmt="parquet", seconds=0.0, resumed_parts=0)
    return folder, {"manifest": manifest, "records": records}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", type=int, default=100)
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ.update(ENV)
    with bucket_behind_proxy(ENV, "commitbench") as (server, _, proxy):
        endpoint = server.endpoint
        seconds = []
        for k in range(args.repeat + 1):
            counted = k == 0  # the first through the proxy, to count; the rest timed
            url = f"s3://commitbench/out{k}"
            ep = proxy.endpoint if counted else endpoint
            done, _ = _output(url, args.parts, args.rows, 1, ep)  # the old output
            done.finish(_["manifest"], records=_["records"])
            done.release()
            folder, new = _output(url, args.parts, args.rows, 2, ep)
            proxy.reset()
            t0 = time.perf_counter()
            folder.finish(new["manifest"], records=new["records"])
            elapsed = time.perf_counter() - t0
            folder.release()
            if counted:
                counts = dict(sorted(proxy.counts.items()))
                print(f"commit of {args.parts} parts (--overwrite of {args.parts} parts), "
                      f"requests (lease release included): {counts}, "
                      f"total {sum(counts.values())}")
            else:
                seconds.append(elapsed)
        print(f"commit seconds, moto on loopback, {args.repeat} runs: "
              + ", ".join(f"{s:.2f}" for s in seconds)
              + f" (median {statistics.median(seconds):.2f})")


if __name__ == "__main__":
    main()
