"""Job files, the report, generate and the activation benchmark."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import read_output, run_cli

from pipeline.cli.jobs import load_job


def _write_job(tmp_path, text):
    p = tmp_path / "job.toml"
    p.write_text(text)
    return p


JOB = """
[[steps]]
command = "generate"
out = "data/raw"
rows = 20000
features = 4
files = 2
seed = 3

[[steps]]
command = "train"
input = "data/raw"
model = "data/model.json"
label = "label"
max-iter = 30

[[steps]]
command = "evaluate"
input = "data/raw"
model = "data/model.json"
label = "label"

[[steps]]
command = "score"
input = "data/raw"
model = "data/model.json"
out = "data/scores"
keep = ["id"]

[[steps]]
command = "transform"
input = "data/raw"
out = "data/transformed"
output = "log"

[[steps]]
command = "report"
out = "data/scores"
"""


def test_job_runs_every_step_with_paths_relative_to_the_file(tmp_path, capsys, monkeypatch):
    job = _write_job(tmp_path, JOB)
    monkeypatch.chdir("/")
    assert run_cli("run", job) == 0
    out = capsys.readouterr().out
    metrics = json.loads(out.splitlines()[0])
    assert metrics["rows"] == 20000 and 0.5 < metrics["auc"] <= 1
    scores = read_output(tmp_path / "data" / "scores")
    assert scores.column_names == ["id", "probability", "prediction"]
    raw = read_output(tmp_path / "data" / "raw")
    logs = read_output(tmp_path / "data" / "transformed")
    assert np.all(logs["f0"].to_numpy() < 0) and logs["id"].equals(raw["id"])
    html = (tmp_path / "data" / "scores" / "_report.html").read_text()
    assert "<svg" in html and html.count('class="mark"') >= 2 * 2  # a mark per chunk, per plot
    assert "training loss per pass" in html
    assert "chunks: 1" in out  # two small files packed into one chunk


def test_generate_is_deterministic_and_writes_the_truth(tmp_path):
    for name in ("a", "b"):
        assert run_cli("generate", tmp_path / name, "--rows", "5000", "--features", "3",
                       "--files", "2", "--seed", "9", "--quiet") == 0
    for part in ("part-00000.parquet", "part-00001.parquet"):
        assert (tmp_path / "a" / part).read_bytes() == (tmp_path / "b" / part).read_bytes()
    truth = json.loads((tmp_path / "a" / "_truth.json").read_text())
    assert truth["features"] == ["f0", "f1", "f2"] and len(truth["coef"]) == 3
    t = read_output(tmp_path / "a")
    assert t.column_names == ["id", "f0", "f1", "f2", "label"]
    assert t["id"].to_pylist() == list(range(5000))
    assert set(t["label"].to_pylist()) == {0, 1}


def test_generate_csv_float32_and_train_recovers_the_truth(tmp_path):
    assert run_cli("generate", tmp_path / "g", "--rows", "60000", "--features", "3",
                   "--format", "csv", "--dtype", "float32", "--quiet") == 0
    assert sorted(p.name for p in (tmp_path / "g").glob("*.csv")) == ["part-00000.csv"]
    assert run_cli("train", tmp_path / "g", tmp_path / "m.json", "--label", "label",
                   "--no-penalty", "--quiet") == 0
    truth = json.loads((tmp_path / "g" / "_truth.json").read_text())
    model = json.loads((tmp_path / "m.json").read_text())
    assert model["C"] is None
    np.testing.assert_allclose(model["coef"], truth["coef"], atol=0.05)


@pytest.mark.parametrize("text,message", [
    ("[[steps]]\ncommand = 'transform'\ninput = 'x'\nout = 'y'\ncolour = 1\n",
     "step 2 (transform): unknown key 'colour'"),
    ("[[steps]]\ncommand = 'transform'\ninput = 'x'\nout = 'y'\ntemperature = 'hot'\n",
     "step 2 (transform): key 'temperature' must be a finite number > 0; got 'hot'"),
    ("[[steps]]\ncommand = 'transform'\ninput = 'nowhere'\nout = 'y'\n",
     "step 2 (transform): input"),
    ("[[steps]]\ncommand = 'train'\ninput = 'x'\nmodel = 'm.json'\n",
     "step 2 (train): missing key 'label'"),
    ("[[steps]]\ncommand = 'explode'\n", "step 2: unknown command 'explode'"),
    ("[cluster]\nnodes = 3\n[[steps]]\ncommand = 'report'\nout = 'x'\n",
     "[cluster]: unknown key 'nodes'"),
    ("[[steps]]\ncommand = 'generate'\nout = 'g'\nrows = 10\nfeatures = 2\n"
     "[[steps]]\ncommand = 'transform'\ninput = 'g'\nout = 'y'\nworkers = 2\n",
     "step 3 (transform): key 'workers' belongs in [cluster]"),
    ("steps = [", "not valid TOML"),
])
def test_job_is_validated_completely_before_the_first_step(tmp_path, capsys, text, message):
    (tmp_path / "x").mkdir()
    pq.write_table(__import__("conftest").make_table(10), tmp_path / "x" / "a.parquet")
    first = "[[steps]]\ncommand = 'generate'\nout = 'first'\nrows = 10\nfeatures = 2\n\n"
    prefixed = not text.startswith(("[cluster]", "steps ="))
    job = _write_job(tmp_path, first + text if prefixed else text)
    assert run_cli("run", job) == 2
    err = capsys.readouterr().err
    assert message in err and "job.toml" in err
    assert not (tmp_path / "first").exists()  # nothing ran


def test_later_step_may_read_what_an_earlier_step_writes(tmp_path):
    job = _write_job(tmp_path, "[[steps]]\ncommand = 'generate'\nout = 'g'\nrows = 10\n"
                     "features = 2\n[[steps]]\ncommand = 'transform'\ninput = 'g'\nout = 't'\n")
    cluster, steps = load_job(job)
    assert cluster == {} and [s[0] for s in steps] == ["generate", "transform"]
    assert steps[1][1]["input"] == str(tmp_path / "g")


def test_job_with_a_local_cluster_shares_it_across_steps(tmp_path):
    job = _write_job(tmp_path, "[cluster]\nworkers = 2\nmemory_limit = '1GiB'\n"
                     "[[steps]]\ncommand = 'generate'\nout = 'g'\nrows = 4000\nfeatures = 2\n"
                     "files = 2\n[[steps]]\ncommand = 'transform'\ninput = 'g'\nout = 't'\n")
    assert run_cli("run", job) == 0
    recs = [json.loads(x) for x in (tmp_path / "t" / "_chunks.jsonl").read_text().splitlines()]
    assert all(r["worker"].startswith("tcp://127.0.0.1") for r in recs)


def test_bench_prints_every_activation(capsys):
    assert run_cli("bench", "--sizes", "10000", "--repeat", "2") == 0
    out = capsys.readouterr().out
    for name in ("sigmoid (pipeline, stable)", "scipy.special.expit", "tanh", "relu",
                 "leaky relu", "naive"):
        assert name in out
    row = next(line for line in out.splitlines() if line.startswith("sigmoid (pipeline"))
    assert row.split()[-1] in {"0", "1", "2"}  # worst ULP within the contract


def test_bench_json(capsys):
    assert run_cli("bench", "--sizes", "1000", "--repeat", "1", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["activation"] for r in rows} >= {"tanh", "relu"}
    assert all(r["ns_per_element"] > 0 for r in rows)


def test_job_on_an_existing_scheduler(tmp_path, dask_cluster):
    job = _write_job(tmp_path, f"[cluster]\nscheduler = '{dask_cluster.address}'\n"
                     "[[steps]]\ncommand = 'generate'\nout = 'g'\nrows = 4000\nfeatures = 2\n"
                     "files = 2\n[[steps]]\ncommand = 'train'\ninput = 'g'\nmodel = 'm.json'\n"
                     "label = 'label'\n[[steps]]\ncommand = 'score'\ninput = 'g'\n"
                     "model = 'm.json'\nout = 's'\n")
    assert run_cli("run", job) == 0
    recs = [json.loads(x) for x in (tmp_path / "s" / "_chunks.jsonl").read_text().splitlines()]
    assert all(r["worker"].startswith("tcp://127.0.0.1") for r in recs)
    assert json.loads((tmp_path / "m.json").read_text())["converged"]
