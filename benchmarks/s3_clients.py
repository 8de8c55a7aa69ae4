"""The client's CPU per GET: s3fs, pyarrow's S3 file system and obstore, side by side.

    python benchmarks/s3_clients.py [--objects 1000] [--latency 10] [--in-flight 32]

OBJECTS Parquet files of about 100 KB (2,000 rows x 6 columns) go into moto's
S3 server; each client then reads every object whole, IN_FLIGHT at once from a thread pool,
through the proxy of tests/s3_proxy.py waiting LATENCY ms before each answer, in its own
process (the client's CPU is that process's, from the kernel's accounting). Sizes come from
one listing beforehand, as pipeline has them. Printed per client: the wall time of the
reads, the process's CPU during them, CPU per GET, and the requests the proxy counted.
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

BUCKET = "clients"

READ = """
import json, os, resource, sys, time
from concurrent.futures import ThreadPoolExecutor
import s3fs
client, prefix, in_flight = sys.argv[1], sys.argv[2], int(sys.argv[3])
fs = s3fs.S3FileSystem()
objects = [(name, int(info["size"])) for name, info in fs.find(prefix, detail=True).items()]
if client == "s3fs":
    def get(o):
        return fs.cat_file(o[0], start=0, end=o[1])
elif client == "pyarrow":
    import pyarrow.fs as pafs
    pa_fs = pafs.S3FileSystem(endpoint_override=os.environ["AWS_ENDPOINT_URL"],
                              region="us-east-1")
    def get(o):
        with pa_fs.open_input_file(o[0]) as f:  # opened by path: a HEAD first
            return f.read_at(o[1], 0)
else:
    import obstore
    from obstore.store import S3Store
    store = S3Store(prefix.split("/")[0], endpoint=os.environ["AWS_ENDPOINT_URL"],
                    access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
                    secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
                    region="us-east-1", client_options={"allow_http": True})
    def get(o):
        return obstore.get_range(store, o[0].split("/", 1)[1], start=0, end=o[1]).to_bytes()
ru = resource.getrusage(resource.RUSAGE_SELF)
cpu0, t0 = ru.ru_utime + ru.ru_stime, time.perf_counter()
with ThreadPoolExecutor(in_flight) as pool:
    got = sum(len(b) for b in pool.map(get, objects))
wall = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"wall": wall, "cpu": ru.ru_utime + ru.ru_stime - cpu0, "n": len(objects),
                  "bytes": got}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--objects", type=int, default=1000)
    ap.add_argument("--latency", type=float, default=10.0, help="ms before each answer")
    ap.add_argument("--in-flight", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    os.environ.update(ENV)
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    with bucket_behind_proxy(ENV, BUCKET, delay=args.latency / 1000) as (_, fs, proxy):
        rng = np.random.default_rng(0)
        sink = pa.BufferOutputStream()
        pq.write_table(pa.table({**{f"f{j}": rng.normal(size=2000) for j in range(5)},
                                 "id": np.arange(2000)}), sink)
        body = sink.getvalue().to_pybytes()
        fs.pipe({f"{BUCKET}/in/part-{i:05d}.parquet": body for i in range(args.objects)})
        rows = []
        for r in range(args.repeat):
            for client in ("s3fs", "pyarrow", "obstore"):
                res = subprocess.run([PY, "-c", READ, client, f"{BUCKET}/in",
                                      str(args.in_flight)], capture_output=True, text=True,
                                     check=True,
                                     env={**os.environ, "AWS_ENDPOINT_URL": proxy.endpoint})
                got = json.loads(res.stdout)
                counts = dict(proxy.counts)
                proxy.reset()
                rows.append((client, got, counts))
                print(f"  run {r + 1} {client}: {got['wall']:.2f} s, {got['cpu']:.2f} CPU-s",
                      file=sys.stderr)
        print(f"\n{args.objects} GETs of {len(body):,} bytes, {args.in_flight} in flight, "
              f"{args.latency:g} ms before each answer (one line per run)")
        print(f"{'client':8s} {'wall s':>7s} {'CPU s':>6s} {'CPU ms/GET':>10s}  requests")
        for client, got, counts in rows:
            print(f"{client:8s} {got['wall']:>7.2f} {got['cpu']:>6.2f} "
                  f"{got['cpu'] / got['n'] * 1000:>10.2f}  "
                  + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


if __name__ == "__main__":
    main()
