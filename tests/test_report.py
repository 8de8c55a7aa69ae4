"""``pipeline report OUT`` of a scored output: the model, its metrics with the class names,
charts only where they say something, round ticks, the page's path, a resume's own rate."""

from __future__ import annotations

import html
import json
import math
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_cli, wait_until

from pipeline.cli.charts import nice_ticks


def _churn(folder, *, files=3, rows=4000, seed=0):
    """Two features, a three-level plan and a "Yes"/"No" label drawn from a logistic model."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for k in range(files):
        x = rng.standard_normal((rows, 2))
        plan = rng.choice(["basic", "gold", "silver"], rows)
        region = rng.choice(["north", "south"], rows)
        z = 0.8 * x[:, 0] - 0.5 * x[:, 1] + np.where(plan == "gold", 1.0, 0.0) - 0.3
        churn = np.where(rng.random(rows) < 1 / (1 + np.exp(-z)), "Yes", "No")
        pq.write_table(pa.table({"id": np.arange(k * rows, (k + 1) * rows), "f0": x[:, 0],
                                 "f1": x[:, 1], "plan": plan, "region": region,
                                 "churn": churn}),
                       folder / f"part{k}.parquet")
    return folder


@pytest.fixture
def churn_scored(tmp_path):
    data, model, out = _churn(tmp_path / "data"), tmp_path / "m.json", tmp_path / "scores"
    assert run_cli("train", data, model, "--label", "churn", "--positive", "Yes",
                   "--categorical", "plan", "region", "--quiet") == 0
    assert run_cli("score", data, model, out, "--quiet") == 0
    return data, model, out


def _metrics(page: str) -> dict:
    """The model section's metrics: name -> the number shown."""
    found = re.findall(r'<tr class="metric"><th>([^<]+)</th><td>([^<]+)</td>', page)
    return {k: float(v) for k, v in found}


def test_report_of_a_scored_output_shows_the_model_and_its_metrics(churn_scored, capsys):
    data, model, out = churn_scored
    assert run_cli("evaluate", data, model, "--label", "churn", "--quiet") == 0
    ev = json.loads(capsys.readouterr().out)
    assert run_cli("report", out) == 0
    page = html.unescape((out / "_report.html").read_text())
    m = json.loads(model.read_text())
    assert "positive class 'Yes', negative class 'No'" in page
    # every coefficient under its name: the features', each category level's, the intercept
    terms = dict(re.findall(r'<tr class="coef"><td>([^<]+)</td><td>([^<]+)</td>', page))
    assert float(terms["(intercept)"]) == pytest.approx(m["intercept"], rel=1e-6)
    levels = [[f"{col}={v}" for v in vocab] for col, vocab in m["categories"].items()]
    names = [*m["features"], *(n for col in levels for n in col)]
    if len(names) > len(m["coef"]):  # a reference level per column, without coefficient
        names = [*m["features"], *(n for col in levels for n in col[1:])]
    assert {"plan=gold", "region=south"} <= set(names)
    for name, value in zip(names, m["coef"], strict=True):
        assert float(terms[name]) == pytest.approx(value, rel=1e-6, abs=1e-12)
    # the label was kept in the scores: the metrics are computed there, and agree with
    # pipeline evaluate's on the same rows
    got = _metrics(page)
    assert got["rows"] == ev["rows"] == 12000
    assert got["log loss"] == pytest.approx(ev["log_loss"], rel=1e-6)
    assert got["accuracy"] == pytest.approx(ev["accuracy"], rel=1e-6)
    assert got["AUC"] == pytest.approx(ev["auc"], abs=1e-4)


def test_report_without_the_label_says_what_is_known(tmp_path, capsys):
    data, model, out = _churn(tmp_path / "data"), tmp_path / "m.json", tmp_path / "s"
    assert run_cli("train", data, model, "--label", "churn", "--categorical", "plan",
                   "--quiet") == 0
    assert run_cli("score", data, model, out, "--keep", "id", "--quiet") == 0
    assert run_cli("report", out) == 0
    page = html.unescape((out / "_report.html").read_text())
    assert "log loss" not in _metrics(page)
    assert "the scores do not keep the label 'churn'" in page
    assert f"{json.loads(model.read_text())['loss']:.6g}" in page  # the training loss


def test_evaluation_charts_name_the_classes(churn_scored, capsys):
    data, model, out = churn_scored
    assert run_cli("evaluate", data, model, "--label", "churn", "--out",
                   out / "_evaluation.json", "--quiet") == 0
    assert run_cli("report", out) == 0
    page = html.unescape((out / "_report.html").read_text())
    assert "positive class" not in page.replace("positive class 'Yes'", "")
    assert ">Yes</text>" in page and ">No</text>" in page  # the histogram's legend
    assert "actual Yes" in page and "predicted No" in page  # the confusion matrix


def test_report_prints_the_pages_path(churn_scored, capsys):
    _, _, out = churn_scored
    capsys.readouterr()
    assert run_cli("report", out) == 0
    assert f"report: {out / '_report.html'}" in capsys.readouterr().out.splitlines()


def test_per_chunk_charts_only_where_there_are_several_chunks(tmp_path):
    one, several = _churn(tmp_path / "one", files=1), _churn(tmp_path / "several", files=3)
    for data in (one, several):
        assert run_cli("transform", data, tmp_path / f"t-{data.name}", "--blocksize", "1",
                       "--quiet") == 0  # a chunk per row group: one file, one chunk
        assert run_cli("report", tmp_path / f"t-{data.name}") == 0
    page_one = (tmp_path / "t-one" / "_report.html").read_text()
    page_several = (tmp_path / "t-several" / "_report.html").read_text()
    for title in ("seconds per chunk", "rows/s per chunk", "peak RSS per chunk",
                  "chunks over wall-clock time"):
        assert title not in page_one and title in page_several
    assert "<svg" not in page_one


@pytest.mark.parametrize("lo,hi", [(0.0298, 4.61), (0.6123, 0.6189), (-3.2, 17.9),
                                   (1234.0, 98765.0), (2e-9, 7e-9), (0.5, 0.5000004)])
def test_ticks_are_round_1_2_5_steps_inside_the_range(lo, hi):
    ticks = nice_ticks(lo, hi)
    assert 3 <= len(ticks) <= 8
    assert all(lo - 1e-12 * abs(hi) <= t <= hi + 1e-12 * abs(hi) for t in ticks)
    step = float(f"{ticks[1] - ticks[0]:.6g}")
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert min(abs(mantissa - m) for m in (1, 2, 5, 10)) < 1e-6
    for t in ticks:
        assert abs(t / step - round(t / step)) < 1e-6


def test_the_pages_axis_labels_are_round(churn_scored):
    _, _, out = churn_scored
    assert run_cli("report", out) == 0
    page = (out / "_report.html").read_text()
    labels = re.findall(r'text-anchor="end" font-size="10">([^<]+)<', page)
    assert labels
    for text in labels:  # 0.03, 1.5, 2k, 1.2M: at most two significant digits
        digits = re.sub(r"[^0-9]", "", re.sub(r"e[-+]\d+$", "", text)).strip("0")
        assert len(digits) <= 2, text


def test_rate_after_a_resume_counts_only_this_runs_rows(tmp_path, capsys):
    folder = tmp_path / "many"
    folder.mkdir()
    rng = np.random.default_rng(0)
    pq.write_table(pa.table({"f0": rng.standard_normal(600_000)}), folder / "big.parquet",
                   row_group_size=2000)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "transform", str(folder),
                             str(out), "--blocksize", "1", "--quiet"],
                            start_new_session=True, stderr=subprocess.DEVNULL)
    chunks = out / "_chunks.jsonl"
    assert wait_until(lambda: chunks.exists() and len(chunks.read_text().splitlines()) >= 20)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert run_cli("transform", folder, out, "--blocksize", "1", "--resume", "--quiet") == 0
    manifest = json.loads((out / "_SUCCESS").read_text())
    kept_rows = manifest["resumed_rows"]
    assert kept_rows == 2000 * manifest["resumed_parts"] > 0
    capsys.readouterr()
    assert run_cli("report", out) == 0
    text = capsys.readouterr().out
    rate = (manifest["rows"] - kept_rows) / manifest["seconds"]
    assert f"rows/s: {rate:,.0f} (this run: {manifest['rows'] - kept_rows:,} rows" in text
