"""Object storage: the commands on s3:// against a real S3 API (moto's server on loopback)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
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
    # the parts are multipart uploads to their final names, not completed: no object yet
    assert not [p for p in fs.find(url) if "/part-" in p]
    bucket_name = bucket.split("://")[1]
    uploads = {u["Key"].rsplit("/", 1)[-1]: u["UploadId"] for u in fs.call_s3(
        "list_multipart_uploads", Bucket=bucket_name, Prefix="gen/").get("Uploads", [])}
    assert len(uploads) >= 2
    assert run_cli("generate", url, *GEN, "--resume") == 0
    manifest, table = _read_s3_output(fs, url)
    assert manifest["resumed_parts"] >= 2
    assert table.equals(read_output(tmp_path / "clean"))
    # the recorded parts were kept, their uploads completed, not uploaded again
    records = [json.loads(line) for line in fs.cat(f"{url}/_chunks.jsonl").splitlines()]
    assert len([r for r in records if uploads.get(r["part"]) == r.get("upload")]) >= 2
    assert all(fs.info(f"{url}/{q['part']}")["ETag"].strip('"') == q["etag"]
               for q in manifest["parts"])
    assert fs.call_s3("list_multipart_uploads", Bucket=bucket_name).get("Uploads", []) == []
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


# --- reading from the bucket: transform, train, score, evaluate --------------------------------


def _upload_folder(fs, local, url):
    for p in sorted(local.iterdir()):
        fs.put_file(str(p), f"{url}/{p.name}")


def test_transform_s3_to_s3_equals_local_for_parquet_csv_and_gzip(moto_server, bucket,
                                                                     tmp_path):
    import pyarrow.csv as pacsv
    from conftest import make_table

    fs = s3fs_client(moto_server)
    local = {"pq": tmp_path / "pq", "csv": tmp_path / "csv", "gz": tmp_path / "gz"}
    for folder in local.values():
        folder.mkdir()
    for k in range(3):
        t = make_table(3000, seed=k, start=k * 3000)
        pq.write_table(t, local["pq"] / f"p{k}.parquet", row_group_size=700)
        pacsv.write_csv(t, local["csv"] / f"p{k}.csv")
        with pa.CompressedOutputStream(str(local["gz"] / f"p{k}.csv.gz"), "gzip") as out:
            pacsv.write_csv(t, out)
    for kind, folder in local.items():
        _upload_folder(fs, folder, f"{bucket}/in-{kind}")
        assert run_cli("transform", folder, tmp_path / f"out-{kind}", "--blocksize", "40KiB",
                       "--quiet") == 0
        url = f"{bucket}/out-{kind}"
        assert run_cli("transform", f"{bucket}/in-{kind}", url, "--blocksize", "40KiB",
                       "--quiet") == 0
        manifest, table = _read_s3_output(fs, url)
        assert table.equals(read_output(tmp_path / f"out-{kind}")), kind
        assert len(manifest["parts"]) >= 3 and manifest["input"][0]["path"].startswith("s3://")
        _only_manifest_objects(fs, url)
        # an output folder on s3 is an input too: its manifest's parts, nothing else
        assert run_cli("transform", url, f"{bucket}/again-{kind}", "--columns", "f0",
                       "--quiet") == 0
        assert _read_s3_output(fs, f"{bucket}/again-{kind}")[0]["rows"] == 9000


def test_train_score_evaluate_read_from_s3(moto_server, bucket, tmp_path, capsys):
    fs = s3fs_client(moto_server)
    assert run_cli("generate", tmp_path / "d", "--rows", "20000", "--features", "4",
                   "--files", "2", "--quiet") == 0
    _upload_folder(fs, tmp_path / "d", f"{bucket}/d")
    assert run_cli("train", tmp_path / "d", tmp_path / "local.json", "--label", "label",
                   "--quiet") == 0
    assert run_cli("train", f"{bucket}/d", tmp_path / "s3.json", "--label", "label",
                   "--quiet") == 0
    a = json.loads((tmp_path / "local.json").read_text())
    b = json.loads((tmp_path / "s3.json").read_text())
    assert a["coef"] == b["coef"] and a["intercept"] == b["intercept"]
    assert run_cli("score", f"{bucket}/d", tmp_path / "s3.json", f"{bucket}/scored",
                   "--quiet") == 0
    assert run_cli("score", tmp_path / "d", tmp_path / "s3.json", tmp_path / "scored",
                   "--quiet") == 0
    assert _read_s3_output(fs, f"{bucket}/scored")[1].equals(read_output(tmp_path / "scored"))
    capsys.readouterr()
    assert run_cli("evaluate", f"{bucket}/d", tmp_path / "s3.json", "--label", "label") == 0
    s3_eval = json.loads(capsys.readouterr().out)
    assert run_cli("evaluate", tmp_path / "d", tmp_path / "s3.json", "--label", "label") == 0
    assert json.loads(capsys.readouterr().out) == s3_eval and s3_eval["rows"] == 20000


def test_transform_killed_on_s3_resumes_to_a_clean_run(moto_server, bucket, tmp_path):
    fs = s3fs_client(moto_server)
    assert run_cli("generate", tmp_path / "d", "--rows", "30000", "--features", "3",
                   "--files", "6", "--quiet") == 0
    _upload_folder(fs, tmp_path / "d", f"{bucket}/d")
    assert run_cli("transform", tmp_path / "d", tmp_path / "clean", "--quiet") == 0
    url = f"{bucket}/t"
    _kill_at("part-3", "transform", f"{bucket}/d", url, "--quiet", "--threads-per-worker", "1",
             "--blocksize", "1")
    assert run_cli("transform", f"{bucket}/d", url, "--resume", "--quiet", "--blocksize",
                   "1") == 0
    manifest, table = _read_s3_output(fs, url)
    assert manifest["resumed_parts"] >= 3
    assert table.equals(read_output(tmp_path / "clean"))
    _only_manifest_objects(fs, url)


def test_dask_workers_with_no_shared_disk_run_a_job_on_the_bucket(moto_server, bucket,
                                                                   tmp_path, monkeypatch):
    """A real scheduler and two workers, each in its own empty folder: input and output live
    only in the bucket."""
    from conftest import DaskProcesses

    fs = s3fs_client(moto_server)
    assert run_cli("generate", tmp_path / "d", "--rows", "20000", "--features", "3",
                   "--files", "4", "--quiet") == 0
    _upload_folder(fs, tmp_path / "d", f"{bucket}/d")
    assert run_cli("transform", tmp_path / "d", tmp_path / "clean", "--quiet") == 0
    cluster = DaskProcesses(workers=2, cwd=tmp_path / "workers")
    try:
        assert run_cli("transform", f"{bucket}/d", f"{bucket}/t", "--scheduler",
                       cluster.address, "--blocksize", "1", "--quiet") == 0
        # local paths relative to the client's folder reach workers that run elsewhere
        monkeypatch.chdir(tmp_path)
        assert run_cli("transform", "d", "rel-out", "--scheduler", cluster.address,
                       "--blocksize", "1", "--quiet") == 0
    finally:
        cluster.close()
    manifest, table = _read_s3_output(fs, f"{bucket}/t")
    assert table.equals(read_output(tmp_path / "clean"))
    records = [json.loads(x) for x in fs.cat_file(f"{bucket}/t/_chunks.jsonl").splitlines()]
    assert len(records) == 4 and all(r["worker"].startswith("tcp://") for r in records)
    assert not any((tmp_path / "workers").rglob("*.parquet"))  # nothing on the workers' disks
    assert read_output(tmp_path / "rel-out").equals(read_output(tmp_path / "clean"))


# --- a flaky endpoint: a proxy in front of moto that answers chosen requests with HTTP 500 -----


def _through_proxy(moto_server, monkeypatch):
    import s3fs
    from s3_proxy import S3Proxy

    proxy = S3Proxy(moto_server.endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
    s3fs.S3FileSystem.clear_instance_cache()
    return proxy


def test_transient_http_errors_are_retried(moto_server, bucket, tmp_path, monkeypatch):
    fs = s3fs_client(moto_server)
    assert run_cli("generate", tmp_path / "clean", *GEN) == 0
    proxy = _through_proxy(moto_server, monkeypatch)
    try:
        # a part's upload (S3: UploadPart, then CompleteMultipartUpload at the commit)
        proxy.fail(lambda kind, path: kind == "PUT part" and "/part-" in path, 2)
        proxy.fail(lambda kind, path: kind == "multipart complete" and "/part-" in path, 1)
        proxy.fail(lambda kind, path: kind == "PUT" and path.endswith("/_SUCCESS"), 1)
        proxy.fail(lambda kind, path: kind == "LIST", 1)
        assert run_cli("generate", f"{bucket}/gen", *GEN) == 0
        assert all(f[1] == 0 for f in proxy.failures)  # every injected error was met
    finally:
        proxy.close()
    assert _read_s3_output(fs, f"{bucket}/gen")[1].equals(read_output(tmp_path / "clean"))


def test_a_store_that_keeps_failing_is_one_error_line_and_the_old_output_whole(
        moto_server, bucket, monkeypatch, capsys):
    fs = s3fs_client(moto_server)
    url = f"{bucket}/gen"
    assert run_cli("generate", url, *GEN) == 0
    before = {p: fs.info(p)["ETag"] for p in fs.find(url) if "/part-" in p or
              p.endswith(("_SUCCESS", "_job.json"))}
    proxy = _through_proxy(moto_server, monkeypatch)
    try:
        proxy.fail(lambda kind, path: kind == "PUT" and path.endswith("/_SUCCESS"), 10_000)
        capsys.readouterr()
        assert run_cli("generate", url, *GEN, "--seed", "3", "--overwrite") == 1
    finally:
        proxy.close()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "_SUCCESS" in err[0], err
    assert "Traceback" not in err[0]
    fs.invalidate_cache()
    after = {p: fs.info(p)["ETag"] for p in fs.find(url) if p in before}
    assert after == before  # the old output: every object as it was, still the output


def test_a_tasks_logged_form_shows_no_secret(moto_server, bucket, tmp_path):
    """What a Dask worker logs of a failed task is its repr: no storage option value."""
    from pipeline.io.parts import PartTarget
    from pipeline.io.sources import plan
    from pipeline.run.tasks import file_tasks

    fs = s3fs_client(moto_server)
    assert run_cli("generate", tmp_path / "d", *GEN) == 0
    _upload_folder(fs, tmp_path / "d", f"{bucket}/d")
    secret = "do-not-log-this-8c1f"
    source = plan(f"{bucket}/d", storage_options={"secret": secret, "key": "testing-key",
                                                  "endpoint_url": moto_server.endpoint})
    task = file_tasks(source)[0]
    target = PartTarget(f"{bucket}/t", "parquet", source.storage, "a1")
    for text in (repr(task), str(task), repr(target), repr(source.reader())):
        assert secret not in text and "testing-key" not in text


def test_a_worker_that_cannot_see_the_input_says_which_worker_and_path(tmp_path, capsys):
    """memory:// lives in the client's process: the workers, like machines with no shared
    disk, cannot see it."""
    import fsspec
    from conftest import DaskProcesses

    assert run_cli("generate", tmp_path / "d", *GEN) == 0
    mem = fsspec.filesystem("memory")
    for p in sorted((tmp_path / "d").glob("part-*")):
        mem.pipe_file(f"/only-here/{p.name}", p.read_bytes())
    cluster = DaskProcesses(workers=1, cwd=tmp_path / "workers")
    try:
        capsys.readouterr()
        assert run_cli("transform", "memory://only-here", tmp_path / "out", "--scheduler",
                       cluster.address, "--quiet") == 2
    finally:
        cluster.close()
        mem.rm("/only-here", recursive=True)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "only-here/part-0000" in err[0] and "no such file" in err[0]
    assert "on worker tcp://127.0.0.1:" in err[0]
    assert not (tmp_path / "out").exists()


def test_resume_after_a_commit_publishes_the_committed_attempts_records(moto_server, bucket,
                                                                         tmp_path):
    """Two attempts with the same identity: an --overwrite killed mid-run, then another
    --overwrite killed after its commit. --resume publishes the records of the attempt that
    _SUCCESS lists, not the other's."""
    fs = s3fs_client(moto_server)
    url = f"{bucket}/gen"
    assert run_cli("generate", url, *GEN) == 0
    new = [*GEN, "--seed", "7", "--overwrite", "--threads-per-worker", "1"]
    _kill_at("part-1", "generate", url, *new)
    _kill_at("after-success", "generate", url, *new)
    fs.invalidate_cache()
    assert len({p.split("/_pending/")[1].split("/")[0]
                for p in fs.find(url) if "/_pending/" in p}) == 2
    assert run_cli("generate", url, *GEN, "--seed", "7", "--threads-per-worker", "1",
                   "--resume") == 0
    manifest = _only_manifest_objects(fs, url, extra=["_truth.json"])
    records = [json.loads(line) for line in fs.cat_file(f"{url}/_chunks.jsonl").splitlines()]
    assert sorted(r["part"] for r in records) == sorted(p["part"] for p in manifest["parts"])


def test_killed_overwrite_on_s3_leaves_the_old_outputs_extra_files(moto_server, bucket):
    """_truth.json belongs to its output: an --overwrite killed before its commit leaves the
    old one (the old output is the output); after the commit and --resume, the new one."""
    fs = s3fs_client(moto_server)
    url = f"{bucket}/gen"
    assert run_cli("generate", url, *GEN) == 0
    old_truth = fs.cat_file(f"{url}/_truth.json")
    _kill_at("before-success", "generate", url, *GEN, "--seed", "7", "--overwrite")
    fs.invalidate_cache()
    assert fs.cat_file(f"{url}/_truth.json") == old_truth
    _kill_at("after-success", "generate", url, *GEN, "--seed", "7", "--overwrite")
    assert run_cli("generate", url, *GEN, "--seed", "7", "--resume") == 0
    fs.invalidate_cache()
    new_truth = json.loads(fs.cat_file(f"{url}/_truth.json"))
    assert new_truth != json.loads(old_truth)
    assert run_cli("generate", tmp := f"{bucket}/check", *GEN, "--seed", "7") == 0
    assert new_truth == json.loads(fs.cat_file(f"{tmp}/_truth.json"))
    _only_manifest_objects(fs, url, extra=["_truth.json"])


def test_bad_input_on_a_cluster_leaves_no_part_of_its_attempt(moto_server, bucket, tmp_path,
                                                              capsys):
    """A chunk fails on bad input while others still upload on the workers: the failed run
    waits for them before it deletes its attempt, so the prefix is left empty and the
    corrected rerun needs no flag."""
    import numpy as np
    import pyarrow.csv as pacsv

    fs = s3fs_client(moto_server)
    data = tmp_path / "d"
    data.mkdir()
    lines = ['"f0","f1"'] + ["0.5,0.5"] * 4000  # pyarrow's header: quoted
    lines[2500] = "0.5,oops"
    (data / "a.csv").write_text("\n".join(lines) + "\n")
    rng = np.random.default_rng(0)
    big = pa.table({"f0": rng.standard_normal(1_500_000), "f1": rng.standard_normal(1_500_000)})
    pacsv.write_csv(big, data / "b.csv")
    url = f"{bucket}/out"
    from conftest import DaskProcesses

    cluster = DaskProcesses(workers=2)  # started here: its workers see moto's credentials
    try:
        flags = ["--scheduler", cluster.address, "--blocksize", "4MiB", "--columns", "f0",
                 "f1", "--quiet"]
        assert run_cli("transform", data, url, *flags) == 2
        assert "oops" in capsys.readouterr().err
        fs.invalidate_cache()
        assert fs.find(url) == []
        (data / "a.csv").write_text("\n".join(lines).replace("oops", "1.5") + "\n")
        assert run_cli("transform", data, url, *flags) == 0
    finally:
        cluster.close()


def test_reads_retry_a_transient_error_and_a_failing_read_is_one_error_line(
        moto_server, bucket, tmp_path, monkeypatch, capsys):
    """GETs (obstore's on S3) retry HTTP 500s as botocore does; one that keeps failing is
    one error line naming the object, exit 1, in seconds, and nothing is left behind."""
    fs = s3fs_client(moto_server)
    assert run_cli("generate", tmp_path / "d", *GEN) == 0
    _upload_folder(fs, tmp_path / "d", f"{bucket}/d")
    assert run_cli("transform", tmp_path / "d", tmp_path / "local", "--quiet") == 0
    proxy = _through_proxy(moto_server, monkeypatch)
    try:
        proxy.fail(lambda kind, path: kind.startswith("GET") and "/d/part-" in path, 2)
        assert run_cli("transform", f"{bucket}/d", tmp_path / "ok", "--quiet") == 0
        assert all(f[1] == 0 for f in proxy.failures)
        proxy.fail(lambda kind, path: kind.startswith("GET") and "/d/part-" in path, 10_000)
        capsys.readouterr()
        assert run_cli("transform", f"{bucket}/d", tmp_path / "bad", "--quiet") == 1
    finally:
        proxy.close()
    assert read_output(tmp_path / "ok").equals(read_output(tmp_path / "local"))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "/d/part-" in err[0], err
    assert not (tmp_path / "bad").exists()


def test_a_store_without_multipart_uploads_stages_copies_and_resumes(tmp_path, monkeypatch):
    """memory:// (as GCS or Azure): parts staged under _pending/ and copied at the commit;
    a run whose upload failed leaves its attempt, and --resume keeps what it recorded."""
    import fsspec

    from pipeline.io.object_storage import FsspecStorage

    assert run_cli("generate", tmp_path / "clean", *GEN) == 0
    url = "memory://staged-gen"
    real = FsspecStorage.put_file
    calls = []

    def flaky(self, local, path):
        calls.append(path)
        if len(calls) >= 3:  # the third upload and any after it
            raise OSError("injected")
        return real(self, local, path)

    monkeypatch.setattr(FsspecStorage, "put_file", flaky)
    assert run_cli("generate", url, *GEN, "--threads-per-worker", "1") == 1
    fs = fsspec.filesystem("memory")
    staged = [p for p in fs.find("/staged-gen") if p.endswith(".parquet.staged")]
    assert len(staged) == 2 and all("/_pending/" in p for p in staged)
    assert not fs.exists("/staged-gen/_SUCCESS")
    monkeypatch.setattr(FsspecStorage, "put_file", real)
    assert run_cli("generate", url, *GEN, "--resume", "--threads-per-worker", "1") == 0
    manifest = json.loads(fs.cat("/staged-gen/_SUCCESS"))
    assert manifest["resumed_parts"] == 2
    names = sorted(p.rsplit("/", 1)[-1] for p in fs.find("/staged-gen"))
    assert names == sorted([q["part"] for q in manifest["parts"]] +
                           ["_SUCCESS", "_chunks.jsonl", "_job.json", "_truth.json"])
    fs.rm("/staged-gen", recursive=True)


def test_bad_input_midway_leaves_no_part_on_the_local_disk(moto_server, bucket, tmp_path,
                                                             monkeypatch, capsys):
    """Chunks on threads upload their parts from the local disk on their own threads: when
    one chunk fails on bad input while others have finished, no part is left in the
    temporary folder, nothing in OUT, and no pending upload."""
    import tempfile

    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(5)
    for i in range(8):
        f0 = [f"{v:.6f}" for v in rng.normal(size=3000)]
        if i == 6:
            f0[2500] = "oops"
        rows = "".join(f"{a},{b:.6f}\n" for a, b in zip(f0, rng.normal(size=3000), strict=True))
        (folder / f"p{i}.csv").write_text("f0,f1\n" + rows)
    tmp = tmp_path / "localtmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    capsys.readouterr()
    assert run_cli("transform", folder, f"{bucket}/bad", "--columns", "f0", "f1", "--blocksize",
                   "40KB", "--threads-per-worker", "4", "--quiet") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "p6.csv" in err[0] and "f0" in err[0], err
    assert list(tmp.iterdir()) == []
    fs = s3fs_client(moto_server)
    fs.invalidate_cache()
    name = bucket.split("://")[1]
    assert fs.find(f"{name}/bad") == []
    assert fs.call_s3("list_multipart_uploads", Bucket=name).get("Uploads", []) == []
