"""Storage options (--storage-option, [storage], storage_options=) reach the file system of a
URL, are checked by one rule, and no secret among them is ever written."""

from __future__ import annotations

import json

import pytest
import s3fs
from conftest import run_cli, s3fs_client, write_parquet_files

import pipeline
from pipeline.execution import ExecOptions
from pipeline.jobs import load_job

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


def test_library_storage_options_reach_the_file_system(moto_server, bucket, no_endpoint_env,
                                                       tmp_path):
    opts = dict(no_endpoint_env, key=KEY_ID, secret=SECRET)
    manifest = pipeline.generate(f"{bucket}/lib", 3000, 3, files=2,
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
        pipeline.generate("memory://g", 10, 2, options=ExecOptions(storage_options={"a": 1}),
                          storage_options={"a": 2})


# --- one rule, and errors that show no secret ----------------------------------------------------

def test_nested_storage_options_are_refused_without_showing_a_secret():
    with pytest.raises(pipeline.PipelineError) as err:
        ExecOptions(storage_options={"endpoint_url": "http://x", "secret": SECRET,
                                     "client_kwargs": {"aws_secret_access_key": SECRET}})
    assert str(err.value) == (
        "storage_options must be a table of option names to strings, numbers or booleans; "
        "got {'endpoint_url': 'http://x', 'secret': '<redacted>', 'client_kwargs': <dict>}")


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
