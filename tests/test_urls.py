"""Model files, reports and job files on URLs (moto's S3 server and memory://), and a URL whose
file system is not installed."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from conftest import read_output, run_cli, s3fs_client

import pipeline
from pipeline.cli.jobs import load_job
from pipeline.model.estimator import LogisticModel

GEN = ["--rows", "3000", "--features", "3", "--files", "2", "--quiet"]
FEATS = ["--label", "label", "--features", "f0", "f1", "f2", "--quiet"]


def _keys(fs, bucket):
    fs.invalidate_cache()
    return sorted(p.split("/", 1)[1] for p in fs.find(bucket))


# --- model files ---------------------------------------------------------------------------------

def test_model_file_on_s3_is_one_object_equal_to_the_local_one(moto_server, bucket, data_dir,
                                                                tmp_path):
    assert run_cli("train", data_dir, f"{bucket}/m/model.json", *FEATS) == 0
    assert run_cli("train", data_dir, tmp_path / "model.json", *FEATS) == 0
    fs = s3fs_client(moto_server)
    assert _keys(fs, bucket) == ["m/model.json"]  # no temporary object left beside it
    on_s3 = json.loads(fs.cat_file(f"{bucket}/m/model.json"))
    local = json.loads((tmp_path / "model.json").read_text())
    assert [h["loss"] for h in on_s3.pop("history")] == [h["loss"] for h in local.pop("history")]
    assert on_s3 == local  # all but the timings in its history
    loaded = LogisticModel.load(f"{bucket}/m/model.json")
    np.testing.assert_array_equal(loaded.coef_, LogisticModel.load(tmp_path / "model.json").coef_)


def test_existing_model_on_s3_is_refused_kept_by_resume_replaced_by_overwrite(
        moto_server, bucket, data_dir, capsys):
    fs = s3fs_client(moto_server)
    url = f"{bucket}/model.json"
    assert run_cli("train", data_dir, url, *FEATS) == 0
    etag = fs.info(url)["ETag"]
    assert run_cli("train", data_dir, url, *FEATS) == 2
    assert f"error: {url}: model file already exists" in capsys.readouterr().err
    assert run_cli("train", data_dir, url, *FEATS, "--resume") == 0  # the same job: kept
    fs.invalidate_cache()
    assert fs.info(url)["ETag"] == etag
    assert run_cli("train", data_dir, url, *FEATS, "--C", "0.01", "--resume") == 2
    assert "cannot resume" in capsys.readouterr().err
    assert run_cli("train", data_dir, url, *FEATS, "--C", "0.01", "--overwrite") == 0
    assert LogisticModel.load(url).C == 0.01
    assert _keys(fs, bucket) == ["model.json"]


def test_overwrite_of_an_s3_object_that_is_not_a_model_leaves_it(moto_server, bucket, data_dir,
                                                                  capsys):
    fs = s3fs_client(moto_server)
    fs.pipe_file(f"{bucket}/notes.json", b'{"mine": true}')
    fs.pipe_file(f"{bucket}/folder/a.txt", b"x")
    assert run_cli("train", data_dir, f"{bucket}/notes.json", *FEATS, "--overwrite") == 2
    assert "not touched" in capsys.readouterr().err
    assert fs.cat_file(f"{bucket}/notes.json") == b'{"mine": true}'
    assert run_cli("train", data_dir, f"{bucket}/folder", *FEATS) == 2
    assert capsys.readouterr().err == \
        f"error: {bucket}/folder: model path is a folder, not a file\n"


def test_model_path_that_is_an_input_file_on_s3_is_refused_and_untouched(moto_server, bucket,
                                                                          capsys):
    assert run_cli("generate", f"{bucket}/gen", *GEN) == 0
    fs = s3fs_client(moto_server)
    part = next(p for p in _keys(fs, bucket) if p.endswith(".parquet"))
    before = fs.info(f"{bucket}/{part}")["ETag"]
    assert run_cli("train", f"{bucket}/gen", f"{bucket}/{part}", *FEATS, "--overwrite") == 2
    assert capsys.readouterr().err == \
        f"error: {bucket}/{part}: the model path is an input file; choose another\n"
    assert fs.info(f"{bucket}/{part}")["ETag"] == before


def test_score_and_evaluate_read_a_model_on_s3(moto_server, bucket, data_dir, tmp_path, capsys):
    assert run_cli("train", data_dir, f"{bucket}/model.json", *FEATS) == 0
    assert run_cli("train", data_dir, tmp_path / "model.json", *FEATS) == 0
    assert run_cli("score", data_dir, f"{bucket}/model.json", tmp_path / "s3m", "--quiet") == 0
    assert run_cli("score", data_dir, tmp_path / "model.json", tmp_path / "local",
                   "--quiet") == 0
    assert read_output(tmp_path / "s3m").equals(read_output(tmp_path / "local"))
    capsys.readouterr()
    assert run_cli("evaluate", data_dir, f"{bucket}/model.json", "--label", "label") == 0
    assert run_cli("evaluate", data_dir, tmp_path / "model.json", "--label", "label") == 0
    s3_line, local_line = capsys.readouterr().out.splitlines()
    assert json.loads(s3_line) == json.loads(local_line)


def test_train_on_a_csv_input_on_s3_equals_train_on_the_same_files_on_disk(
        moto_server, bucket, tmp_path):
    gen = ["--rows", "3000", "--features", "3", "--files", "2", "--format", "csv", "--quiet"]
    assert run_cli("generate", f"{bucket}/csv", *gen) == 0
    assert run_cli("generate", tmp_path / "csv", *gen) == 0
    assert run_cli("train", f"{bucket}/csv", f"{bucket}/m.json", *FEATS) == 0
    assert run_cli("train", tmp_path / "csv", tmp_path / "m.json", *FEATS) == 0
    np.testing.assert_array_equal(LogisticModel.load(f"{bucket}/m.json").coef_,
                                  LogisticModel.load(tmp_path / "m.json").coef_)


def test_missing_model_on_a_url_is_one_error_line(moto_server, bucket, data_dir, tmp_path,
                                                  capsys):
    assert run_cli("score", data_dir, f"{bucket}/none.json", tmp_path / "o") == 2
    assert capsys.readouterr().err == \
        f"error: {bucket}/none.json: cannot read model file (no such file)\n"


def test_model_save_and_load_with_storage_options_on_memory():
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    model = LogisticModel().fit(X, [0, 0, 1, 1])
    model.save("memory://models/m.json", storage_options={"skip_instance_cache": False})
    loaded = LogisticModel.load("memory://models/m.json", storage_options={})
    np.testing.assert_array_equal(loaded.coef_, model.coef_)
    assert loaded.intercept_ == model.intercept_


# --- reports -------------------------------------------------------------------------------------

def test_report_on_s3_reads_the_run_and_puts_its_page(moto_server, bucket, tmp_path, capsys,
                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_cli("generate", f"{bucket}/gen", *GEN) == 0
    assert run_cli("generate", tmp_path / "gen", *GEN) == 0
    capsys.readouterr()
    assert run_cli("report", f"{bucket}/gen") == 0
    assert run_cli("report", tmp_path / "gen") == 0
    out = capsys.readouterr().out.splitlines()
    s3_summary, local_summary = out[:len(out) // 2], out[len(out) // 2:]
    assert s3_summary[:4] == [f"output: {bucket}/gen", "chunks: 2", "rows: 3,000",
                              "complete: yes (generate)"]
    assert s3_summary[1:4] == local_summary[1:4]
    fs = s3fs_client(moto_server)
    page = fs.cat_file(f"{bucket}/gen/_report.html").decode()
    assert "seconds per chunk" in page and "complete: yes (generate)" in page
    assert page.count("<circle class=\"mark\"") == \
        (tmp_path / "gen" / "_report.html").read_text().count("<circle class=\"mark\"")
    assert "gen/_report.html" in _keys(fs, bucket)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gen"]  # nothing else written here


def test_report_of_a_score_with_a_model_on_s3_draws_its_training(moto_server, bucket, data_dir):
    assert run_cli("train", data_dir, f"{bucket}/model.json", *FEATS) == 0
    assert run_cli("score", data_dir, f"{bucket}/model.json", f"{bucket}/scores",
                   "--quiet") == 0
    assert run_cli("report", f"{bucket}/scores") == 0
    page = s3fs_client(moto_server).cat_file(f"{bucket}/scores/_report.html").decode()
    assert "training loss per pass" in page and "complete: yes (score)" in page


def test_report_on_an_s3_prefix_that_is_not_an_output_is_an_error(moto_server, bucket, capsys):
    fs = s3fs_client(moto_server)
    fs.pipe_file(f"{bucket}/mine/a.txt", b"x")
    assert run_cli("report", f"{bucket}/mine") == 2
    assert capsys.readouterr().err.startswith(f"error: {bucket}/mine: not an output folder")
    assert _keys(fs, bucket) == ["mine/a.txt"]


# --- job files -----------------------------------------------------------------------------------

def test_job_file_on_s3_runs_with_paths_relative_to_its_folder(moto_server, bucket, data_dir):
    fs = s3fs_client(moto_server)
    fs.pipe_file(f"{bucket}/jobs/job.toml", f"""
[[steps]]
command = "generate"
out = "data/gen"
rows = 3000
features = 3
quiet = true

[[steps]]
command = "train"
input = "data/gen"
model = "../models/m.json"
label = "label"
features = ["f0", "f1", "f2"]
quiet = true

[[steps]]
command = "score"
input = "{data_dir}"
model = "../models/m.json"
out = "data/scores"
quiet = true

[[steps]]
command = "report"
out = "data/scores"
""".encode())
    assert run_cli("run", f"{bucket}/jobs/job.toml") == 0
    keys = _keys(fs, bucket)
    for key in ("jobs/data/gen/_SUCCESS", "models/m.json", "jobs/data/scores/_SUCCESS",
                "jobs/data/scores/_report.html"):
        assert key in keys
    manifest = json.loads(fs.cat_file(f"{bucket}/jobs/data/scores/_SUCCESS"))
    assert manifest["params"]["model_path"] == f"{bucket}/models/m.json"
    assert manifest["rows"] == 2000
    model = json.loads(fs.cat_file(f"{bucket}/models/m.json"))
    assert model["rows"] == 3000  # trained on the generated data, read from the bucket


def test_job_validator_checks_that_url_inputs_exist(moto_server, bucket, tmp_path):
    fs = s3fs_client(moto_server)
    fs.pipe_file(f"{bucket}/old/_SUCCESS", b"{}")
    job = tmp_path / "job.toml"
    job.write_text(f'[[steps]]\ncommand = "report"\nout = "{bucket}/old"\n'
                   f'[[steps]]\ncommand = "generate"\nout = "{bucket}/new"\nrows = 9\n'
                   f'features = 2\n'
                   f'[[steps]]\ncommand = "report"\nout = "{bucket}/new/"\n')
    _, steps = load_job(job)  # one exists, one an earlier step writes
    assert [v["out"] for _, v in steps] == [f"{bucket}/old", f"{bucket}/new", f"{bucket}/new/"]
    job.write_text(f'[[steps]]\ncommand = "report"\nout = "{bucket}/none"\n')
    with pytest.raises(pipeline.PipelineError,
                       match=rf"step 1 \(report\): out '{bucket}/none' does not exist and no "
                             "earlier step writes it"):
        load_job(job)


def test_relative_paths_of_a_url_job_file_resolve_under_its_url_folder():
    import fsspec

    fsspec.filesystem("memory").pipe_file(
        "/jobs/a/job.toml",
        b'[[steps]]\ncommand = "generate"\nout = "../g"\nrows = 9\nfeatures = 2\n'
        b'[[steps]]\ncommand = "generate"\nout = "s3://other/g"\nrows = 9\nfeatures = 2\n'
        b'[[steps]]\ncommand = "generate"\nout = "/tmp/local-g"\nrows = 9\nfeatures = 2\n')
    _, steps = load_job("memory://jobs/a/job.toml")
    assert [v["out"] for _, v in steps] == ["memory:///jobs/g", "s3://other/g", "/tmp/local-g"]


def test_missing_job_file_on_s3_is_one_error_line(moto_server, bucket, capsys):
    assert run_cli("run", f"{bucket}/none.toml") == 2
    assert capsys.readouterr().err == f"error: {bucket}/none.toml: no such job file\n"


# --- a URL whose file system is not installed ----------------------------------------------------

def _uninstalled():
    for scheme, module, extra in (("gs", "gcsfs", "gcs"), ("abfs", "adlfs", "azure")):
        if importlib.util.find_spec(module) is None:
            return scheme, extra
    pytest.skip("gcsfs and adlfs are both installed")


@pytest.mark.parametrize("command", ["generate", "train", "score", "report", "run", "job"])
def test_url_without_its_file_system_is_one_error_line_naming_the_extra(command, data_dir,
                                                                        tmp_path, capsys):
    scheme, extra = _uninstalled()
    url = f"{scheme}://bucket/x"
    job = tmp_path / "job.toml"
    job.write_text(f'[[steps]]\ncommand = "report"\nout = "{url}"\n')
    argv = {"generate": ["generate", url, *GEN], "train": ["train", data_dir, url, *FEATS],
            "score": ["score", data_dir, url, tmp_path / "o"], "report": ["report", url],
            "run": ["run", url], "job": ["run", job]}[command]
    assert run_cli(*argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert f"{url}: no file system for {scheme}:// is installed " \
           f"(pip install 'pipeline[{extra}]')" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "job.toml"]


@pytest.mark.parametrize("out", ["s3a://b/in", "s3a://b/in/", "s3a://b/in/t", "abfss://c/x"])
def test_out_naming_the_input_by_another_scheme_of_its_store_is_refused(out):
    """s3a:// is s3://, abfss:// and az:// are abfs://, gcs:// is gs://: the overlap check
    compares the store, not the spelling, so --overwrite never replaces the input."""
    from pipeline.errors import PipelineError
    from pipeline.io.writer import refuse_overlap

    inp = "abfs://c/x" if out.startswith("abfss") else "s3://b/in"
    with pytest.raises(PipelineError, match="the input"):
        refuse_overlap(out, [f"{inp}/part-00000.parquet"], input_arg=inp)


def test_a_bucket_that_does_not_exist_is_one_error_line(moto_server, data_dir, tmp_path,
                                                       capsys):
    """INPUT, OUT or a model file in a missing bucket: one error line, exit 2, no traceback."""
    missing = "s3://no-such-bucket-here"
    for args in (["transform", f"{missing}/raw", tmp_path / "out"],
                 ["transform", data_dir, f"{missing}/out"],
                 ["train", data_dir, f"{missing}/m.json", "--label", "label"]):
        assert run_cli(*args, "--quiet") == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: {missing}/"), (args, err)
    assert not (tmp_path / "out").exists()
