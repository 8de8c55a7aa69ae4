"""Storage options (--storage-option, [storage], storage_options=) reach the file system of a
URL, are checked by one rule, and no secret among them is ever written."""

from __future__ import annotations

import json
import os

import pytest
import s3fs
from conftest import S3_ENV, run_cli, run_proc, s3fs_client, write_parquet_files

import pipeline
from pipeline.cli.jobs import load_job
from pipeline.config.exec_options import ExecOptions
from pipeline.config.options import key_values

GEN = ["--rows", "3000", "--features", "3", "--files", "2", "--quiet"]
KEY_ID, SECRET = "AKIAOPTIONKEY7XQ2ZZ", "option-secret-3b1f-never-written"


@pytest.fixture
def no_endpoint_env(moto_server, monkeypatch):
    """Only storage options can point s3fs at the moto server: AWS_ENDPOINT_URL is unset."""
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    s3fs.S3FileSystem.clear_instance_cache()  # no instance made with the variable set
    yield {"endpoint_url": moto_server.endpoint}
    s3fs.S3FileSystem.clear_instance_cache()


def _job_record(fs, url):
    fs.invalidate_cache()
    return json.loads(fs.cat_file(f"{url}/_job.json"))


# --- they reach the file system ------------------------------------------------------------------

def test_storage_option_on_the_cli_reaches_the_file_system(moto_server, bucket, no_endpoint_env):
    url = f"{bucket}/gen"
    assert run_cli("generate", url, *GEN,
                   "--storage-option", f"endpoint_url={moto_server.endpoint}",
                   "--storage-option", "use_ssl=false") == 0
    fs = s3fs_client(moto_server)
    assert fs.exists(f"{url}/_SUCCESS")
    # recorded as given (JSON values parsed: false is a boolean), nothing secret among them
    assert _job_record(fs, url)["storage_options"] == {"endpoint_url": moto_server.endpoint,
                                                       "use_ssl": False}


def test_storage_table_of_a_job_file_reaches_every_step(moto_server, bucket, no_endpoint_env,
                                                        tmp_path):
    job = tmp_path / "job.toml"
    job.write_text(f"""
[storage]
endpoint_url = "{moto_server.endpoint}"

[[steps]]
command = "generate"
out = "{bucket}/gen"
rows = 3000
features = 3
quiet = true

[[steps]]
command = "report"
out = "{bucket}/gen"
""")
    assert run_cli("run", job) == 0
    fs = s3fs_client(moto_server)
    assert _job_record(fs, f"{bucket}/gen")["storage_options"] == no_endpoint_env
    assert b"complete: yes (generate)" in fs.cat_file(f"{bucket}/gen/_report.html")


def test_fsspec_configuration_variables_reach_the_file_system(moto_server, bucket):
    # fsspec reads FSSPEC_<PROTOCOL>_<OPTION> when it is imported: a process of its own
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
    env["FSSPEC_S3_ENDPOINT_URL"] = moto_server.endpoint
    proc = run_proc("generate", f"{bucket}/gen", *GEN, env=env)
    assert proc.returncode == 0, proc.stderr
    fs = s3fs_client(moto_server)
    assert json.loads(fs.cat_file(f"{bucket}/gen/_SUCCESS"))["rows"] == 3000
    assert "storage_options" not in _job_record(fs, f"{bucket}/gen")  # none were given


def test_run_storage_option_reads_a_job_on_s3_and_reaches_its_steps(moto_server, bucket,
                                                                    no_endpoint_env):
    fs = s3fs_client(moto_server)
    fs.pipe_file(f"{bucket}/jobs/job.toml", b'[[steps]]\ncommand = "generate"\nout = "gen"\n'
                 b'rows = 3000\nfeatures = 3\nquiet = true\n')
    assert run_cli("run", f"{bucket}/jobs/job.toml",
                   "--storage-option", f"endpoint_url={moto_server.endpoint}") == 0
    assert _job_record(fs, f"{bucket}/jobs/gen")["storage_options"] == no_endpoint_env


def test_library_storage_options_reach_the_file_system(moto_server, bucket, no_endpoint_env,
                                                       tmp_path):
    opts = dict(no_endpoint_env, key=KEY_ID, secret=SECRET)
    manifest = pipeline.generate(f"{bucket}/lib", rows=3000, features=3, files=2,
                                 options=ExecOptions(quiet=True), storage_options=opts)
    assert manifest["rows"] == 3000
    df = pipeline.read(write_parquet_files(tmp_path / "d"), columns=["id", "f0"],
                       storage_options=opts)  # a local input: the options are not needed
    pipeline.write(df, f"{bucket}/written", storage_options=opts)
    fs = s3fs_client(moto_server)
    for url in (f"{bucket}/lib", f"{bucket}/written"):
        assert _job_record(fs, url)["storage_options"] == dict(
            no_endpoint_env, key="<redacted>", secret="<redacted>")
    assert json.loads(fs.cat_file(f"{bucket}/written/_SUCCESS"))["rows"] == 2000


def test_storage_options_given_twice_differently_are_an_error():
    with pytest.raises(pipeline.PipelineError, match="storage_options given twice"):
        pipeline.generate("memory://g", rows=10, features=2,
                          options=ExecOptions(storage_options={"a": 1}),
                          storage_options={"a": 2})


# --- one rule, and errors that show no secret ----------------------------------------------------

def test_nested_storage_options_are_refused_without_showing_a_secret():
    with pytest.raises(pipeline.PipelineError) as err:
        ExecOptions(storage_options={"endpoint_url": "http://x", "secret": SECRET,
                                     "client_kwargs": {"aws_secret_access_key": SECRET}})
    assert str(err.value) == (
        "storage_options must be a table of option names to strings, numbers or booleans; "
        "got {'endpoint_url': 'http://x', 'secret': '<redacted>', 'client_kwargs': <dict>}")


def test_storage_option_values_are_json_where_they_are_and_secrets_stay_text():
    assert key_values(["anon=true", "max_concurrency=4", "endpoint_url=http://h:9000",
                       "secret=12345", "sas_token=true", "region=us-east-1", "a=b=c"]) == {
        "anon": True, "max_concurrency": 4, "endpoint_url": "http://h:9000",
        "secret": "12345", "sas_token": "true", "region": "us-east-1", "a": "b=c"}


def test_storage_option_without_equals_is_one_error_line_that_does_not_echo_it(tmp_path,
                                                                              capsys):
    assert run_cli("generate", tmp_path / "g", *GEN, "--storage-option", "ok=1",
                   "--storage-option", f"secret:{SECRET}") == 2
    err = capsys.readouterr().err
    assert err == ("error: --storage-option must be KEY=VALUE; item 2 is not (its text is not "
                   "shown, as it may hold a secret)\n")
    assert not (tmp_path / "g").exists()


@pytest.mark.parametrize("text, message", [
    ('[storage]\nclient_kwargs = {region = "x"}\n',
     "[storage] must be a table of option names to strings, numbers or booleans; got "
     "{'client_kwargs': <dict>}"),
    ('storage = "endpoint_url=x"\n',
     "[storage] must be a table of option names to strings, numbers or booleans; got a str"),
    ('[storage]\nports = [1, 2]\n', "got {'ports': <list>}"),
])
def test_storage_table_is_validated(tmp_path, text, message):
    job = tmp_path / "job.toml"
    job.write_text(text + '[[steps]]\ncommand = "generate"\nout = "g"\nrows = 9\nfeatures = 2\n')
    with pytest.raises(pipeline.PipelineError, match=None) as err:
        load_job(job)
    assert message in str(err.value) and str(err.value).startswith(str(job))


def test_storage_option_in_a_step_belongs_in_the_storage_table(tmp_path):
    job = tmp_path / "job.toml"
    job.write_text('[[steps]]\ncommand = "generate"\nout = "g"\nrows = 9\nfeatures = 2\n'
                   'storage-option = ["endpoint_url=x"]\n')
    with pytest.raises(pipeline.PipelineError,
                       match=r"step 1 \(generate\): key 'storage-option' belongs in \[storage\]"):
        load_job(job)


def test_run_storage_options_go_to_every_step_over_the_table(tmp_path):
    job = tmp_path / "job.toml"
    job.write_text('[storage]\nanon = true\nregion = "a"\n'
                   '[[steps]]\ncommand = "generate"\nout = "g"\nrows = 9\nfeatures = 2\n'
                   '[[steps]]\ncommand = "report"\nout = "g"\n')
    _, steps = load_job(job, storage_options={"region": "b"})
    assert [v["storage_options"] for _, v in steps] == [{"anon": True, "region": "b"}] * 2


# --- no secret is ever written -------------------------------------------------------------------

def _written_anywhere(fs, bucket, tmp_path, secrets) -> list[str]:
    """Every object in the bucket and every local file under tmp_path (but the test's own
    input, ``given/``) that holds a secret."""
    fs.invalidate_cache()
    found = [p for p in fs.find(bucket) if any(s.encode() in fs.cat_file(p) for s in secrets)]
    for root, _, names in os.walk(tmp_path):
        if os.path.relpath(root, tmp_path).split(os.sep)[0] == "given":
            continue
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as fh:
                data = fh.read()
            found += [path for s in secrets if s.encode() in data]
    return found


@pytest.mark.parametrize("where", ["options", "environment"])
def test_no_secret_is_written_by_any_command(moto_server, bucket, tmp_path, capsys, where,
                                             monkeypatch):
    if where == "options":
        secrets = [KEY_ID, SECRET]
        opts = ["--storage-option", f"key={KEY_ID}", "--storage-option", f"secret={SECRET}"]
    else:  # the SDK's variables, as a cluster's workers would have them
        secrets = [S3_ENV["AWS_ACCESS_KEY_ID"], S3_ENV["AWS_SECRET_ACCESS_KEY"]]
        opts = []
    monkeypatch.chdir(tmp_path)
    data = write_parquet_files(tmp_path / "given" / "data")
    model = f"{bucket}/model.json"
    feats = ["--features", "f0", "f1", "f2"]
    steps = [
        ["generate", f"{bucket}/gen", *GEN],
        ["report", f"{bucket}/gen"],
        ["train", data, model, "--label", "label", *feats, "--quiet"],
        ["train", data, model, "--label", "label", *feats, "--resume", "--quiet"],
        ["score", data, model, f"{bucket}/scores", "--quiet"],
        ["score", data, model, tmp_path / "scores", "--quiet"],
        ["evaluate", data, model, "--label", "label", "--quiet"],
        ["report", f"{bucket}/scores"],
        ["report", tmp_path / "scores"],
    ]
    for step in steps:
        assert run_cli(*step, *opts) == 0, step
    # the same again through a job file, its options in a [storage] table
    table = "" if where == "environment" else f'[storage]\nkey = "{KEY_ID}"\nsecret = "{SECRET}"\n'
    (tmp_path / "given" / "job.toml").write_text(table + f"""
[[steps]]
command = "generate"
out = "{bucket}/job-gen"
rows = 3000
features = 3
quiet = true

[[steps]]
command = "score"
input = "data"
model = "{model}"
out = "../job-scores"
quiet = true

[[steps]]
command = "report"
out = "../job-scores"
""")
    assert run_cli("run", tmp_path / "given" / "job.toml") == 0
    # and errors: an existing output, an existing model file
    assert run_cli("generate", f"{bucket}/gen", *GEN, *opts) == 2
    assert run_cli("train", data, model, "--label", "label", *feats, "--quiet", *opts) == 2
    out = capsys.readouterr()
    assert "already exists" in out.err
    fs = s3fs_client(moto_server)
    job = _job_record(fs, f"{bucket}/gen")
    if where == "options":  # recorded, redacted
        assert job["storage_options"] == {"key": "<redacted>", "secret": "<redacted>"}
        local = json.loads((tmp_path / "scores" / "_job.json").read_text())
        assert local["storage_options"] == {"key": "<redacted>", "secret": "<redacted>"}
    else:
        assert "storage_options" not in job
    name = bucket.removeprefix("s3://")
    assert {f"{name}/{p}" for p in ("model.json", "gen/_report.html", "scores/_SUCCESS",
                                      "scores/_report.html", "job-gen/_SUCCESS")} <= \
        set(fs.find(bucket))  # what is searched below was written
    assert (tmp_path / "scores" / "_report.html").exists()
    assert (tmp_path / "job-scores" / "_report.html").exists()
    assert _written_anywhere(fs, bucket, tmp_path, secrets) == []
    assert not any(s in out.out + out.err for s in secrets)


def test_no_secret_is_written_with_inputs_on_s3(moto_server, bucket, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    opts = ["--storage-option", f"key={KEY_ID}", "--storage-option", f"secret={SECRET}"]
    model = f"{bucket}/model.json"
    for step in (["generate", f"{bucket}/gen", *GEN],
                 ["train", f"{bucket}/gen", model, "--label", "label", "--quiet"],
                 ["score", f"{bucket}/gen", model, f"{bucket}/scores", "--quiet"],
                 ["transform", f"{bucket}/gen", f"{bucket}/t", "--quiet"],
                 ["evaluate", f"{bucket}/gen", model, "--label", "label", "--quiet"],
                 ["report", f"{bucket}/scores"]):
        assert run_cli(*step, *opts) == 0, step
    fs = s3fs_client(moto_server)
    assert _written_anywhere(fs, bucket, tmp_path, [KEY_ID, SECRET]) == []


def test_a_failed_upload_names_the_object_not_the_local_temporary_file(tmp_path):
    from fsspec.implementations.memory import MemoryFileSystem

    from pipeline.errors import StorageError
    from pipeline.io.object_storage import FsspecStorage

    fs = MemoryFileSystem()

    def refuse(*args, **kwargs):
        raise RuntimeError("access denied")

    fs.put_file = refuse
    local = tmp_path / ".part-00000.parquet.tmp"
    local.write_bytes(b"x")
    with pytest.raises(StorageError) as info:
        FsspecStorage(fs, "memory").put_file(str(local), "/out/part-00000-abc.parquet")
    assert "out/part-00000-abc.parquet: put_file failed" in str(info.value)
    assert str(local) not in str(info.value) and "access denied" in str(info.value)


def test_the_storage_layers_own_key_value_check_does_not_echo_the_item():
    from pipeline.errors import PipelineError
    from pipeline.io.urls import parse_storage_options

    with pytest.raises(PipelineError) as info:
        parse_storage_options(["s3cr3t-token-value"])
    assert "s3cr3t" not in str(info.value)


def test_a_password_inside_an_endpoint_url_is_redacted():
    from pipeline.io.urls import redact

    assert redact({"endpoint_url": "http://minio:pa55w0rd@127.0.0.1:9000/x", "anon": True}) == {
        "endpoint_url": "http://***@127.0.0.1:9000/x", "anon": True}
    assert redact({"endpoint_url": "http://127.0.0.1:9000"}) == {
        "endpoint_url": "http://127.0.0.1:9000"}
