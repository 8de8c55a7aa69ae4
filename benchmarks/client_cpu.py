"""The client's CPU per chunk on a Dask cluster: 1,000 chunks, a scheduler and 4 workers.

    python benchmarks/client_cpu.py [--files 1000] [--workers 4]

Writes FILES small Parquet files (2,000 rows x 6 columns) under benchmarks/.cache/, starts
``dask scheduler`` and WORKERS ``dask worker`` processes (one thread each) on 127.0.0.1,
and runs ``pipeline transform DATA OUT --scheduler ADDRESS --blocksize 64KiB`` (one chunk per
file) as its own process. Printed: the chunks, the wall time, and the client process's CPU
(user + system, from the kernel's accounting of the finished child) in all and per chunk.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import time

from harness import CACHE, PY


def _data(files: int):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = CACHE / f"client-cpu-{files}"
    if (path / ".done").exists():
        return path
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(files):
        cols = {f"f{j}": rng.normal(size=2000) for j in range(5)}
        cols["id"] = np.arange(2000, dtype=np.int64) + i * 2000
        pq.write_table(pa.table(cols), path / f"part-{i:05d}.parquet")
    (path / ".done").touch()
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=4)
    args = ap.parse_args()
    data = _data(args.files)
    out = CACHE / "client-cpu-out"
    shutil.rmtree(out, ignore_errors=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [subprocess.Popen([PY, "-m", "distributed.cli.dask_scheduler", "--host",
                               "127.0.0.1", "--port", str(port), "--dashboard-address", ":0"],
                              **quiet)]
    procs += [subprocess.Popen([PY, "-m", "distributed.cli.dask_worker", address, "--nthreads",
                                "1", "--dashboard-address", ":0"], **quiet)
              for _ in range(args.workers)]
    try:
        from distributed import Client

        with Client(address, timeout=60) as c:
            c.wait_for_workers(args.workers, timeout=60)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run([PY, "-m", "pipeline", "transform", str(data), str(out), "--scheduler",
                        address, "--blocksize", "64KiB", "--quiet"], check=True,
                       env={**os.environ})
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        chunks = len(json.loads((out / "_SUCCESS").read_text())["parts"])
        print(f"transform of {args.files} files, --scheduler with {args.workers} single-thread "
              f"workers: {chunks} chunks, wall {wall:.2f} s")
        print(f"client process CPU: {cpu:.2f} s in all, {cpu / chunks * 1000:.2f} ms per chunk")
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(20)
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
