"""Model benchmark: pipeline train vs scikit-learn and dask-ml; pipeline score vs Polars.

    python benchmarks/model.py [--rows 8000000] [--score-rows 16000000] [--repeat 3]

Each contender is a whole process that loads the Parquet data and fits (or scores and writes).
The fitted coefficients are compared with scikit-learn's (lbfgs, its default, and
newton-cholesky at a tight tolerance, the exact optimum), and objective values side by side.
"""

from __future__ import annotations

import argparse
import importlib.util
import json

import numpy as np
from harness import CACHE, PY, clean, ensure_data, interleaved, print_table, run_measured

FEATURES = 20

SKLEARN = """
import sys, json, glob, numpy as np, pyarrow.parquet as pq
from sklearn.linear_model import LogisticRegression
t = pq.read_table(sys.argv[1], columns=[f"f{j}" for j in range(N_FEATURES)] + ["label"])
X = np.column_stack([t[f"f{j}"].to_numpy() for j in range(N_FEATURES)])
y = t["label"].to_numpy()
kw = dict(solver=sys.argv[3], tol=1e-10, max_iter=1000) if sys.argv[3] != "lbfgs" else {}
m = LogisticRegression(C=1.0, **kw).fit(X, y)
json.dump({"coef": m.coef_[0].tolist(), "intercept": float(m.intercept_[0])},
          open(sys.argv[2], "w"))
""".replace("N_FEATURES", str(FEATURES))

DASKML = """
import sys, json, dask.dataframe as dd
from distributed import Client, LocalCluster
from dask_ml.linear_model import LogisticRegression
if __name__ == "__main__":
    with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, Client(cluster):
        df = dd.read_parquet(sys.argv[1])
        X = df[[f"f{j}" for j in range(N_FEATURES)]].to_dask_array()
        y = df["label"].to_dask_array()
        X.compute_chunk_sizes()
        y.compute_chunk_sizes()
        m = LogisticRegression(solver=sys.argv[3], C=1.0).fit(X.persist(), y.persist())
        json.dump({"coef": list(map(float, m.coef_)), "intercept": float(m.intercept_)},
                  open(sys.argv[2], "w"))
""".replace("N_FEATURES", str(FEATURES))

POLARS_SCORE = """
import sys, json, polars as pl
m = json.load(open(sys.argv[2]))
z = pl.lit(m["intercept"])
for name, w in zip(m["features"], m["coef"]):
    z = z + pl.col(name) * w
p = 1 / (1 + (-z).exp())
(pl.scan_parquet(sys.argv[1] + "/*.parquet")
   .select(pl.col("id"), pl.col("label"), p.alias("probability"),
           (p >= 0.5).cast(pl.Int8).alias("prediction"))
   .sink_parquet(sys.argv[3], compression="snappy"))
"""


def objective(data, coef, b, C=1.0) -> float:
    """scikit-learn's objective C * sum(loss) + ||w||^2 / 2, streamed over the files."""
    import pyarrow.parquet as pq

    from pipeline.ops.kernels import log_sigmoid

    total = 0.0
    for f in sorted(data.glob("part-*.parquet")):
        t = pq.read_table(f)
        X = np.column_stack([t[f"f{j}"].to_numpy() for j in range(FEATURES)])
        z = X @ np.asarray(coef) + b
        y = t["label"].to_numpy()
        total -= float(np.sum(log_sigmoid(np.where(y > 0, z, -z))))
    return C * total + 0.5 * float(np.dot(coef, coef))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=8_000_000)
    ap.add_argument("--score-rows", type=int, default=16_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    data = ensure_data(args.rows, FEATURES, 16)
    out = CACHE / "model-out"
    out.mkdir(parents=True, exist_ok=True)
    ours = out / "pipeline-model.json"
    contenders = {
        "pipeline train": ([PY, "-m", "pipeline", "train", str(data), str(ours), "--label",
                            "label", "--overwrite", "--quiet"], [ours]),
        "scikit-learn load + fit (lbfgs, default)": (
            [PY, "-c", SKLEARN, str(data), str(out / "sk-lbfgs.json"), "lbfgs"],
            [out / "sk-lbfgs.json"]),
        "scikit-learn load + fit (newton-cholesky)": (
            [PY, "-c", SKLEARN, str(data), str(out / "sk-newton.json"), "newton-cholesky"],
            [out / "sk-newton.json"]),
    }
    if importlib.util.find_spec("dask_ml"):
        for solver in ("newton", "lbfgs"):
            contenders[f"dask-ml LogisticRegression({solver})"] = (
                [PY, "-c", DASKML, str(data), str(out / f"daskml-{solver}.json"), solver],
                [out / f"daskml-{solver}.json"])
    else:
        print("dask-ml is not installed (pip install '.[bench]'): its rows are skipped")
    # keep the last run's model files: interleaved() cleans before each run, not after
    results = interleaved({k: (v[0], []) for k, v in contenders.items()}, args.repeat)
    print_table(f"train: {args.rows:,} rows x {FEATURES} float64 (whole processes, median of "
                f"{args.repeat})", results, "pipeline train")
    model = json.loads(ours.read_text())
    print(f"\npipeline: {model['passes']} passes over the data, {model['iterations']} Newton "
          f"iterations, converged={model['converged']}")
    coefs = {"pipeline": (np.array(model["coef"]), model["intercept"])}
    for name in ("sk-lbfgs", "sk-newton", "daskml-newton", "daskml-lbfgs"):
        p = out / f"{name}.json"
        if p.exists():
            d = json.loads(p.read_text())
            coefs[name] = (np.array(d["coef"]), d["intercept"])
    print(f"{'fit':16s} {'max |coef - pipeline|':>22s} {'objective (C*sum loss + |w|^2/2)':>34s}")
    for name, (c, b) in coefs.items():
        diff = np.max(np.abs(np.append(c, b) - np.append(*coefs["pipeline"])))
        print(f"{name:16s} {diff:>22.3e} {objective(data, c, b):>34.10f}")

    # scoring, 16M rows
    sdata = ensure_data(args.score_rows, FEATURES, 32)
    score = {
        "pipeline score": ([PY, "-m", "pipeline", "score", str(sdata), str(ours),
                            str(out / "scores"), "--keep", "id", "label", "--quiet"],
                           [out / "scores"]),
        "polars scan ... sink_parquet (same columns)": (
            [PY, "-c", POLARS_SCORE, str(sdata), str(ours), str(out / "pl.parquet")],
            [out / "pl.parquet"]),
    }
    res = interleaved(score, args.repeat)
    print_table(f"score: {args.score_rows:,} rows x {FEATURES} (whole processes, median of "
                f"{args.repeat})", res, "pipeline score")

    # train memory as the data grows 4x, under a memory limit (streamed, not cached)
    small = ensure_data(args.rows // 4, FEATURES, 4)
    peaks = {}
    for name, d in (("1/4 size", small), ("full size", data)):
        m = out / "mem-model.json"
        clean(m)
        wall, peak = run_measured([PY, "-m", "pipeline", "train", str(d), str(m), "--label",
                                   "label", "--workers", "2", "--memory-limit", "1GiB",
                                   "--quiet"])
        peaks[name] = peak
        print(f"pipeline train --workers 2 --memory-limit 1GiB, {name}: {wall:.2f} s, "
              f"peak RSS {peak / 2**20:.0f} MiB")
    print(f"train peak RSS growth for 4x the data: {peaks['full size'] / peaks['1/4 size']:.2f}x "
          "(target <= 1.25x)")


if __name__ == "__main__":
    main()
