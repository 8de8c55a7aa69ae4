"""Secrets in URLs: a password in a path's user-info, or a credential in its query, is
refused before anything is written, and the secret reaches no file and no message."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli, s3fs_client

import pipeline
from pipeline.errors import PipelineError
from pipeline.io.urls import redact_url, url_has_secret
from pipeline.model.estimator import LogisticModel

SECRET = "Sup3rS3cretPW"
FEATS = ["--label", "label", "--features", "f0", "f1", "f2", "--quiet"]


@pytest.mark.parametrize("url, secret", [
    (f"s3://AKIAKEY:{SECRET}@bucket/data.parquet", True),
    (f"http://user:{SECRET}@host:8000/data.csv", True),
    (f"https://host/data.csv?X-Amz-Signature={SECRET}&X-Amz-Credential=k", True),
    (f"https://acct.blob.core.windows.net/c/data.csv?sv=2020&sig={SECRET}", True),
    (f"file://user:{SECRET}@/tmp/data.csv", True),
    ("abfs://container@account.dfs.core.windows.net/data", False),  # not a secret
    ("http://user@host/data.csv", False),                            # a name, no password
    ("s3://bucket/data.parquet?versionId=3", False),
    ("/tmp/with:colon@at/data.csv", False),                          # a local path
])
def test_the_rule_for_secrets_in_urls(url, secret):
    assert url_has_secret(url) is secret
    if secret:
        assert SECRET not in redact_url(url) and "***" in redact_url(url)
    else:
        assert redact_url(url) == url


def _all_bytes(tmp_path: Path, fs, bucket: str) -> list[tuple[str, bytes]]:
    files = [(str(p), p.read_bytes()) for p in tmp_path.rglob("*") if p.is_file()]
    fs.invalidate_cache()
    files += [(k, fs.cat_file(k)) for k in fs.find(bucket)]
    return files


def test_a_password_in_any_path_is_refused_and_written_nowhere(moto_server, bucket, data_dir,
                                                              tmp_path, capsys):
    fs = s3fs_client(moto_server)
    name = bucket.split("://", 1)[1]
    assert run_cli("transform", data_dir, f"{bucket}/raw", "--quiet") == 0
    assert run_cli("train", data_dir, f"{bucket}/m.json", *FEATS) == 0
    assert run_cli("score", data_dir, f"{bucket}/m.json", f"{bucket}/scored", "--quiet") == 0
    capsys.readouterr()
    secret_bucket = f"s3://AKIAKEY:{SECRET}@{name}"
    local = f"file://me:{SECRET}@{tmp_path}"
    job = tmp_path / "job.toml"
    job.write_text(f'[[steps]]\ncommand = "transform"\ninput = "{secret_bucket}/raw"\n'
                   f'out = "{tmp_path}/job-out"\n')
    runs = [
        ["transform", f"{secret_bucket}/raw", tmp_path / "t1"],
        ["transform", data_dir, f"{secret_bucket}/t2"],
        ["transform", data_dir, f"{local}/t3"],
        ["train", f"{secret_bucket}/raw", tmp_path / "m1.json", *FEATS],
        ["train", data_dir, f"{secret_bucket}/m2.json", *FEATS],
        ["score", data_dir, f"{secret_bucket}/m.json", tmp_path / "s1"],
        ["score", data_dir, f"{bucket}/m.json", f"{secret_bucket}/s2"],
        ["evaluate", f"http://u:{SECRET}@127.0.0.1:1/d.csv", f"{bucket}/m.json",
         "--label", "label"],
        ["report", f"{secret_bucket}/scored"],
        ["run", job],
        ["run", f"{secret_bucket}/job.toml"],
        ["generate", f"{secret_bucket}/gen", "--rows", "100", "--features", "2"],
    ]
    for args in runs:
        quiet = [] if args[0] in ("report", "run") or "--quiet" in args else ["--quiet"]
        assert run_cli(*args, *quiet) == 2, args
        out, err = capsys.readouterr()
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, err)
        assert "--storage-option" in lines[0] and "***@" in lines[0], lines[0]
        assert SECRET not in out + err, (args, out, err)
    written = _all_bytes(tmp_path, fs, name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "job.toml"]
    assert not [k for k, data in written if SECRET.encode() in data
                and not k.endswith("job.toml")]


def test_the_library_refuses_a_password_in_a_url_with_the_same_sentence(data_dir, tmp_path):
    url = f"s3://AKIAKEY:{SECRET}@bucket/data.parquet"
    for call in (lambda: pipeline.read(url), lambda: LogisticModel.load(url),
                 lambda: pipeline.api.transform_files(data_dir, url),
                 lambda: pipeline.api.train_files(data_dir, url, label="label")):
        with pytest.raises(PipelineError) as info:
            call()
        assert SECRET not in str(info.value) and "storage_options" in str(info.value)
        assert "s3://***@bucket/data.parquet" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
