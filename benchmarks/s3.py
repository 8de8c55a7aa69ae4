"""Object-storage benchmark: transform from s3:// to s3:// on a local S3 server, pipeline vs
Polars streaming, whole processes, interleaved; with each contender's HTTP requests.

    python benchmarks/s3.py [--rows 2000000] [--files 4] [--repeat 3]

Data: ``rows`` x 20 float64 features (plus ``id`` and ``label``) in ``files`` Parquet files,
uploaded to a bucket on moto's S3 server (its own process on 127.0.0.1). Both contenders
compute the sigmoid of the 20 features, keep the other columns and write snappy Parquet back
to the bucket. The timed runs talk to the server directly; one more run of each goes through a
counting proxy (tests/s3_proxy.py, a Python process-local proxy that would dominate the
timings) to count its HTTP requests by kind. What differs: pipeline
writes one part per chunk plus its manifest (``_SUCCESS``, ``_chunks.jsonl``, ``_job.json``)
and commits by manifest; Polars writes one file straight to its final key, no marker.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from harness import PY, ensure_data, run_measured

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from s3_proxy import S3Proxy  # noqa: E402

FEATURES = 20
BUCKET = "bench"
ENV = {
    "AWS_ACCESS_KEY_ID": "bench-key",
    "AWS_SECRET_ACCESS_KEY": "bench-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_SHARED_CREDENTIALS_FILE": "",
    "AWS_CONFIG_FILE": "",
    "AWS_EC2_METADATA_DISABLED": "true",
}

POLARS = """
import os, sys, polars as pl
opts = {"aws_endpoint_url": os.environ["AWS_ENDPOINT_URL"], "aws_allow_http": "true",
        "aws_region": "us-east-1", "aws_access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"]}
cols = [f"f{j}" for j in range(N_FEATURES)]
lf = pl.scan_parquet(sys.argv[1] + "/*.parquet", storage_options=opts)
lf = lf.with_columns([(1 / (1 + (-pl.col(c)).exp())).alias(c) for c in cols])
lf.sink_parquet(sys.argv[2], compression="snappy", storage_options=opts)
""".replace("N_FEATURES", str(FEATURES))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _input_requests(log, sizes: dict[str, int]) -> tuple[int, Counter]:
    """LIST requests of the input prefix, and footer reads per input file, from a proxy log."""
    lists = sum(1 for kind, path, _ in log if kind == "LIST" and "prefix=in" in path)
    footers: Counter = Counter({name: 0 for name in sizes})
    for kind, path, rng in log:
        name = path.rsplit("/", 1)[-1]
        if kind != "GET range" or f"/{BUCKET}/in/" not in path or name not in sizes:
            continue
        first, _, last = rng.removeprefix("bytes=").partition("-")
        size = sizes[name]
        end = int(last) if last else size - 1
        if first.startswith("-"):  # a suffix range: the last N bytes
            start = size - int(first[1:])
        else:
            start = int(first or 0)
        if end >= size - 1 and size - start <= 65536 + 8 and start > 0:
            footers[name] += 1
    return lists, footers


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ.update(ENV)
    data = ensure_data(args.rows, FEATURES, args.files)
    port = _free_port()
    moto = subprocess.Popen([PY, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proxy = None
    try:
        import s3fs

        endpoint = f"http://127.0.0.1:{port}"
        fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint})
        for _ in range(100):
            try:
                fs.mkdir(BUCKET)
                break
            except Exception:  # noqa: BLE001 - the server is still starting
                time.sleep(0.1)
        for p in sorted(data.glob("part-*.parquet")):
            fs.put_file(str(p), f"{BUCKET}/in/{p.name}")
        proxy = S3Proxy(endpoint)
        contenders = {
            "pipeline transform s3 -> s3": (
                [PY, "-m", "pipeline", "transform", f"s3://{BUCKET}/in",
                 f"s3://{BUCKET}/out-pipeline", "--quiet"], f"{BUCKET}/out-pipeline"),
            "polars scan_parquet -> sink_parquet (s3)": (
                [PY, "-c", POLARS, f"s3://{BUCKET}/in",
                 f"s3://{BUCKET}/out-polars/data.parquet"], f"{BUCKET}/out-polars"),
        }
        results = {name: {"walls": [], "peaks": [], "requests": Counter()}
                   for name in contenders}

        def run(name, url):
            cmd, out = contenders[name]
            fs.invalidate_cache()
            if fs.exists(out):
                fs.rm(out, recursive=True)
            time.sleep(1.0)
            return run_measured(cmd, env={"AWS_ENDPOINT_URL": url})

        for r in range(args.repeat):
            for name in contenders:
                wall, peak = run(name, endpoint)
                results[name]["walls"].append(wall)
                results[name]["peaks"].append(peak)
                print(f"  run {r + 1}/{args.repeat} {name}: {wall:.2f} s, peak "
                      f"{peak / 2**20:.0f} MiB", file=sys.stderr)
        sizes = {p.name: p.stat().st_size for p in data.glob("part-*.parquet")}
        for name in contenders:
            proxy.reset()
            run(name, proxy.endpoint)
            results[name]["requests"] = Counter(proxy.counts)
            results[name]["input"] = _input_requests(proxy.log, sizes)
        ours = "pipeline transform s3 -> s3"
        base = statistics.median(results[ours]["walls"])
        print(f"\ntransform s3 -> s3: {args.rows:,} rows x {FEATURES} float64 in {args.files} "
              f"Parquet files on moto's S3 server (whole processes, median of {args.repeat})")
        print(f"{'contender':44s} {'median s':>9s} {'runs (s)':>22s} {'peak MiB':>9s} "
              f"{'pipeline / it':>14s}")
        for name, res in results.items():
            med = statistics.median(res["walls"])
            runs = " ".join(f"{w:.2f}" for w in res["walls"])
            print(f"{name:44s} {med:>9.2f} {runs:>22s} {max(res['peaks']) / 2**20:>9.0f} "
                  f"{base / med:>13.2f}x")
        print("\nHTTP requests of one more run each (through the counting proxy), by kind")
        kinds = sorted({k for res in results.values() for k in res["requests"]})
        print(f"{'contender':44s} " + " ".join(f"{k:>18s}" for k in kinds) + f" {'total':>7s}")
        for name, res in results.items():
            c = res["requests"]
            print(f"{name:44s} " + " ".join(f"{c.get(k, 0):>18d}" for k in kinds)
                  + f" {sum(c.values()):>7d}")
        print("\nreads of the input (same run): LISTs of the input prefix, and reads of each "
              "file's footer (a ranged GET of its last 64 KiB or less)")
        for name, res in results.items():
            lists, footers = res["input"]
            print(f"{name:44s} LIST in/: {lists}   footer GETs per file: "
                  f"{', '.join(f'{k}={v}' for k, v in sorted(footers.items()))}")
    finally:
        if proxy is not None:
            proxy.close()
        moto.terminate()
        moto.wait(10)


if __name__ == "__main__":
    main()
