"""Every option, job key, model field and output folder is checked; nothing is lost.

Bad values are generated from the rules declared on the commands' ``Arg``s, so a new option
with a rule is tested without a new line here.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import read_output, run_cli, write_parquet_files

import pipeline
from pipeline.cli import jobs
from pipeline.cli.parser import COMMANDS
from pipeline.config.exec_options import ExecOptions
from pipeline.config.params import (
    COUNT,
    INCREASING_PAIR,
    POSITIVE,
    PROBABILITY,
    SIZE,
    STORAGE_OPTIONS,
)
from pipeline.model.estimator import LogisticModel

# --- 1. options: one rule each, one sentence, before any work --------------------------------

# invalid values of each rule, as CLI text
INVALID = {
    id(COUNT): ["0", "-1", "1.5", "x"],
    id(POSITIVE): ["0", "-2", "nan", "inf", "x"],
    id(PROBABILITY): ["-0.1", "1.5", "nan"],
    id(SIZE): ["0", "-1GiB", "0.1", "lots"],
    id(INCREASING_PAIR): [("1", "1"), ("2", "1"), ("nan", "1"), ("0", "inf")],
    id(STORAGE_OPTIONS): ['client_kwargs={"region_name": "x"}', "ports=[1, 2]"],
}

# the least a command needs to parse, with paths that need not exist: no work may start
REQUIRED = {
    "generate": ["OUT", "--rows", "10", "--features", "2"],
    "transform": ["IN", "OUT"],
    "train": ["IN", "MODEL.json", "--label", "label"],
    "score": ["IN", "MODEL.json", "OUT"],
    "evaluate": ["IN", "MODEL.json", "--label", "label"],
    "bench": [],
    "run": ["JOB.toml"],
    "report": ["OUT"],
}


def _option_cases():
    for cmd in COMMANDS.values():
        for arg in cmd.all_args():
            if arg.check is None:
                continue
            assert id(arg.check) in INVALID, f"no invalid values for {arg.option}'s rule"
            for bad in INVALID[id(arg.check)]:
                yield pytest.param(cmd.name, arg, bad, id=f"{cmd.name} {arg.option} {bad}")


@pytest.mark.parametrize("command,arg,bad", list(_option_cases()))
def test_every_option_outside_its_rule_is_one_error_line_naming_it(command, arg, bad, tmp_path,
                                                                   capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    given = [arg.option, *bad] if isinstance(bad, tuple) else [f"{arg.option}={bad}"]
    argv = [command, *REQUIRED[command], *given]
    if command == "bench" and arg.name != "sizes":
        argv += ["--sizes", "10"]  # were the rule not checked, a short run, not a long one
    assert run_cli(*argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    shown = " ".join(repr(float(b)) for b in bad) if isinstance(bad, tuple) else None
    assert err[0].startswith(f"error: {arg.option} must be {arg.check}; got "), err
    if shown is not None:
        assert err[0].endswith(f"got {shown}")
    assert list(tmp_path.iterdir()) == []  # nothing was written


def test_blocksize_zero_says_it_must_be_positive_not_unparsable(tmp_path, capsys):
    assert run_cli("transform", write_parquet_files(tmp_path / "d"), tmp_path / "o",
                   "--blocksize", "0") == 2
    err = capsys.readouterr().err
    assert err == "error: --blocksize must be a size > 0 (e.g. 64MiB, 1GiB, 1000000); " \
                  "got '0'\n"


def test_workers_zero_is_an_error_not_threads(tmp_path, capsys):
    data = write_parquet_files(tmp_path / "d")
    assert run_cli("transform", data, tmp_path / "o", "--workers", "0", "--quiet") == 2
    assert capsys.readouterr().err == "error: --workers must be an integer >= 1; got 0\n"
    assert not (tmp_path / "o").exists()


def test_negative_workers_and_threads_are_errors_not_a_hang_or_traceback(tmp_path, capsys):
    data = write_parquet_files(tmp_path / "d")
    assert run_cli("transform", data, tmp_path / "o", "--workers", "-1") == 2
    assert capsys.readouterr().err == "error: --workers must be an integer >= 1; got -1\n"
    assert run_cli("transform", data, tmp_path / "o", "--threads-per-worker", "-1") == 2
    assert capsys.readouterr().err == \
        "error: --threads-per-worker must be an integer >= 1; got -1\n"
    assert not (tmp_path / "o").exists()


def test_scheduler_with_a_local_cluster_size_is_refused_not_ignored(tmp_path, capsys):
    assert run_cli("transform", "IN", tmp_path / "o", "--scheduler", "tcp://127.0.0.1:1",
                   "--workers", "2") == 2
    assert capsys.readouterr().err == ("error: --scheduler (an existing cluster) cannot be "
                                       "combined with --workers, which sizes a local cluster\n")


def test_library_errors_name_the_parameter_and_are_value_errors():
    with pytest.raises(ValueError, match=r"^workers must be an integer >= 1; got 0$"):
        ExecOptions(workers=0)
    with pytest.raises(pipeline.PipelineError,
                       match=r"^memory_limit must be a size > 0 .*; got '0GiB'$"):
        ExecOptions(memory_limit="0GiB")
    with pytest.raises(pipeline.PipelineError,
                       match=r"^threads_per_worker must be an integer >= 1; got True$"):
        ExecOptions(threads_per_worker=True)
    with pytest.raises(pipeline.PipelineError,
                       match=r"^The 'tol' parameter of LogisticModel must be a finite number "
                             r"> 0; got 'x'$"):
        LogisticModel(tol="x").fit(np.eye(2), [0, 1])
    with pytest.raises(pipeline.PipelineError,
                       match=r"^temperature must be a finite number > 0; got inf$"):
        pipeline.transform_files("IN", "OUT", temperature=float("inf"))


def test_library_errors_name_parameters_and_the_cli_names_options(tmp_path, capsys):
    data = tmp_path / "in"
    write_parquet_files(data, files=1, rows=50)
    with pytest.raises(pipeline.PipelineError,
                       match=r"^threshold must be a finite number in \[0, 1\]; got 2$"):
        pipeline.score_files(data, LogisticModel(), tmp_path / "s", threshold=2)
    with pytest.raises(pipeline.PipelineError, match=r"^device must be one of 'cpu', 'gpu', "
                                                     r"'auto'; got 'tpu'$"):
        pipeline.transform_files(data, tmp_path / "t", options=ExecOptions(device="tpu"))
    with pytest.raises(pipeline.PipelineError, match=r"^overwrite and resume cannot be used "
                                                     r"together$"):
        ExecOptions(overwrite=True, resume=True)
    out = tmp_path / "out"
    pipeline.transform_files(data, out, options=ExecOptions(quiet=True))
    with pytest.raises(pipeline.PipelineError, match=r"pass overwrite=True to replace it or "
                                                     r"resume=True to continue it$"):
        pipeline.transform_files(data, out)
    assert run_cli("transform", str(data), str(out), "--quiet") == 2
    assert "pass --overwrite to replace it or --resume to continue it\n" in \
        capsys.readouterr().err
    assert run_cli("transform", str(data), str(out), "--overwrite", "--resume") == 2
    assert capsys.readouterr().err == \
        "error: --overwrite and --resume cannot be used together\n"


def test_generate_in_the_library_checks_its_counts_by_the_same_rules(tmp_path):
    with pytest.raises(pipeline.PipelineError, match=r"^rows must be an integer >= 1; got True$"):
        # not one row: a bool is not a count
        pipeline.generate(tmp_path / "g", rows=True, features=2)
    with pytest.raises(pipeline.PipelineError,
                       match=r"^features must be an integer >= 1; got 0$"):
        pipeline.generate(tmp_path / "g", rows=10, features=0)
    with pytest.raises(pipeline.PipelineError, match=r"^files must be at most rows \(10\); "
                                                     r"got 11$"):
        pipeline.generate(tmp_path / "g", rows=10, features=2, files=11)
    assert not (tmp_path / "g").exists()


def test_a_job_file_breaks_a_rule_with_the_same_sentence_as_the_cli(tmp_path, capsys):
    assert run_cli("train", "IN", "M.json", "--label", "label", "--max-iter", "0") == 2
    cli = capsys.readouterr().err.strip()
    job = tmp_path / "job.toml"
    job.write_text("[[steps]]\ncommand = 'train'\ninput = 'IN'\nmodel = 'M.json'\n"
                   "label = 'label'\nmax-iter = 0\n")
    assert run_cli("run", job) == 2
    err = capsys.readouterr().err.strip()
    assert cli == "error: --max-iter must be an integer >= 1; got 0"
    assert err == f"error: {job}: step 1 (train): key 'max-iter' must be an integer >= 1; got 0"


@pytest.mark.parametrize("cluster,message", [
    ("workers = -1", "[cluster]: key 'workers' must be an integer >= 1; got -1"),
    ("workers = true", "[cluster]: key 'workers' must be an integer >= 1; got True"),
    ("threads_per_worker = 0", "[cluster]: key 'threads_per_worker' must be an integer >= 1; "
                               "got 0"),
    ("memory_limit = 0", "[cluster]: key 'memory_limit' must be a size > 0"),
    ("scheduler = 'tcp://127.0.0.1:1'\nworkers = 2",
     "[cluster]: key 'scheduler' (an existing cluster) cannot be combined with key "
     "'workers', which sizes a local cluster"),
])
def test_every_cluster_key_is_checked_before_the_first_step(tmp_path, capsys, cluster,
                                                            message):
    job = tmp_path / "job.toml"
    job.write_text(f"[cluster]\n{cluster}\n[[steps]]\ncommand = 'generate'\nout = 'g'\n"
                   "rows = 10\nfeatures = 2\n")
    assert run_cli("run", job) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {job}: ") and message in err[0], err
    assert not (tmp_path / "g").exists()


@pytest.mark.parametrize("command", sorted(REQUIRED))
def test_help_offers_only_what_the_command_takes(command, capsys):
    """Each choice a command's help names is one it accepts: train and evaluate have no
    --missing keep."""
    with pytest.raises(SystemExit):
        run_cli(command, "--help")
    text = " ".join(capsys.readouterr().out.split())
    if command in ("train", "evaluate"):
        assert "--missing {error,drop}" in text and "keep (null" not in text
    if command in ("transform", "score"):
        assert "--missing {error,drop,keep}" in text and "keep (null results)" in text


@pytest.mark.parametrize("args,typo,nearest", [
    (["transform", "{d}", "{t}/o", "--columns", "f1", "F0"], "F0", "'f0'"),
    (["train", "{d}", "{t}/m.json", "--label", "lable"], "lable", "'label'"),
    (["train", "{d}", "{t}/m.json", "--label", "label", "--features", "f_1"], "f_1", "'f1'"),
    (["train", "{d}", "{t}/m.json", "--label", "label", "--categorical", "nmae"], "nmae",
     "'name'"),
    (["train", "{d}", "{t}/m.json", "--label", "label", "--weight", "g23"], "g23", "'g32'"),
    (["evaluate", "{d}", "{t}/model.json", "--label", "labl"], "labl", "'label'"),
    (["score", "{d}", "{t}/model.json", "{t}/s", "--keep", "idd"], "idd", "'id'"),
])
def test_a_column_typo_lists_the_nearest_column_names(args, typo, nearest, tmp_path, capsys):
    data = write_parquet_files(tmp_path / "d")
    assert run_cli("train", data, tmp_path / "model.json", "--label", "label",
                   "--quiet") == 0
    capsys.readouterr()
    argv = [a.format(d=data, t=tmp_path) for a in args]
    assert run_cli(*argv, "--quiet") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"column {typo!r}" in err, err
    assert f"did you mean {nearest}" in err, err


def test_a_column_name_with_no_near_one_lists_the_columns_there_are(tmp_path, capsys):
    data = write_parquet_files(tmp_path / "d")
    assert run_cli("transform", data, tmp_path / "o", "--columns", "zzz", "--quiet") == 2
    err = capsys.readouterr().err.strip()
    assert "the columns are: 'id', 'f0', 'f1', 'f2', 'g32', 'name', 'label'" in err, err


# --- 2. job files: every [cluster] key honoured ----------------------------------------------


def test_job_cluster_threads_per_worker_reaches_the_local_cluster(tmp_path, monkeypatch):
    seen = []
    real = jobs.open_executor

    @contextlib.contextmanager
    def spy(options=None, client=None):
        with real(options, client) as ex:
            info = ex.client.scheduler_info()
            seen.append(sorted(w["nthreads"] for w in info["workers"].values()))
            yield ex

    monkeypatch.setattr(jobs, "open_executor", spy)
    job = tmp_path / "job.toml"
    job.write_text("[cluster]\nworkers = 1\nthreads_per_worker = 2\nmemory_limit = '1GiB'\n"
                   "[[steps]]\ncommand = 'generate'\nout = 'g'\nrows = 100\nfeatures = 2\n")
    assert run_cli("run", job) == 0
    assert seen == [[2]]  # one worker, with the two threads the job asked for
    assert read_output(tmp_path / "g").num_rows == 100


# --- 3. model files: every field's type and range ---------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("model")
    data = write_parquet_files(tmp / "data", files=1, rows=400)
    model = tmp / "model.json"
    assert run_cli("train", data, model, "--label", "label", "--quiet") == 0
    return data, json.loads(model.read_text())


BAD_FIELDS = [
    ("kind", 5), ("version", True), ("version", "1"), ("features", []),
    ("features", ["f0", "f0", "f1", "f2"]), ("features", "f0"), ("coef", ["x", 0, 0, 0]),
    ("coef", [True, 0.0, 0.0, 0.0]), ("coef", 1.0), ("intercept", "x"), ("intercept", True),
    ("intercept", float("inf")), ("label", 5), ("C", "big"), ("C", 0), ("C", -1.0),
    ("C", float("nan")), ("tol", "x"), ("tol", 0), ("max_iter", 0), ("max_iter", 2.5),
    ("max_iter", True), ("rows", -1), ("rows", True), ("rows", 1.5), ("passes", -1),
    ("sample_passes", -1), ("sample_passes", True), ("sample_passes", 2.5),
    ("iterations", "3"), ("converged", "yes"), ("converged", 1), ("loss", "x"),
    ("loss", float("nan")), ("history", 5), ("history", [1, 2]), ("input", "data"),
]


@pytest.mark.parametrize("field,value", BAD_FIELDS, ids=[f"{f}={v!r}" for f, v in BAD_FIELDS])
def test_every_model_field_is_checked_with_one_error_line(field, value, trained, tmp_path,
                                                          capsys):
    data, good = trained
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(good | {field: value}))
    assert run_cli("score", data, path, tmp_path / "out", "--quiet") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"error: {path}: invalid model file: field {field!r} ")
    assert not (tmp_path / "out").exists()


def test_a_missing_required_model_field_is_named(trained, tmp_path, capsys):
    data, good = trained
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({k: v for k, v in good.items() if k != "intercept"}))
    assert run_cli("evaluate", data, path, "--label", "label") == 2
    assert capsys.readouterr().err == \
        f"error: {path}: invalid model file: field 'intercept' is missing\n"


@pytest.mark.parametrize("field,value", [("tol", "x"), ("C", "big"), ("history", 5),
                                         ("rows", -3)])
def test_every_command_that_reads_a_model_refuses_a_bad_field(field, value, trained, tmp_path,
                                                              capsys):
    data, good = trained
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(good | {field: value}))
    commands = [["evaluate", data, path, "--label", "label"],
                ["train", data, path, "--label", "label", "--resume"],
                ["score", data, path, tmp_path / "out"]]
    for argv in commands:
        assert run_cli(*argv, "--quiet") == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"error: {path}: invalid model file: field {field!r} must be ")
        assert err.count("\n") == 1 and "Traceback" not in err


def test_unknown_model_fields_are_ignored_and_known_ones_kept(trained, tmp_path, capsys):
    data, good = trained
    path = tmp_path / "extra.json"
    path.write_text(json.dumps(good | {"written_by": "a newer version"}))
    m = LogisticModel.load(path)
    assert m.coef_[0].tolist() == good["coef"] and m.rows_ == good["rows"] == 400
    assert m.history_ == good["history"] and m.converged_ is good["converged"]
    assert run_cli("evaluate", data, path, "--label", "label") == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 400


# --- 4. report: every folder this tool can leave ----------------------------------------------


def _transformed(tmp_path) -> Path:
    data = write_parquet_files(tmp_path / "data")
    out = tmp_path / "out"
    assert run_cli("transform", data, out, "--blocksize", "10KiB", "--quiet") == 0
    return out


def _records(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "_chunks.jsonl").read_text().splitlines()]


def test_report_on_a_resumed_output_whose_records_lack_timings(tmp_path, capsys):
    out = _transformed(tmp_path)
    n = len(_records(out))
    assert n >= 2
    # killed after the parts' renames but before their records were appended
    (out / "_SUCCESS").unlink()
    (out / "_chunks.jsonl").write_text("")
    assert run_cli("transform", tmp_path / "data", out, "--blocksize", "10KiB", "--resume",
                   "--quiet") == 0
    records = _records(out)
    assert len(records) == n and all("seconds" not in r and "worker" not in r for r in records)
    capsys.readouterr()
    assert run_cli("report", out) == 0
    cap = capsys.readouterr()
    assert cap.err == ""
    assert "complete: yes (transform)" in cap.out and "rows: 2,000" in cap.out
    assert f"chunks without timings: {n}" in cap.out
    page = (out / "_report.html").read_text()
    assert page.count("<tr><td>") == n  # a table row a chunk, timings blank


def test_report_on_an_incomplete_output_says_so_and_draws_what_exists(tmp_path, capsys):
    out = _transformed(tmp_path)
    records = _records(out)
    (out / "_SUCCESS").unlink()
    with open(out / "_chunks.jsonl", "a") as fh:
        fh.write('{"rows": 5}\n[1, 2]\n{"chunk": 99, "ro')  # damaged lines, skipped
    capsys.readouterr()
    assert run_cli("report", out) == 0
    cap = capsys.readouterr()
    assert cap.err == ""
    assert "the output is incomplete" in cap.out
    assert f"chunks: {len(records)}" in cap.out and "rows: 2,000" in cap.out
    page = (out / "_report.html").read_text()
    # one mark per chunk in each per-chunk plot (seconds, rows/s, peak RSS, timeline)
    assert page.count('class="mark"') == 4 * len(records)


def test_report_on_an_output_killed_before_its_first_record(tmp_path, capsys):
    out = _transformed(tmp_path)
    for p in out.iterdir():
        if p.name != "_job.json":
            p.unlink()
    capsys.readouterr()
    assert run_cli("report", out) == 0
    cap = capsys.readouterr()
    assert "chunks: 0" in cap.out and "the output is incomplete" in cap.out and cap.err == ""


# --- 5. LogisticModel.fit caches only what fits ---------------------------------------------


def _counted_frame(folder: Path, log: Path):
    """A dask DataFrame over the Parquet files that appends a line to ``log`` per read."""
    import dask.dataframe as dd

    files = sorted(str(p) for p in folder.glob("*.parquet"))
    meta = pq.read_table(files[0]).slice(0, 0).to_pandas()
    return dd.from_map(_read_counted, files, log=str(log), meta=meta), files


def _read_counted(path, log):
    with open(log, "a") as fh:  # one short line, appended whole: safe across processes
        fh.write(os.path.basename(path) + "\n")
    return pq.read_table(path).to_pandas()


def test_fit_streams_a_dask_frame_larger_than_the_workers_memory(tmp_path):
    import dask
    from distributed import Client, LocalCluster

    rows, features, files = 250_000, 4, 4  # 4 x 250k x 5 x 8 B = 40 MB parsed
    folder = tmp_path / "data"
    folder.mkdir()
    rng = np.random.default_rng(7)
    for k in range(files):
        X = rng.standard_normal((rows, features))
        y = (rng.random(rows) < 1 / (1 + np.exp(-(X @ [1.0, -0.5, 0.25, 0.0])))).astype(int)
        cols = {f"f{j}": X[:, j] for j in range(features)} | {"label": y}
        pq.write_table(pa.table(cols), folder / f"p{k}.parquet")

    log = tmp_path / "reads.log"
    df, names = _counted_frame(folder, log)
    limit = 20 * 2**20  # half the data: the fit may not keep it
    # the worker must not be paused or killed for holding a chunk: only the budget matters
    quiet_memory = {f"distributed.worker.memory.{k}": False
                    for k in ("target", "spill", "pause", "terminate")}
    with dask.config.set(quiet_memory), \
            LocalCluster(n_workers=1, threads_per_worker=1, memory_limit=limit,
                         processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        streamed = LogisticModel(C=1.0).fit(df, label="label", client=client)
    reads = log.read_text().split()
    assert streamed.cached_ is False
    # every pass re-read every partition
    assert {n: reads.count(os.path.basename(n)) for n in names} == \
        {n: streamed.passes_ for n in names}
    assert streamed.passes_ >= 3

    log.unlink()
    cached = LogisticModel(C=1.0).fit(df, label="label")  # threads: this machine's memory
    reads = log.read_text().split()
    assert cached.cached_ is True
    assert {reads.count(os.path.basename(n)) for n in names} == {2}  # counted, then kept
    np.testing.assert_allclose(streamed.coef_[0], cached.coef_[0], rtol=0, atol=1e-10)
    assert abs(streamed.intercept_[0] - cached.intercept_[0]) <= 1e-10
    assert streamed.rows_ == cached.rows_ == rows * files


def test_train_decides_by_the_same_rule_as_fit(tmp_path, monkeypatch):
    from pipeline.ops.design import block_nbytes
    from pipeline.run.execution import Executor

    asked = []
    monkeypatch.setattr(Executor, "fits_in_memory",
                        lambda self, nbytes: asked.append(nbytes) or False)
    data = write_parquet_files(tmp_path / "d")  # 2 x 1000 rows, features f0 f1 f2 g32
    assert run_cli("train", data, tmp_path / "m.json", "--label", "label", "--quiet") == 0
    assert asked == [block_nbytes(2000, 4)]
    model = LogisticModel.load(tmp_path / "m.json")
    assert model.rows_ == 2000 and model.converged_
