"""One writer per output (the lease), what plain listing readers see at each commit step, and
incomplete outputs refused as input: on a local disk and on S3 (moto on loopback)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import run_cli, wait_until

import pipeline
from pipeline.errors import PipelineError

ROWS = 3000  # 6 row groups of 500: 6 chunks at --blocksize 1


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("one-writer") / "data"
    folder.mkdir()
    rng = np.random.default_rng(7)
    f0 = rng.standard_normal(ROWS)
    t = pa.table({"id": np.arange(ROWS), "f0": f0, "f1": rng.standard_normal(ROWS),
                  "label": (f0 + rng.standard_normal(ROWS) > 0).astype(np.int64)})
    pq.write_table(t, folder / "a.parquet", row_group_size=500)
    return folder


@pytest.fixture(params=["local", "s3"])
def out(request, tmp_path):
    """OUT on a local disk or in a fresh bucket."""
    if request.param == "local":
        return str(tmp_path / "out")
    bucket = request.getfixturevalue("bucket")
    return f"{bucket}/out"


def _flags(temperature):
    return ["--blocksize", "1", "--quiet", "--temperature", str(temperature)]


def _env(**extra):
    return dict(os.environ, **{k: str(v) for k, v in extra.items()})


def _start(data, out, *flags, env):
    return subprocess.Popen([sys.executable, "-m", "pipeline", "transform", str(data), out,
                             *flags], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _kill_at(point, data, out, *flags):
    proc = _start(data, out, *flags, env=_env(PIPELINE_KILL_AT=point))
    proc.communicate(timeout=120)
    assert proc.returncode == -9, (point, proc.returncode)


def _snapshot(out):
    """Every object or file of OUT and beside it, with its bytes (the lease's excepted:
    its heartbeat changes)."""
    if "://" not in out:
        parent = os.path.dirname(out)
        return {os.path.relpath(os.path.join(r, n), parent): open(os.path.join(r, n),
                                                                    "rb").read()
                for r, _, names in os.walk(parent) for n in names}
    fs = s3fs_client_cached()
    bucket = out.split("://", 1)[1].split("/")[0]
    return {p: fs.cat_file(p) for p in fs.find(bucket) if not p.endswith(".pipeline-lock")}


_FS = {}


def s3fs_client_cached():
    import s3fs

    if "fs" not in _FS:
        _FS["fs"] = s3fs.S3FileSystem(skip_instance_cache=True)
    _FS["fs"].invalidate_cache()
    return _FS["fs"]


def plain_readers(out) -> dict[str, tuple[int, float]]:
    """What pyarrow.dataset, dask, Polars and DuckDB read at OUT by listing (not through
    ``_SUCCESS``): (rows, sum of f0) each."""
    import dask.dataframe as dd
    import duckdb
    import polars as pl
    import pyarrow.dataset as ds

    seen = {}
    if "://" in out:
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()  # dask's: no listing cached from before
        fs = s3fs_client_cached()
        key = out.split("://", 1)[1]
        names = [p for p in fs.ls(key, detail=False) if p.endswith(".parquet")]
        if not names:
            return dict.fromkeys(("pyarrow.dataset", "dask", "polars", "duckdb"), (0, 0.0))
        t = ds.dataset(key, filesystem=fs, format="parquet").to_table()
        seen["pyarrow.dataset"] = t
        seen["dask"] = pa.Table.from_pandas(dd.read_parquet(out).compute())
        opts = {"aws_endpoint_url": os.environ["AWS_ENDPOINT_URL"], "aws_allow_http": "true",
                "aws_region": "us-east-1",
                "aws_access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
                "aws_secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"]}
        seen["polars"] = pl.read_parquet(f"{out}/*.parquet", storage_options=opts).to_arrow()
        con = duckdb.connect()
        con.register_filesystem(fs)
        seen["duckdb"] = con.sql(f"select * from read_parquet('{out}/*.parquet')").to_arrow_table()
    else:
        if not os.path.isdir(out) or not any(n.endswith(".parquet") for n in os.listdir(out)):
            return dict.fromkeys(("pyarrow.dataset", "dask", "polars", "duckdb"), (0, 0.0))
        seen["pyarrow.dataset"] = ds.dataset(out, format="parquet").to_table()
        seen["dask"] = pa.Table.from_pandas(dd.read_parquet(out).compute())
        seen["polars"] = pl.read_parquet(f"{out}/*.parquet").to_arrow()
        seen["duckdb"] = duckdb.sql(f"select * from read_parquet('{out}/*.parquet')"
                                    ).to_arrow_table()
    return {k: (t.num_rows, round(float(pc.sum(t["f0"]).as_py()), 6))
            for k, t in seen.items()}


def _view(rows, total):
    return dict.fromkeys(("pyarrow.dataset", "dask", "polars", "duckdb"), (rows, total))


# --- two runs at once --------------------------------------------------------------------------


def _prepare(first, data, out):
    """OUT as the first run finds it: absent (fresh), an older output (--overwrite), or an
    interrupted run of the same job (--resume)."""
    if first == "--overwrite":
        assert run_cli("transform", data, out, *_flags(1)) == 0
    elif first == "--resume":
        _kill_at("part-2", data, out, *_flags(3))


@pytest.mark.parametrize("first", ["fresh", "--overwrite", "--resume"])
def test_a_second_run_while_one_holds_out_exits_2_naming_it_and_touches_nothing(
        first, data, out, tmp_path, capsys):
    """Every pairing of fresh, --overwrite and --resume: the run that holds the lease
    proceeds, each other one exits 2 with one line naming the holder, and the output is
    whole afterwards."""
    _prepare(first, data, out)
    flag = tmp_path / "paused"
    own = [] if first == "fresh" else [first]
    # held where every part is written and nothing committed (the workers are idle)
    step = "before-success" if "://" not in out else "before-copy"
    holder = _start(data, out, *_flags(3), *own,
                    env=_env(PIPELINE_PAUSE_AT=step, PIPELINE_PAUSE_FILE=flag))
    try:
        assert wait_until(flag.exists, timeout=120), holder.communicate()
        before = _snapshot(out)
        for second in ([], ["--overwrite"], ["--resume"]):
            capsys.readouterr()
            assert run_cli("transform", data, out, *_flags(3), *second) == 2, second
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and err[0].startswith("error:"), err
            assert "another run is writing this output" in err[0], err
            assert f"pid {holder.pid} on {socket.gethostname()}, since 20" in err[0], err
            assert _snapshot(out) == before, second
    finally:
        flag.unlink(missing_ok=True)
    _, stderr = holder.communicate(timeout=120)
    assert holder.returncode == 0, stderr
    assert "Traceback" not in stderr
    clean = str(tmp_path / "clean")
    assert run_cli("transform", data, clean, *_flags(3)) == 0
    assert plain_readers(out) == plain_readers(clean)
    assert pipeline.read(out).compute()["f0"].sum() == pytest.approx(
        pipeline.read(clean).compute()["f0"].sum())


# --- SIGKILL at each commit step: plain listing readers ----------------------------------------


def test_sigkill_at_each_commit_step_plain_readers_see_the_old_or_the_new_output(
        data, out, tmp_path):
    """An --overwrite killed at each step of the commit: pyarrow.dataset, dask, Polars and
    DuckDB reading OUT by listing see exactly the old output or exactly the new one (on an
    object store, but inside the one documented window: from the parts' copy until the
    cleanup, both), and --resume leaves exactly the new one."""
    old, new = str(tmp_path / "old"), str(tmp_path / "new")
    assert run_cli("transform", data, old, *_flags(1)) == 0
    assert run_cli("transform", data, new, *_flags(2)) == 0
    old_view, new_view = plain_readers(old), plain_readers(new)
    assert old_view == _view(ROWS, old_view["dask"][1]) and old_view != new_view
    both = _view(2 * ROWS, round(old_view["dask"][1] + new_view["dask"][1], 6))
    local = "://" not in out
    if local:
        steps = {"part-2": old_view, "success-tmp": old_view, "after-success": old_view,
                 "swap-exchanged": new_view}
    else:
        steps = {"part-2": old_view, "before-copy": old_view, "before-success": both,
                 "after-success": both}
    assert run_cli("transform", data, out, *_flags(1)) == 0
    for step, seen in steps.items():
        _kill_at(step, data, out, *_flags(2), "--overwrite")
        view = plain_readers(out)
        if seen is both:
            assert {k: v[0] for k, v in view.items()} == {k: v[0] for k, v in both.items()}
        else:
            assert view == seen, step
        assert run_cli("transform", data, out, *_flags(2), "--resume") == 0, step
        assert plain_readers(out) == new_view, step
        assert run_cli("transform", data, out, *_flags(1), "--overwrite") == 0
        assert plain_readers(out) == old_view


def test_a_killed_fresh_run_on_an_object_store_shows_no_part_to_plain_readers(data, bucket):
    out = f"{bucket}/out"
    _kill_at("before-success", data, out, *_flags(2))  # every part uploaded and completed...
    fs = s3fs_client_cached()
    assert [p for p in fs.find(out.split("://")[1]) if p.endswith(".parquet")]
    _kill_at("part-3", data, f"{bucket}/out2", *_flags(2))  # ...but before that: none
    assert plain_readers(f"{bucket}/out2") == _view(0, 0.0)
    # the parts are S3 multipart uploads to their final names, left unfinished
    name = bucket.split("://")[1]
    uploads = fs.call_s3("list_multipart_uploads", Bucket=name,
                         Prefix="out2/").get("Uploads", [])
    assert len(uploads) >= 3  # (a 4th may have begun when the run was killed)
    assert all(u["Key"].startswith("out2/part-") and u["Key"].endswith(".parquet")
               for u in uploads)
    assert not [p for p in fs.find(f"{name}/out2") if p.endswith(".parquet")]
    assert run_cli("transform", data, f"{bucket}/out2", *_flags(2), "--resume") == 0
    assert plain_readers(f"{bucket}/out2")["duckdb"][0] == ROWS
    # the resumed run kept those recorded (their records name the uploads it completed: 3,
    # or 4 when an upload thread wrote its record before the kill) and left no upload
    # unfinished
    chunks = [json.loads(line) for line in fs.cat(f"{name}/out2/_chunks.jsonl").splitlines()]
    kept = {u["UploadId"] for u in uploads}
    assert len([c for c in chunks if c.get("upload") in kept]) >= 3
    assert fs.call_s3("list_multipart_uploads", Bucket=name).get("Uploads", []) == []


# --- the lease on an object store --------------------------------------------------------------


def _lease(out):
    bucket, key = out.split("://", 1)[1].split("/", 1)
    return f"{bucket}/.{key}.pipeline-lock"


def test_a_lease_whose_heartbeat_is_older_than_the_timeout_is_taken_over(
        data, bucket, monkeypatch, capsys):
    out = f"{bucket}/out"
    fs = s3fs_client_cached()
    now = time.time()
    holder = {"attempt": "a1b2c3", "host": "elsewhere", "pid": 4242, "since": now - 600,
              "heartbeat": now - 30}
    fs.pipe_file(_lease(out), json.dumps(holder).encode())
    monkeypatch.setenv("PIPELINE_LEASE_TIMEOUT", "60")
    assert run_cli("transform", data, out, *_flags(2)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pid 4242 on elsewhere" in err[0], err
    # the heartbeat was 30 s old when written; the run reads it a moment later
    assert re.search(r"last heartbeat 3[0-5] s ago", err[0]) and "60 s is taken over" in err[0], err
    assert fs.find(out.split("://")[1]) == []
    monkeypatch.setenv("PIPELINE_LEASE_TIMEOUT", "20")  # now 30 s late: taken over
    assert run_cli("transform", data, out, *_flags(2)) == 0
    assert pipeline.read(out).compute().shape[0] == ROWS
    assert not fs.exists(_lease(out))  # released at the end


def test_the_holder_renews_its_heartbeat_and_a_run_that_lost_its_lease_does_not_commit(
        data, bucket, tmp_path, capsys):
    out = f"{bucket}/out"
    assert run_cli("transform", data, out, *_flags(1)) == 0
    fs = s3fs_client_cached()
    committed = fs.cat_file(f"{out.split('://')[1]}/_SUCCESS")
    flag = tmp_path / "paused"
    proc = _start(data, out, *_flags(2), "--overwrite",
                  env=_env(PIPELINE_PAUSE_AT="part-1", PIPELINE_PAUSE_FILE=flag,
                           PIPELINE_LEASE_TIMEOUT=2))
    try:
        assert wait_until(flag.exists, timeout=120)
        first = json.loads(fs.cat_file(_lease(out)))["heartbeat"]

        def renewed():
            fs.invalidate_cache()
            return json.loads(fs.cat_file(_lease(out)))["heartbeat"] != first

        assert wait_until(renewed, timeout=60, interval=0.1)
        # another run takes the lease over (as after a heartbeat late by the timeout)
        fs.pipe_file(_lease(out), json.dumps({"attempt": "other", "host": "elsewhere",
                                              "pid": 1, "since": time.time(),
                                              "heartbeat": time.time() + 3600}).encode())
    finally:
        flag.unlink(missing_ok=True)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "lost its lease" in lines[0] and "elsewhere" in lines[0], lines
    assert fs.cat_file(f"{out.split('://')[1]}/_SUCCESS") == committed
    assert pipeline.read(out).compute().shape[0] == ROWS


def test_a_killed_holder_on_this_host_is_taken_over_by_resume_at_once(data, bucket):
    out = f"{bucket}/out"
    _kill_at("part-2", data, out, *_flags(2))
    fs = s3fs_client_cached()
    assert fs.exists(_lease(out))  # left by the killed run, heartbeat fresh
    assert run_cli("transform", data, out, *_flags(2), "--resume") == 0
    assert not fs.exists(_lease(out))


# --- incomplete outputs as input ---------------------------------------------------------------


def test_an_incomplete_output_is_refused_as_input(data, out, tmp_path, capsys):
    _kill_at("part-3", data, out, *_flags(2))
    for target in (str(tmp_path / "next"), f"{out}-next"):
        capsys.readouterr()
        assert run_cli("transform", out, target, "--quiet") == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"error: {out}: incomplete output (no _SUCCESS): finish it with "
                       "--resume"], err
    assert not os.path.exists(tmp_path / "next")
    with pytest.raises(PipelineError, match="incomplete output"):
        pipeline.read(out)
    assert run_cli("transform", data, out, *_flags(2), "--resume") == 0
    assert pipeline.read(out).compute().shape[0] == ROWS


# --- one writer per MODEL ----------------------------------------------------------------------


def test_train_while_another_run_writes_the_model_file_exits_2_and_touches_nothing(
        data, out, capsys):
    from pipeline.io.lease import hold
    from pipeline.io.storage import open_storage

    model = f"{out}-model.json"
    lease = hold(*open_storage(model), model, what="model file")
    try:
        assert run_cli("train", data, model, "--label", "label", "--quiet") == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "another run is writing this model file" in err[0], err
        assert f"pid {os.getpid()}" in err[0]
        assert not open_storage(model)[0].exists(open_storage(model)[1])
    finally:
        lease.release()
    assert run_cli("train", data, model, "--label", "label", "--quiet") == 0
    assert pipeline.LogisticModel.load(model).features_ == ["f0", "f1"]


def test_resume_aborts_the_unfinished_multipart_uploads_of_a_killed_attempt(data, bucket):
    out = f"{bucket}/out"
    _kill_at("part-2", data, out, *_flags(2))
    fs = s3fs_client_cached()
    name = bucket.split("://")[1]
    attempt = fs.ls(f"{name}/out/_pending", detail=False)[0].rsplit("/", 1)[1]
    key = f"out/_pending/{attempt}/part-00004-{attempt}.parquet.staged"
    fs.call_s3("create_multipart_upload", Bucket=name, Key=key)  # as a killed upload leaves
    uploads = fs.call_s3("list_multipart_uploads", Bucket=name).get("Uploads", [])
    # that one, and the killed run's parts: pending uploads to their final names (2 with
    # records, which the resumed run completes; any other was cut short)
    assert key in {u["Key"] for u in uploads} and len(uploads) >= 3
    assert run_cli("transform", data, out, *_flags(2), "--resume") == 0
    assert fs.call_s3("list_multipart_uploads", Bucket=name).get("Uploads", []) == []
    assert pipeline.read(out).compute().shape[0] == ROWS


def test_the_lease_of_a_model_file_named_relative_to_the_working_folder(
        data, tmp_path, monkeypatch, capsys):
    from pipeline.io.lease import hold
    from pipeline.io.storage import LOCAL

    monkeypatch.chdir(tmp_path)
    lease = hold(LOCAL, "model.json", "model.json", what="model file")
    try:
        assert sorted(p.name for p in tmp_path.iterdir()) == [".model.json.pipeline-lock"]
        assert run_cli("train", data, "model.json", "--label", "label", "--quiet") == 2
        assert "another run is writing this model file" in capsys.readouterr().err
    finally:
        lease.release()
    assert run_cli("train", data, "model.json", "--label", "label", "--quiet") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json"]


# --- S3's pending uploads: only this tool's, and gone ones reported ------------------------


def test_a_commit_aborts_only_its_own_pending_uploads(data, bucket):
    """Another program's unfinished uploads under OUT (a file beside the parts, an output in
    a folder below) survive a run's open and cleanup; this tool's dead ones do not."""
    fs = s3fs_client_cached()
    name = bucket.split("://")[1]
    theirs = ["out/notes.txt", "out/sub/part-00000-0123456789ab.parquet"]
    for key in theirs:
        fs.call_s3("create_multipart_upload", Bucket=name, Key=key)
    _kill_at("part-2", data, f"{bucket}/out", *_flags(2))  # leaves an attempt
    dead = "out/part-00007-abcdefabcdef.parquet"  # a part name of another attempt
    fs.call_s3("create_multipart_upload", Bucket=name, Key=dead)
    assert run_cli("transform", data, f"{bucket}/out", *_flags(2), "--resume") == 0
    left = {u["Key"] for u in fs.call_s3("list_multipart_uploads",
                                         Bucket=name).get("Uploads", [])}
    assert left == set(theirs)
    assert pipeline.read(f"{bucket}/out").compute().shape[0] == ROWS


def test_a_pending_upload_gone_before_the_commit_is_one_error_and_nothing_committed(
        data, bucket, tmp_path):
    """Held just before its uploads are completed, a run's uploads are aborted (a lifecycle
    rule, another run that took the lease over): exit 1, one line naming the part, no
    _SUCCESS; --resume uploads them again and commits."""
    fs = s3fs_client_cached()
    name = bucket.split("://")[1]
    flag = tmp_path / "paused"
    proc = _start(data, f"{bucket}/out", *_flags(2),
                  env=_env(PIPELINE_PAUSE_AT="before-copy", PIPELINE_PAUSE_FILE=flag))
    try:
        assert wait_until(flag.exists, timeout=120), proc.communicate()
        uploads = fs.call_s3("list_multipart_uploads", Bucket=name).get("Uploads", [])
        assert uploads
        for u in uploads:
            fs.call_s3("abort_multipart_upload", Bucket=name, Key=u["Key"],
                       UploadId=u["UploadId"])
    finally:
        flag.unlink(missing_ok=True)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    # S3 answers NoSuchUpload ("its pending upload is gone"); moto's server answers 500
    assert "/out/part-" in lines[0] and ("its pending upload is gone" in lines[0] or
                                         "completing its upload failed" in lines[0]), lines
    fs.invalidate_cache()
    assert not fs.exists(f"{name}/out/_SUCCESS")
    assert run_cli("transform", data, f"{bucket}/out", *_flags(2), "--resume") == 0
    assert pipeline.read(f"{bucket}/out").compute().shape[0] == ROWS


# --- OUT on an object store opened while the input is planned ----------------------------------


def _locks(bucket) -> list[str]:
    fs = s3fs_client_cached()
    return [p for p in fs.find(bucket.removeprefix("s3://")) if p.endswith(".pipeline-lock")]


def _planning_sees_the_lease(monkeypatch, bucket, fail: bool):
    """Planning waits (up to 30 s) for OUT's lease to appear on the store: it appears only
    where OUT is opened while the input is planned. With ``fail``, the input is refused."""
    from pipeline.io import sources

    seen = []
    real = sources._plan_parquet

    def planning(*args, **kwargs):
        seen.append(wait_until(lambda: bool(_locks(bucket)), timeout=30))
        if fail:
            raise PipelineError("a refused input", path="in")
        return real(*args, **kwargs)

    monkeypatch.setattr(sources, "_plan_parquet", planning)
    return seen


def test_outs_lease_and_listing_are_taken_while_the_input_is_planned(
        data, bucket, tmp_path, monkeypatch):
    seen = _planning_sees_the_lease(monkeypatch, bucket, fail=False)
    out = f"{bucket}/out"
    assert run_cli("transform", data, out, *_flags(1)) == 0
    assert seen == [True]
    assert _locks(bucket) == []  # given up at the end
    monkeypatch.undo()
    clean = str(tmp_path / "clean")
    assert run_cli("transform", data, clean, *_flags(1)) == 0
    assert plain_readers(out) == plain_readers(clean)


def test_a_refused_input_gives_up_outs_early_lease_and_leaves_nothing(
        data, bucket, monkeypatch, capsys):
    seen = _planning_sees_the_lease(monkeypatch, bucket, fail=True)
    assert run_cli("transform", data, f"{bucket}/out", *_flags(1)) == 2
    assert seen == [True]
    assert "a refused input" in capsys.readouterr().err
    fs = s3fs_client_cached()
    assert fs.find(bucket.removeprefix("s3://")) == []  # no lease, no OUT


def test_a_refused_input_is_the_error_even_where_another_run_holds_out(
        data, bucket, tmp_path, capsys):
    """The input's error comes first, as when OUT was opened after planning; the other
    run's lease is untouched."""
    out = f"{bucket}/out"
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.csv").write_text("x,y\n1,2\n")
    (bad / "b.csv").write_text("x,z\n1,2\n")  # another header
    flag = tmp_path / "paused"
    holder = _start(data, out, *_flags(3),
                    env=_env(PIPELINE_PAUSE_AT="before-copy", PIPELINE_PAUSE_FILE=flag))
    try:
        assert wait_until(flag.exists, timeout=120), holder.communicate()
        lock = _locks(bucket)
        before = _snapshot(out)
        capsys.readouterr()
        assert run_cli("transform", bad, out, "--quiet") == 2
        err = capsys.readouterr().err
        assert "header differs" in err and "another run" not in err, err
        assert _locks(bucket) == lock and _snapshot(out) == before
    finally:
        flag.unlink(missing_ok=True)
    assert holder.wait(120) == 0


def test_an_out_holding_a_glob_inputs_files_is_refused_without_taking_its_lease(
        bucket, tmp_path, monkeypatch, capsys):
    """INPUT ``s3://b/out/*.csv`` and OUT ``s3://b/out``: OUT contains the input, which
    only the listing shows; it is refused before OUT's lease is taken or OUT listed."""
    from pipeline.io import commit_store

    (tmp_path / "a.csv").write_text("x\n1.5\n")
    s3fs_client_cached().put(str(tmp_path / "a.csv"), f"{bucket}/out/a.csv".removeprefix("s3://"))
    held = []
    real = commit_store.hold
    monkeypatch.setattr(commit_store, "hold", lambda *a, **k: held.append(a) or real(*a, **k))
    before = s3fs_client_cached().find(bucket.removeprefix("s3://"))
    assert run_cli("transform", f"{bucket}/out/*.csv", f"{bucket}/out", "--quiet") == 2
    assert "contains the input" in capsys.readouterr().err
    assert held == [] and _locks(bucket) == []
    assert s3fs_client_cached().find(bucket.removeprefix("s3://")) == before  # the input
