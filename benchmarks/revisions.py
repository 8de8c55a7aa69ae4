"""Local transform, score and train of two git revisions of pipeline, interleaved.

    python benchmarks/revisions.py BASE [--against REV] [--repeat 5]

BASE (and REV, default: the working tree) are checked out into temporary git worktrees and
run with ``python -m pipeline`` on PYTHONPATH, so both run in this virtual environment with
the same libraries, on the same cached data, one run of each after the other (which goes
first alternates from one repeat to the next). This is how a
refactor shows that it left the speed alone: the ratios should sit within the run-to-run
spread printed beside them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import CACHE, PY, clean, ensure_data, run_measured

ROOT = Path(__file__).resolve().parent.parent
FEATURES = 20


def worktree(rev: str, where: Path) -> Path:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--force",
                    str(where), rev], check=True, capture_output=True)
    return where


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base")
    ap.add_argument("--against", default=None, help="a revision (default: the working tree)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rows", type=int, default=16_000_000)
    ap.add_argument("--train-rows", type=int, default=8_000_000)
    args = ap.parse_args()

    data = ensure_data(args.rows, FEATURES, 32)
    tdata = ensure_data(args.train_rows, FEATURES, 16)
    out = CACHE / "revisions-out"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"base": worktree(args.base, Path(tmp) / "base")}
        trees["new"] = (worktree(args.against, Path(tmp) / "new") if args.against else ROOT)
        labels = {"base": args.base, "new": args.against or "working tree"}
        model = out / "model.json"
        subprocess.run([PY, "-m", "pipeline", "train", str(tdata), str(model), "--label",
                        "label", "--overwrite", "--quiet"], check=True)
        work = {
            "transform": lambda o: ["transform", str(data), str(o), "--quiet"],
            "score": lambda o: ["score", str(data), str(model), str(o), "--keep", "id",
                                "label", "--quiet"],
            "train": lambda o: ["train", str(tdata), str(o / "m.json"), "--label", "label",
                                "--quiet"],
        }
        walls: dict[tuple[str, str], list[float]] = {}
        try:
            for r in range(args.repeat):
                for job, argv in work.items():
                    sides = list(trees.items())
                    for side, tree in (sides if r % 2 == 0 else sides[::-1]):
                        o = out / f"{job}-{side}"
                        clean(o)
                        if job == "train":
                            o.mkdir()
                        wall, peak = run_measured([PY, "-m", "pipeline", *argv(o)],
                                                  env={"PYTHONPATH": str(tree)})
                        walls.setdefault((job, side), []).append(wall)
                        print(f"  run {r + 1}/{args.repeat} {job} {labels[side]}: {wall:.2f} s,"
                              f" peak {peak / 2**20:.0f} MiB", file=sys.stderr)
                        clean(o)
        finally:
            for side in ("base", "new"):
                if trees[side] != ROOT:
                    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                    str(trees[side])], check=False)

    import statistics

    print(f"\n{labels['new']} against {labels['base']}: {args.rows:,} rows x {FEATURES} "
          f"(train {args.train_rows:,}), whole processes, median of {args.repeat}")
    print(f"{'command':10s} {'base s':>8s} {'new s':>8s} {'new / base':>11s}  "
          f"{'base runs':>30s}  {'new runs':>30s}")
    for job in work:
        b, n = walls[(job, "base")], walls[(job, "new")]
        mb, mn = statistics.median(b), statistics.median(n)
        print(f"{job:10s} {mb:>8.2f} {mn:>8.2f} {mn / mb:>10.2f}x  "
              f"{' '.join(f'{w:.2f}' for w in b):>30s}  {' '.join(f'{w:.2f}' for w in n):>30s}")


if __name__ == "__main__":
    main()
