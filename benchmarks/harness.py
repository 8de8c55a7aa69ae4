"""Shared by the benchmark scripts: cached data, whole-process timing, peak RSS of the tree.

Every contender runs as its own process (start-up included, as a user pays it); its peak
memory is the highest sum of RSS over the process and all its children, sampled every 20 ms.
Before each run the previous outputs are deleted and ``sync`` is called, so that no run pays
for another's dirty pages.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

CACHE = Path(__file__).resolve().parent / ".cache"
PY = sys.executable


def ensure_data(rows: int, features: int, files: int, *, fmt: str = "parquet",
                seed: int = 0) -> Path:
    """Generate (once) a data set with ``pipeline generate``; cached under .cache/."""
    path = CACHE / f"{fmt}-{rows}x{features}-{files}f-s{seed}"
    if not (path / "_SUCCESS").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([PY, "-m", "pipeline", "generate", str(path), "--rows", str(rows),
                        "--features", str(features), "--files", str(files), "--format", fmt,
                        "--seed", str(seed), "--overwrite", "--quiet"], check=True)
    return path


def clean(*paths: Path) -> None:
    for p in paths:
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    subprocess.run(["sync"], check=False)
    time.sleep(3.0)  # let the disk settle: a run must not pay for the previous one's writes


def run_measured(cmd: list[str], *, env: dict | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of the whole process tree of ``cmd``."""
    err = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=err)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            procs = [ps, *ps.children(recursive=True)]
            total = 0
            for p in procs:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            peak = max(peak, total)
        except psutil.Error:
            pass
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        err.seek(0)
        raise RuntimeError(f"{cmd[:4]} failed: {err.read().decode()[-2000:]}")
    return wall, peak


def interleaved(contenders: dict[str, tuple[list[str], list[Path]]], repeat: int,
                ) -> dict[str, dict]:
    """Run each contender ``repeat`` times, interleaved; median wall, max peak RSS."""
    results = {name: {"walls": [], "peaks": []} for name in contenders}
    for r in range(repeat):
        for name, (cmd, outputs) in contenders.items():
            clean(*outputs)
            wall, peak = run_measured(cmd)
            results[name]["walls"].append(wall)
            results[name]["peaks"].append(peak)
            print(f"  run {r + 1}/{repeat} {name}: {wall:.2f} s, peak {peak / 2**20:.0f} MiB",
                  file=sys.stderr)
    for name in contenders:
        clean(*contenders[name][1])
        res = results[name]
        res["median"] = statistics.median(res["walls"])
        res["peak"] = max(res["peaks"])
    return results


def print_table(title: str, results: dict[str, dict], ours: str) -> None:
    base = results[ours]["median"]
    print(f"\n{title}")
    print(f"{'contender':44s} {'median s':>9s} {'runs (s)':>22s} {'peak MiB':>9s} "
          f"{'pipeline / it':>14s}")
    for name, res in results.items():
        runs = " ".join(f"{w:.2f}" for w in res["walls"])
        ratio = base / res["median"]
        print(f"{name:44s} {res['median']:>9.2f} {runs:>22s} {res['peak'] / 2**20:>9.0f} "
              f"{ratio:>13.2f}x")
