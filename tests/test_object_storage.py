"""Object storage: the commands on s3:// against a real S3 API (moto's server on loopback)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
from conftest import read_output, run_cli, s3fs_client

GEN = ["--rows", "6000", "--features", "3", "--files", "4", "--quiet"]


def _read_s3_output(fs, url):
    """An output read as a reader that trusts ``_SUCCESS`` reads it: the manifest's parts."""
    fs.invalidate_cache()
    manifest = json.loads(fs.cat_file(f"{url}/_SUCCESS"))
    tables = [pq.read_table(io.BytesIO(fs.cat_file(f"{url}/{p['part']}")))
              for p in manifest["parts"]]
    return manifest, pa.concat_tables(tables)


def _names(fs, url):
    fs.invalidate_cache()
    return sorted(p[len(url.removeprefix("s3://")):].lstrip("/") for p in fs.find(url))


def _only_manifest_objects(fs, url, extra=()):
    manifest = json.loads(fs.cat_file(f"{url}/_SUCCESS"))
    listed = [p["part"] for p in manifest["parts"]]
    assert _names(fs, url) == sorted(["_SUCCESS", "_chunks.jsonl", "_job.json", *extra,
                                      *listed])
    return manifest


def _kill_at(point, *args):
    env = dict(os.environ, PIPELINE_KILL_AT=point)
    proc = subprocess.run([sys.executable, "-m", "pipeline", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, (point, proc.returncode, proc.stderr)


def test_generate_to_s3_equals_local_and_commits_by_manifest(moto_server, bucket, tmp_path):
    fs = s3fs_client(moto_server)
    url = f"{bucket}/gen"
    assert run_cli("generate", url, *GEN) == 0
    assert run_cli("generate", tmp_path / "local", *GEN) == 0
    manifest, table = _read_s3_output(fs, url)
    assert table.equals(read_output(tmp_path / "local"))
    _only_manifest_objects(fs, url, extra=["_truth.json"])
    for p in manifest["parts"]:  # each part listed with its size and ETag
        info = fs.info(f"{url}/{p['part']}")
        assert info["size"] == p["size"] and info["ETag"].strip('"') == p["etag"]
    records = [json.loads(line) for line in fs.cat_file(f"{url}/_chunks.jsonl").splitlines()]
    assert sorted(r["chunk"] for r in records) == [0, 1, 2, 3]


def test_existing_s3_output_without_flags_is_refused_and_untouched(moto_server, bucket, capsys):
    fs = s3fs_client(moto_server)
    url = f"{bucket}/gen"
    assert run_cli("generate", url, *GEN) == 0
    before = {p: fs.info(p)["ETag"] for p in fs.find(url)}
    assert run_cli("generate", url, *GEN) == 2
    assert "already exists" in capsys.readouterr().err
    assert {p: fs.info(p)["ETag"] for p in fs.find(url)} == before


def test_overwrite_refuses_a_prefix_that_is_not_an_output(moto_server, bucket, capsys):
    fs = s3fs_client(moto_server)
    fs.pipe_file(f"{bucket}/mine/thesis.tex", b"years of work")
    assert run_cli("generate", f"{bucket}/mine", *GEN, "--overwrite") == 2
    assert "not touched" in capsys.readouterr().err
    assert _names(fs, f"{bucket}/mine") == ["thesis.tex"]


def test_sigkill_on_s3_then_resume_redoes_only_missing_parts(moto_server, bucket, tmp_path):
    fs = s3fs_client(moto_server)
    url = f"{bucket}/gen"
    assert run_cli("generate", tmp_path / "clean", *GEN) == 0
    _kill_at("part-2", "generate", url, *GEN, "--threads-per-worker", "1")
    fs.invalidate_cache()
    assert not fs.exists(f"{url}/_SUCCESS")
    parts = {p: fs.info(p)["ETag"] for p in fs.find(url) if "/part-" in p}
    assert len(parts) >= 2
    assert run_cli("generate", url, *GEN, "--resume") == 0
    manifest, table = _read_s3_output(fs, url)
    assert manifest["resumed_parts"] >= 2
    assert table.equals(read_output(tmp_path / "clean"))
    for p, etag in parts.items():  # complete parts were kept, not uploaded again
        if p.rsplit("/", 1)[-1] in {q["part"] for q in manifest["parts"]}:
            assert fs.info(p)["ETag"] == etag
    _only_manifest_objects(fs, url, extra=["_truth.json"])


def test_killed_overwrite_on_s3_never_leaves_neither_output(moto_server, bucket, tmp_path):
    fs = s3fs_client(moto_server)
    url = f"{bucket}/gen"
    assert run_cli("generate", url, *GEN) == 0
    _, old = _read_s3_output(fs, url)
    assert run_cli("generate", tmp_path / "new", *GEN[:-1], "--seed", "7", "--quiet") == 0
    new = read_output(tmp_path / "new")
    # killed before its commit: the old output is whole and is still the output
    _kill_at("before-success", "generate", url, *GEN, "--seed", "7", "--overwrite")
    assert _read_s3_output(fs, url)[1].equals(old)
    # killed between the commit and the cleanup: the new output is the output
    _kill_at("after-success", "generate", url, *GEN, "--seed", "7", "--overwrite")
    assert _read_s3_output(fs, url)[1].equals(new)
    assert any("_pending/" in p for p in fs.find(url))
    assert run_cli("generate", url, *GEN, "--seed", "7", "--resume") == 0
    assert _read_s3_output(fs, url)[1].equals(new)
    _only_manifest_objects(fs, url, extra=["_truth.json"])


def test_failed_overwrite_on_s3_leaves_the_old_output_whole(moto_server, bucket, capsys):
    fs = s3fs_client(moto_server)
    url = f"{bucket}/gen"
    assert run_cli("generate", url, *GEN) == 0
    before = {p: fs.info(p)["ETag"] for p in fs.find(url)}
    assert run_cli("generate", url, "--rows", "6000", "--features", "3", "--files", "9000",
                   "--overwrite", "--quiet") == 2
    assert {p: fs.info(p)["ETag"] for p in fs.find(url)} == before
