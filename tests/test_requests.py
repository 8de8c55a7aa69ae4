"""Requests to an object store, counted by a proxy in front of moto that waits before each
answer (a real store's latency): no HEAD per input file, at most two GETs per small Parquet
file, many requests in flight while planning and reading."""

from __future__ import annotations

import json
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import read_output, run_cli, s3fs_client

import pipeline

FILES = 24


@pytest.fixture
def small_files(moto_server, bucket, tmp_path):
    """FILES small Parquet files (2,000 rows x 3 columns each), on disk and in the bucket."""
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(7)
    for i in range(FILES):
        pq.write_table(pa.table({"a": rng.normal(size=2000), "b": rng.normal(size=2000),
                                 "k": np.arange(2000) + i * 2000}), folder / f"f{i:03d}.parquet")
    fs = s3fs_client(moto_server)
    fs.put(str(folder) + "/", f"{bucket}/in/", recursive=True)
    return folder, f"{bucket}/in"


@pytest.fixture
def proxy(moto_server, monkeypatch):
    import s3fs
    from s3_proxy import S3Proxy

    proxy = S3Proxy(moto_server.endpoint, delay=0.02)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
    s3fs.S3FileSystem.clear_instance_cache()
    yield proxy
    proxy.close()


@pytest.fixture(params=["obstore", "s3fs"])
def client(request, monkeypatch):
    """Which client makes the GETs: obstore, or s3fs as where obstore is not installed."""
    if request.param == "s3fs":
        from pipeline.io import rust_reads

        monkeypatch.setattr(rust_reads, "s3_reader", lambda fs: None)
        monkeypatch.setattr(rust_reads, "botocore_settings", lambda: None)  # no early_s3
        monkeypatch.setattr(rust_reads, "env_settings", lambda: None)
    return request.param


def _input_requests(proxy, kind: str) -> list[str]:
    return [path for k, path, _ in proxy.log if k == kind and "/in/" in path]


def test_planning_many_small_files_lists_once_and_reads_only_the_first_footer(small_files,
                                                                              proxy):
    from pipeline.io.sources import plan

    _, url = small_files
    source = plan(url)
    assert len(source.paths) == FILES
    assert _input_requests(proxy, "HEAD") == []  # sizes and ETags come from the listing
    gets = _input_requests(proxy, "GET") + _input_requests(proxy, "GET range")
    assert len(gets) == 1 and gets[0].endswith("/f000.parquet")  # the schema: the first file
    assert all(p.row_groups is None for c in source.chunks for p in c.pieces)
    assert source.total_rows is None  # known as the chunks run


def test_planning_fewer_files_fetches_each_footer_once_concurrently(small_files, proxy,
                                                                     monkeypatch):
    from pipeline.io import parquet_plan
    from pipeline.io.sources import plan

    monkeypatch.setattr(parquet_plan, "LISTED_FILES", FILES + 1)
    _, url = small_files
    source = plan(url)
    assert _input_requests(proxy, "HEAD") == []
    assert len(_input_requests(proxy, "GET range")) == FILES  # one GET per footer
    assert proxy.peak > 1
    assert source.total_rows == FILES * 2000


def test_a_packed_chunk_reads_each_small_file_in_one_get_concurrently(small_files, proxy,
                                                                       monkeypatch):
    """As a Dask worker does, which did not plan: no file's bytes kept from planning."""
    from pipeline.io import bodies
    from pipeline.io.sources import plan
    from pipeline.run.tasks import file_tasks

    monkeypatch.setattr(bodies, "WHOLE_AT_PLANNING", 0)
    folder, url = small_files
    source = plan(url)
    assert len(source.chunks) == 1  # the small files packed into one chunk
    proxy.reset()
    table = file_tasks(source)[0].read()
    gets = _input_requests(proxy, "GET") + _input_requests(proxy, "GET range")
    assert len(gets) == FILES and len(set(gets)) == FILES  # one GET per file
    assert _input_requests(proxy, "HEAD") == []
    assert proxy.peak > 1
    local = pa.concat_tables(pq.read_table(p) for p in sorted(folder.iterdir()))
    assert table.equals(local)


def test_a_small_file_planned_and_read_in_one_process_is_one_get(small_files, proxy):
    from pipeline.io.sources import plan
    from pipeline.run.tasks import file_tasks

    folder, url = small_files
    source = plan(url)
    table = file_tasks(source)[0].read()
    gets = _input_requests(proxy, "GET") + _input_requests(proxy, "GET range")
    assert len(gets) == FILES and len(set(gets)) == FILES
    local = pa.concat_tables(pq.read_table(p) for p in sorted(folder.iterdir()))
    assert table.equals(local)


def test_transform_makes_at_most_two_gets_per_small_file_and_no_head(small_files, proxy,
                                                                     tmp_path, client):
    folder, url = small_files
    assert run_cli("transform", folder, tmp_path / "local", "--quiet") == 0
    proxy.reset()
    assert run_cli("transform", url, tmp_path / "remote", "--quiet",
                   "--io-concurrency", "8") == 0
    assert _input_requests(proxy, "HEAD") == []
    gets = _input_requests(proxy, "GET") + _input_requests(proxy, "GET range")
    assert len(gets) <= 2 * FILES
    assert 1 < proxy.peak <= 8
    assert read_output(tmp_path / "remote").equals(read_output(tmp_path / "local"))


def test_io_concurrency_is_checked(small_files, capsys):
    _, url = small_files
    assert run_cli("transform", url, "out", "--io-concurrency", "0") == 2
    assert "--io-concurrency must be an integer >= 1" in capsys.readouterr().err


def test_io_concurrency_from_the_library_bounds_the_requests_in_flight(small_files, proxy,
                                                                        tmp_path):
    from pipeline.api import transform_files
    from pipeline.config.exec_options import ExecOptions

    folder, url = small_files
    transform_files(url, tmp_path / "out", options=ExecOptions(io_concurrency=3, quiet=True))
    assert 1 < proxy.peak <= 3
    assert _input_requests(proxy, "HEAD") == []


@pytest.fixture
def small_csv(moto_server, bucket, tmp_path):
    """FILES small CSV files (2,000 rows x 3 columns; one has a quoted line end, one CRLF
    line ends), on disk and in the bucket."""
    import pyarrow.csv as pacsv

    folder = tmp_path / "csv"
    folder.mkdir()
    rng = np.random.default_rng(8)
    for i in range(FILES):
        path = folder / f"f{i:03d}.csv"
        pacsv.write_csv(pa.table({"a": rng.normal(size=2000), "k": np.arange(2000) + i * 2000,
                                  "s": [f"w{j}" for j in range(2000)]}), path)
        if i == 3:
            path.write_bytes(path.read_bytes().replace(b'"w7"', b'"w\n7"'))
        if i == 5:
            path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    fs = s3fs_client(moto_server)
    fs.put(str(folder) + "/", f"{bucket}/csv/", recursive=True)
    return folder, f"{bucket}/csv"


def _csv_requests(proxy, kind: str) -> list[str]:
    return [path for k, path, _ in proxy.log if k == kind and "/csv/" in path]


def test_csv_planning_fetches_each_small_file_once_concurrently_and_reads_from_it(
        small_csv, proxy):
    from pipeline.io.sources import plan
    from pipeline.run.tasks import file_tasks

    folder, url = small_csv
    source = plan(url)
    gets = _csv_requests(proxy, "GET") + _csv_requests(proxy, "GET range")
    assert sorted(gets) == sorted(set(gets)) and len(gets) == FILES  # one GET per file
    assert _csv_requests(proxy, "HEAD") == []
    assert proxy.peak > 1
    assert len(source.chunks) == 1
    proxy.reset()
    table = file_tasks(source)[0].read()
    assert _csv_requests(proxy, "GET") + _csv_requests(proxy, "GET range") == []  # kept
    local = plan(str(folder))  # (a plan gives up what an earlier one kept)
    assert table.equals(file_tasks(local)[0].read())
    assert table.column("s")[3 * 2000 + 7].as_py() == "w\n7"  # the quoted line end


def test_a_small_csv_files_table_from_planning_is_used_where_its_types_are_planned(
        moto_server, bucket, tmp_path, monkeypatch):
    """Planning parses each small file whole (its types from all its rows) and keeps the
    table: its chunk parses again only the files whose own types are not the planned ones
    (here integers and an empty column where the plan says float64), and reads what a local
    disk reads."""
    import pyarrow.csv as pacsv

    from pipeline.io.sources import plan
    from pipeline.run.tasks import file_tasks

    folder = tmp_path / "mixed"
    folder.mkdir()
    n = 16000  # over 192 KiB a file: three samples, parsed as one (all numbers)
    for i in range(6):
        a = [f"{j}" if i == 2 else f"{j}.5" for j in range(n)]
        b = ["" if i == 4 else f"{j * 0.25}" for j in range(n)]
        (folder / f"f{i}.csv").write_text("a,b\n" + "".join(
            f"{x},{y}\n" for x, y in zip(a, b, strict=True)))
    s3fs_client(moto_server).put(str(folder) + "/", f"{bucket}/mixed/", recursive=True)
    source = plan(f"{bucket}/mixed")
    assert source.csv_types == {"a": pa.float64(), "b": pa.float64()}
    parses = []
    real = pacsv.read_csv
    monkeypatch.setattr(pacsv, "read_csv", lambda *a, **k: parses.append(1) or real(*a, **k))
    table = file_tasks(source)[0].read()
    assert len(parses) == 2  # f2 (integers) and f4 (an empty column) only
    monkeypatch.undo()
    assert table.equals(file_tasks(plan(str(folder)))[0].read())
    assert table.column("a")[2 * n + 3].as_py() == 3.0 and table.column("a")[3].as_py() == 3.5
    assert table.column("b")[4 * n].as_py() is None and table.num_rows == 6 * n


def test_a_column_of_0_and_1_then_true_and_false_is_typed_alike_on_s3_and_on_a_disk(
        moto_server, bucket, tmp_path):
    """pyarrow reads 0 and 1 as bool where a whole file also holds true and false, but a
    sample of 0 and 1 alone as int64: the file fetched whole is typed sample by sample too,
    as on a disk (not bool from one parse of it all)."""
    from pipeline.io.sources import plan

    folder = tmp_path / "flags"
    folder.mkdir()
    n = 30000
    rows = [f"{j * 0.5},{j % 2 if j > n // 4 else ('true', 'false')[j % 2]}"
            for j in range(n)]
    (folder / "f.csv").write_text("a,flag\n" + "\n".join(rows) + "\n")
    s3fs_client(moto_server).put(str(folder) + "/", f"{bucket}/flags/", recursive=True)
    local = plan(str(folder)).csv_types
    assert plan(f"{bucket}/flags").csv_types == local
    assert local["a"] == pa.float64() and local["flag"] != pa.bool_()


def test_a_lone_quote_in_a_small_csv_file_is_the_same_error_on_s3_as_on_a_disk(
        moto_server, bucket, tmp_path, capsys):
    """A small file's bytes kept from planning are viewed, not copied, by its chunk: its
    quotes are still counted there (a lone one is the error a disk gives), and a file whose
    quotes pair up is read whole."""
    from pipeline.io.formats import quote_count

    text = b'x,s\n0.5,ab"c\n0.25,d\n'
    assert quote_count(text) == quote_count(memoryview(text)[4:]) == 1
    assert quote_count(memoryview(text), stop_at_one=True) == 1
    assert quote_count(memoryview(b"x\n1\n")) == 0
    folder = tmp_path / "quotes"
    folder.mkdir()
    (folder / "a.csv").write_bytes(text)
    (folder / "b.csv").write_bytes(b'x,s\n0.5,"q ""r"""\n0.25,d\n')
    s3fs_client(moto_server).put(str(folder) + "/", f"{bucket}/quotes/", recursive=True)
    errors = []
    for where in (folder / "a.csv", f"{bucket}/quotes/a.csv"):
        assert run_cli("transform", where, tmp_path / "out", "--quiet") == 2
        errors.append(capsys.readouterr().err.strip())
        assert not (tmp_path / "out").exists()
    assert errors[0].replace(str(folder), f"{bucket}/quotes") == errors[1]
    assert "near byte 4" in errors[1] and errors[1].count("\n") == 0
    assert run_cli("transform", f"{bucket}/quotes/b.csv", tmp_path / "b", "--quiet") == 0
    assert read_output(tmp_path / "b")["s"].to_pylist() == ['q "r"', "d"]


def test_later_files_parsed_with_the_types_so_far_are_typed_as_on_a_disk(
        moto_server, bucket, tmp_path, monkeypatch, capsys, proxy):
    """Small files fetched whole are parsed with the number types of the files merged
    before them (cheaper than inferring): where a value does not parse so, or the types
    merged since would take the file's own inferred types otherwise, the file is typed by
    its own rows. Columns that turn from int to float, from float to text and back to int,
    stay empty in some files, or hold an int beyond 2**53: the plan and the output are a
    local disk's, whatever the requests in flight."""
    from pipeline.io import csv_plan
    from pipeline.io.sources import plan

    folder = tmp_path / "drift"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(24):
        n = 9000 if i % 5 == 0 else 300  # (over 192 KiB: three samples parsed as one)
        cols = {"a": rng.normal(size=n).round(6),
                "b": np.arange(n) + i if i < 8 else rng.normal(size=n),
                "c": ([0.5] * n if i == 0 else ["true"] * n if i == 1 else np.arange(n)),
                "d": [None] * n if i % 3 else rng.normal(size=n),
                "e": [2**53 + 1 if i == 20 else 7] * n,
                "t": [f"w{j}" for j in range(n)]}
        pa.csv.write_csv(pa.table(cols), folder / f"f{i:03d}.csv")
    s3fs_client(moto_server).put(str(folder) + "/", f"{bucket}/drift/", recursive=True)
    local = plan(str(folder))
    assert local.csv_types["b"] == pa.float64() and local.csv_types["c"] == pa.int64()
    seen = []
    alike = csv_plan._typed_alike
    monkeypatch.setattr(csv_plan, "_typed_alike",
                        lambda hinted, types: seen.append(alike(hinted, types)) or seen[-1])
    for concurrency in (1, 3, 32):
        remote = plan(f"{bucket}/drift", io_concurrency=concurrency)
        assert remote.csv_types == local.csv_types and remote.schema == local.schema
    assert True in seen  # files were parsed with the types so far
    # each file typed so, typed again by its own rows (as where the merge since differs):
    # from the bytes kept, no second GET, the same plan
    monkeypatch.setattr(csv_plan, "_typed_alike",
                        lambda hinted, types: seen.append("again") or False)
    proxy.reset()
    remote = plan(f"{bucket}/drift", io_concurrency=3)
    assert remote.csv_types == local.csv_types and "again" in seen
    gets = [path for kind, path, _ in proxy.log if kind.startswith("GET")]
    assert sorted(gets) == sorted(set(gets)) and len(gets) == 24
    errors = []  # "c" holds 0.5 in its first file, where the plan says int64
    for where in (folder, f"{bucket}/drift"):
        assert run_cli("transform", where, tmp_path / "out", "--columns", "a", "b", "d",
                       "--quiet", "--io-concurrency", "3") == 2
        errors.append(capsys.readouterr().err.replace(str(folder), f"{bucket}/drift"))
        assert not (tmp_path / "out").exists()  # nothing left
    assert errors[0] == errors[1] and "value '0.5' is not int64" in errors[0]
    for where, name in ((folder, "local"), (f"{bucket}/drift", "s3")):
        assert run_cli("transform", where, tmp_path / name, "--columns", "a", "b", "d",
                       "--dtype", "c=string", "--quiet", "--io-concurrency", "3") == 0
    s3 = read_output(tmp_path / "s3")
    assert s3.equals(read_output(tmp_path / "local")) and s3.num_rows == 5 * 9000 + 19 * 300


def test_a_file_typed_with_a_hint_is_typed_again_where_the_merge_since_differs():
    from pipeline.io.csv_plan import _typed_alike

    f64, i64 = pa.float64(), pa.int64()
    assert _typed_alike({"x": f64}, {"x": f64}) and _typed_alike({"x": i64}, {"x": i64})
    assert _typed_alike({"x": i64}, {"x": f64})  # int64 or null rows merge into float64
    assert not _typed_alike({"x": f64}, {"x": i64})  # int64 rows would keep it int64
    assert not _typed_alike({"x": f64}, {"x": pa.string()})  # (text gives way to either)
    assert not _typed_alike({"x": i64}, {"x": pa.string()})
    assert _typed_alike({}, {"x": pa.string()})


def test_a_csv_file_up_to_1_mib_is_typed_alike_on_s3_and_on_a_disk(moto_server, bucket,
                                                                     tmp_path, capsys):
    """0.5 MB with a text column and one odd value in a numeric one: typed sample by sample
    (three that hold every record) on both, so the odd value is the reader's one error."""
    from pipeline.io.sources import plan

    folder = tmp_path / "text"
    folder.mkdir()
    rows = [f"{j * 0.5},name{j}" for j in range(30000)]
    rows[27000] = "oops,name27000"
    (folder / "t.csv").write_text("a,s\n" + "\n".join(rows) + "\n")
    s3fs_client(moto_server).put(str(folder) + "/", f"{bucket}/text/", recursive=True)
    types = {"a": pa.float64(), "s": pa.string()}
    assert plan(f"{bucket}/text").csv_types == plan(str(folder)).csv_types == types
    for where in (folder, f"{bucket}/text"):
        capsys.readouterr()
        assert run_cli("transform", where, tmp_path / "out", "--quiet") == 2
        err = capsys.readouterr().err
        assert "column 'a'" in err and "row 27001" in err and "'oops'" in err, err
        assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_a_csv_chunk_on_a_worker_fetches_its_pieces_concurrently(small_csv, proxy,
                                                                  monkeypatch):
    """As a Dask worker does, which did not plan: no file's bytes kept from planning."""
    from pipeline.io import bodies
    from pipeline.io.sources import plan
    from pipeline.run.tasks import file_tasks

    folder, url = small_csv
    source = plan(url)
    bodies.drop_all()
    proxy.reset()
    table = file_tasks(source)[0].read()
    gets = _csv_requests(proxy, "GET") + _csv_requests(proxy, "GET range")
    assert len(gets) == FILES and len(set(gets)) == FILES
    assert proxy.peak > 1
    assert table.equals(file_tasks(plan(str(folder)))[0].read())


def test_csv_transform_s3_equals_local_with_at_most_two_gets_per_file(small_csv, proxy,
                                                                      tmp_path, client):
    folder, url = small_csv
    assert run_cli("transform", folder, tmp_path / "local", "--quiet") == 0
    proxy.reset()
    assert run_cli("transform", url, tmp_path / "remote", "--quiet") == 0
    assert _csv_requests(proxy, "HEAD") == []
    gets = _csv_requests(proxy, "GET") + _csv_requests(proxy, "GET range")
    assert len(gets) <= 2 * FILES
    assert read_output(tmp_path / "remote").equals(read_output(tmp_path / "local"))


def test_s3_reads_go_through_obstore_with_the_s3fs_clients_own_settings(small_files, proxy):
    """The GETs are obstore's (Rust) where its settings map: the same endpoint (the proxy
    counts them), credentials and bytes; a missing object is still FileNotFoundError."""
    from pipeline.io.rust_reads import s3_reader
    from pipeline.io.sources import plan

    folder, url = small_files
    source = plan(url)
    storage = source.storage
    assert callable(storage._reader)  # obstore's reader
    name = source.paths[0]
    body = storage.read_range(name, 0, storage.size(name))
    assert body == (folder / name.rsplit("/", 1)[1]).read_bytes()
    assert proxy.log[-1][0] == "GET range"  # through the proxy: the client's own endpoint
    with pytest.raises(FileNotFoundError):
        storage.read_range(name + ".gone", 0, 10)
    import s3fs

    paying = s3fs.S3FileSystem(requester_pays=True)
    assert s3_reader(paying) is None  # settings obstore would not honour: s3fs reads
    extra = s3fs.S3FileSystem(s3_additional_kwargs={"SSECustomerAlgorithm": "AES256"})
    assert s3_reader(extra) is None
    import pickle

    # a task's copy is the store opened again where it runs: its settings found there
    copy = pickle.loads(pickle.dumps(storage))
    assert type(copy) is type(storage) and copy._settings == storage._settings
    assert copy.read_range(name, 0, 8) == body[:8]


def test_a_later_files_other_schema_is_one_error_when_read_and_nothing_is_left(
        small_files, moto_server, bucket, tmp_path, capsys):
    """Planned from the listing, a file's own footer is checked when its chunk reads it: the
    same one error as at planning, exit 2, and a fresh OUT is not left behind."""
    fs = s3fs_client(moto_server)
    odd = tmp_path / "odd.parquet"
    pq.write_table(pa.table({"a": np.zeros(3), "b": ["x", "y", "z"],
                             "k": np.arange(3)}), odd)
    fs.put(str(odd), f"{bucket}/in/f017.parquet")
    capsys.readouterr()
    assert run_cli("transform", f"{bucket}/in", f"{bucket}/out", "--quiet",
                   "--blocksize", "64KiB") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert "f017.parquet" in err[0] and "schema differs from" in err[0]
    assert "column 'b'" in err[0]
    fs.invalidate_cache()
    assert fs.find(f"{bucket}/out") == []


def test_a_chunk_waiting_for_a_thread_is_fetched_ahead_then_read_without_a_request(
        small_files, proxy):
    from pipeline.io import bodies, fetching
    from pipeline.io.sources import plan
    from pipeline.run.tasks import file_tasks

    folder, url = small_files
    tasks = file_tasks(plan(url, blocksize=200_000))
    assert len(tasks) >= 3
    bodies.drop_all()
    tasks[2].prefetch()
    tasks[2].prefetch()  # once only
    assert len(fetching._AHEAD) == 1
    next(iter(fetching._AHEAD.values())).result()
    assert proxy.peak > 1
    proxy.reset()
    table = tasks[2].read()
    assert proxy.log == []  # its bytes were fetched ahead
    assert fetching._AHEAD == {}
    names = sorted({p.path.rsplit("/", 1)[1] for p in tasks[2].chunk.pieces})
    assert table.equals(pa.concat_tables(pq.read_table(folder / n) for n in names))


def test_chunks_asked_ahead_beyond_two_start_as_soon_as_one_is_taken(small_files, proxy):
    """Two chunks' bytes are held ahead at most; a third asked meanwhile waits its turn and
    starts when a running chunk takes its own; one read before its turn is fetched there."""
    from pipeline.io import bodies, fetching
    from pipeline.io.sources import plan
    from pipeline.run.tasks import file_tasks

    folder, url = small_files
    tasks = file_tasks(plan(url, blocksize=100_000))
    assert len(tasks) >= 5
    bodies.drop_all()
    for task in tasks[:4]:
        task.prefetch()
    key = [fetching._chunk_key(t.chunk) for t in tasks]
    assert list(fetching._AHEAD) == key[:2] and list(fetching._WAITING) == key[2:4]
    first = tasks[0].read()  # takes its bytes: the third chunk's fetch starts
    assert list(fetching._AHEAD) == [key[1], key[2]] and list(fetching._WAITING) == [key[3]]
    for fetch in list(fetching._AHEAD.values()):
        fetch.result()
    proxy.reset()
    fourth = tasks[3].read()  # its turn not come: fetched here, and no longer waiting
    assert fetching._WAITING == {}
    assert sorted(_input_requests(proxy, "GET range")) == sorted(
        "/" + p.path.removeprefix("s3://") for p in tasks[3].chunk.pieces)
    for task, table in ((tasks[0], first), (tasks[3], fourth)):
        names = sorted({p.path.rsplit("/", 1)[1] for p in task.chunk.pieces})
        assert table.equals(pa.concat_tables(pq.read_table(folder / n) for n in names))
    fetching.drop_ahead()
    assert fetching._AHEAD == {} and fetching._WAITING == {}


def test_an_object_gone_after_planning_is_named_in_the_one_error(small_files, proxy,
                                                                moto_server, bucket):
    """Planned from the listing, a chunk holds many files: the error names the one gone."""
    from pipeline.errors import PipelineError
    from pipeline.io import bodies
    from pipeline.io.sources import plan
    from pipeline.run.tasks import file_tasks

    _, url = small_files
    tasks = file_tasks(plan(url))
    bodies.drop_all()
    s3fs_client(moto_server).rm(f"{bucket}/in/f009.parquet")
    with pytest.raises(PipelineError, match=r"f009\.parquet: cannot read \(no such file\)"):
        for task in tasks:
            task.read()


def test_obstore_takes_only_settings_it_honours():
    import s3fs

    from pipeline.io.rust_reads import _PUBLIC_S3, s3_reader

    assert _PUBLIC_S3.fullmatch("s3.amazonaws.com")
    assert _PUBLIC_S3.fullmatch("s3.eu-west-1.amazonaws.com")
    assert _PUBLIC_S3.fullmatch("s3-us-west-2.amazonaws.com")
    assert not _PUBLIC_S3.fullmatch("bucket.vpce-0a1b.s3.us-east-1.vpce.amazonaws.com")
    assert not _PUBLIC_S3.fullmatch("s3-fips.dualstack.us-east-1.amazonaws.com")
    styled = s3fs.S3FileSystem(config_kwargs={"s3": {"addressing_style": "virtual"}})
    assert s3_reader(styled) is None  # botocore's settings stay botocore's


def test_an_empty_csv_object_is_one_error_naming_it_and_nothing_is_left(
        small_csv, moto_server, bucket, tmp_path, capsys):
    fs = s3fs_client(moto_server)
    fs.pipe_file(f"{bucket}/csv/f999.csv", b"")
    capsys.readouterr()
    assert run_cli("transform", f"{bucket}/csv", f"{bucket}/out", "--quiet") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "f999.csv" in err[0], err
    assert "no header line" in err[0]
    fs.invalidate_cache()
    assert fs.find(f"{bucket}/out") == []


def _output_parts(proxy, kind: str) -> list[str]:
    return [path for k, path, _ in proxy.log if k == kind and "/out/part-" in path]


def test_s3_parts_are_pending_uploads_completed_at_the_commit_no_copy_no_head(
        small_files, proxy, bucket, moto_server, tmp_path):
    """Each part: one multipart upload to its final name (start, one part) while the run
    goes on, completed at the commit; no staged copy, no HEAD per part; nothing pending
    after; the output equals the same job's on a local disk."""
    folder, url = small_files
    assert run_cli("transform", folder, tmp_path / "local", "--quiet", "--blocksize",
                   "200KB") == 0
    proxy.reset()
    assert run_cli("transform", url, f"{bucket}/out", "--quiet", "--blocksize", "200KB") == 0
    parts = len([p for p in (tmp_path / "local").iterdir() if p.suffix == ".parquet"])
    assert parts > 2
    for kind in ("multipart start", "PUT part", "multipart complete"):
        assert len(_output_parts(proxy, kind)) == parts, kind
    assert proxy.counts.get("COPY", 0) == 0
    assert proxy.counts.get("multipart abort", 0) == 0
    assert _output_parts(proxy, "HEAD") == [] and _output_parts(proxy, "PUT") == []
    # each complete came after every part was uploaded and recorded
    log = [k for k, path, _ in proxy.log]
    first_complete = log.index("multipart complete")
    assert max(i for i, k in enumerate(log) if k == "PUT part") < first_complete
    fs = s3fs_client(moto_server)
    name = bucket.split("://")[1]
    assert fs.call_s3("list_multipart_uploads", Bucket=name).get("Uploads", []) == []
    remote = pipeline.read(f"{bucket}/out").compute().reset_index(drop=True)
    assert remote.equals(pipeline.read(tmp_path / "local").compute().reset_index(drop=True))


def test_a_lease_written_moments_ago_is_released_by_one_delete_an_older_one_compared_first(
        small_files, proxy, bucket, moto_server, monkeypatch):
    """The commit renews the lease just before it: its release is one DELETE, no HEAD. A
    lease this run wrote seconds ago may have been taken over since (by a run given a shorter
    timeout, say): it is compared (HEAD) first, and another run's is left."""
    from pipeline.io.lease import hold
    from pipeline.io.storage import open_storage

    _, url = small_files
    proxy.reset()
    assert run_cli("transform", url, f"{bucket}/out", "--quiet") == 0
    on_lease = [k for k, path, _ in proxy.log if path.endswith("/.out.pipeline-lock")]
    assert on_lease == ["PUT", "PUT"]  # taken, renewed at the commit; no HEAD
    fs = s3fs_client(moto_server)
    name = bucket.split("://")[1]
    assert not fs.exists(f"{name}/.out.pipeline-lock")
    storage, key = open_storage(f"{bucket}/other")
    for written_ago, kept, timeout in ((0, False, "120"), (10, True, "120"), (2, True, "8")):
        monkeypatch.setenv("PIPELINE_LEASE_TIMEOUT", timeout)  # 8 s: fresh for 2 s only
        lease = hold(storage, key, "other")
        lease._written -= written_ago
        fs.pipe_file(f"{name}/.other.pipeline-lock", b'{"attempt": "another run"}')
        proxy.reset()
        lease.release()
        assert fs.exists(f"{name}/.other.pipeline-lock") == kept
        # (obstore deletes one object by the batch request)
        assert [k for k, *_ in proxy.log] == (["HEAD"] if kept else ["DELETE (batch)"])
        fs.rm(f"{name}/.other.pipeline-lock") if kept else None
        fs.invalidate_cache()


def test_a_part_upload_that_keeps_failing_is_one_error_and_leaves_nothing(
        small_files, proxy, bucket, moto_server, tmp_path, capsys, monkeypatch):
    """An upload on the upload threads fails (after the client's retries): one error line,
    exit 1, no object and no pending upload left for a fresh OUT beyond the attempt kept for
    --resume, and no part left on the local temporary disk."""
    import tempfile

    _, url = small_files
    tmp = tmp_path / "localtmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    proxy.fail(lambda kind, path: kind == "PUT part" and "part-00002-" in path, 10_000)
    capsys.readouterr()
    assert run_cli("transform", url, f"{bucket}/out", "--quiet", "--blocksize", "200KB") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "part-00002-" in err[0], err
    assert list(tmp.iterdir()) == []
    fs = s3fs_client(moto_server)
    fs.invalidate_cache()
    name = bucket.split("://")[1]
    assert not [p for p in fs.find(f"{name}/out") if p.endswith(".parquet")]
    assert not fs.exists(f"{name}/out/_SUCCESS")
    # the failed upload was aborted; the others (recorded, or cut short) are the attempt's,
    # completed by --resume or aborted by the next run
    proxy.failures.clear()
    assert run_cli("transform", url, f"{bucket}/out", "--quiet", "--blocksize", "200KB",
                   "--resume") == 0
    assert fs.call_s3("list_multipart_uploads", Bucket=name).get("Uploads", []) == []
    assert len(pipeline.read(f"{bucket}/out").compute()) == FILES * 2000


def test_a_part_larger_than_one_request_is_uploaded_in_parts_and_completed_whole(
        moto_server, bucket, tmp_path, monkeypatch):
    """put_pending: invisible until complete_pending; parts of PART_BYTES, the last shorter;
    the object whole after, with S3's multipart ETag."""
    import hashlib

    from pipeline.io import multipart
    from pipeline.io.storage import open_storage

    monkeypatch.setattr(multipart, "PART_BYTES", 5 * 2**20)  # S3's smallest part
    data = np.random.default_rng(3).bytes(12 * 2**20 + 123)
    local = tmp_path / "big.bin"
    local.write_bytes(data)
    storage, key = open_storage(f"{bucket}/big.bin")
    rec = multipart.put_pending(storage, key, str(local))
    assert rec["size"] == len(data) and len(rec["upload_parts"]) == 3
    assert not storage.exists(key)
    assert multipart.list_pending(storage, storage.parent(key)) == {key: {rec["upload"]}}
    (etag,) = multipart.complete_pending(storage, [key], [rec])
    digests = b"".join(hashlib.md5(data[i:i + 5 * 2**20]).digest()
                       for i in range(0, len(data), 5 * 2**20))
    assert etag == f"{hashlib.md5(digests).hexdigest()}-3"
    assert storage.read_range(key, 0, len(data)) == data
    assert multipart.list_pending(storage, storage.parent(key)) == {}


def test_a_chunk_parses_its_first_files_while_its_last_one_downloads(small_files, proxy,
                                                                     monkeypatch):
    """The last file's GET is held back by the proxy: the chunk has parsed the files before
    it meanwhile (they are not waited for all together), then reads the last one when it
    comes."""
    import threading

    from pipeline.io import bodies, reading
    from pipeline.io.sources import plan
    from pipeline.run.tasks import file_tasks

    _, url = small_files
    (task,) = file_tasks(plan(url, blocksize=64 << 20))  # one chunk of all FILES files
    bodies.drop_all()
    last = f"f{FILES - 1:03d}.parquet"
    release = proxy.hold(lambda kind, path: kind.startswith("GET") and path.endswith(last))
    parsed: list[str] = []
    first_parsed = threading.Event()
    real = reading._read_piece

    def spy(source, fmt, piece, *args):
        out = real(source, fmt, piece, *args)
        parsed.append(piece.path.rsplit("/", 1)[-1])
        first_parsed.set()
        return out

    monkeypatch.setattr(reading, "_read_piece", spy)
    result = {}
    reader = threading.Thread(target=lambda: result.setdefault("table", task.read()))
    reader.start()
    try:
        assert first_parsed.wait(60)
        assert last not in parsed and parsed[0] == "f000.parquet"
    finally:
        release.set()
    reader.join(60)
    assert parsed[-1] == last and len(parsed) == FILES
    assert result["table"].num_rows == FILES * 2000


def test_opening_a_new_output_lists_it_in_one_request(small_files, proxy, bucket,
                                                      moto_server):
    """An absent OUT is listed by one LIST (its HEAD alongside), not listed again by s3fs."""
    _, url = small_files
    out = f"{bucket}/fresh"
    assert run_cli("transform", url, out, "--quiet") == 0
    listed = [path for kind, path, _ in proxy.log
              if kind == "LIST" and "prefix=fresh" in path and "uploads" not in path]
    assert len(listed) == 1
    manifest = json.loads(s3fs_client(moto_server).cat_file(f"{out}/_SUCCESS"))
    assert sum(p["rows"] for p in manifest["parts"]) == FILES * 2000


@pytest.mark.parametrize("planned_here", [True, False])
def test_a_large_file_is_read_in_coalesced_ranges_without_a_head(moto_server, bucket,
                                                                  tmp_path, proxy, client,
                                                                  monkeypatch, planned_here):
    """A file above the small-file size: its row groups' column chunks in ranged GETs (one
    per coalesced range, through obstore where it reads), the size from the plan, no HEAD,
    as where it was planned so on a worker that only has the plan."""
    from pipeline.io import bodies, fetching, footers, rust_reads
    from pipeline.io.sources import plan
    from pipeline.run.tasks import file_tasks

    monkeypatch.setattr(bodies, "WHOLE_AT_PLANNING", 0)
    monkeypatch.setattr(fetching, "SMALL_FILE", 0)
    opened = []

    class Counted(rust_reads.RangeFile):
        def __init__(self, *args) -> None:
            opened.append(args)
            super().__init__(*args)

    monkeypatch.setattr(rust_reads, "RangeFile", Counted)
    rng = np.random.default_rng(3)
    table = pa.table({"a": rng.normal(size=60_000), "b": rng.normal(size=60_000),
                      "k": np.arange(60_000)})
    local = tmp_path / "big.parquet"
    pq.write_table(table, local, row_group_size=20_000)
    s3fs_client(moto_server).put(str(local), f"{bucket}/big/f.parquet")
    source = plan(f"{bucket}/big", blocksize=1)
    assert len(source.chunks) == 3  # a row group each
    if not planned_here:
        footers._FOOTERS.clear()  # a Dask worker's process: the plan alone
    proxy.reset()
    read = [file_tasks(source)[i].read() for i in range(3)]
    assert pa.concat_tables(read).equals(table)
    assert [r for r in proxy.log if r[0] == "HEAD"] == []
    gets = [r for r in proxy.log if r[0] == "GET range"]
    # each chunk: its row group's columns, coalesced (and the footer where not planned here)
    assert len(gets) == (3 if planned_here else 6)
    assert len(opened) == (3 if client == "obstore" else 0)  # obstore's reads where it reads


@pytest.fixture
def shrinkable(moto_server, bucket, tmp_path, monkeypatch):
    """A Parquet object of three row groups read as a large file (ranged GETs), and the
    function that replaces it with a much smaller one; (its folder's URL, that function)."""
    from pipeline.io import bodies, fetching

    monkeypatch.setattr(bodies, "WHOLE_AT_PLANNING", 0)
    monkeypatch.setattr(fetching, "SMALL_FILE", 0)
    rng = np.random.default_rng(4)
    local = tmp_path / "big.parquet"
    pq.write_table(pa.table({"a": rng.normal(size=60_000)}), local, row_group_size=20_000)
    fs = s3fs_client(moto_server)
    fs.put(str(local), f"{bucket}/big/f.parquet")

    def shrink() -> None:
        pq.write_table(pa.table({"a": rng.normal(size=100)}), local)
        fs.put(str(local), f"{bucket}/big/f.parquet")

    return f"{bucket}/big", shrink


def test_a_large_file_that_shrank_since_planning_is_one_error_naming_it(
        shrinkable, moto_server, bucket, client, monkeypatch, capsys):
    """Replaced by a smaller file between planning and reading: one "cannot read" line
    naming the file, exit 2, whichever client reads, and nothing left in the fresh OUT."""
    from pipeline.api import _inputs

    url, shrink = shrinkable
    planned = _inputs.plan

    def plan_then_shrink(*args, **kwargs):
        source = planned(*args, **kwargs)
        shrink()
        return source

    monkeypatch.setattr(_inputs, "plan", plan_then_shrink)
    assert run_cli("transform", url, f"{bucket}/out", "--blocksize", "1",
                   "--threads-per-worker", "1", "--quiet") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "f.parquet" in err[0]
    assert "cannot read" in err[0]
    assert s3fs_client(moto_server).find(f"{bucket.removeprefix('s3://')}/out") == []


def test_a_read_past_a_shrunk_objects_end_is_bad_input_not_a_store_failure(shrinkable,
                                                                           client):
    """The chunk of a later row group asks for bytes that start past the new end (S3's
    416): "cannot read ... changed since it was planned" (exit 2), whichever client reads,
    not a StorageError (exit 1)."""
    from pipeline.errors import PipelineError
    from pipeline.io.sources import plan
    from pipeline.run.tasks import file_tasks

    url, shrink = shrinkable
    source = plan(url, blocksize=1)
    shrink()
    with pytest.raises(PipelineError, match="cannot read") as err:
        file_tasks(source)[2].read()
    assert "f.parquet" in str(err.value)


def test_the_attempt_s_job_is_put_while_chunks_compute_and_before_any_record(
        small_files, proxy, bucket, moto_server):
    """``_pending/<id>/_job.json`` is PUT while the first chunks compute and upload; no
    record of a chunk is written before it has landed, and the run commits as before."""
    import threading

    folder, url = small_files
    release = proxy.hold(lambda kind, path: kind == "PUT" and "/_pending/" in path
                         and path.endswith("/_job.json"))
    done = {}
    run = threading.Thread(target=lambda: done.setdefault(
        "rc", run_cli("transform", url, f"{bucket}/out", "--quiet")))
    run.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
                kind == "PUT part" for kind, _, _ in proxy.log):
            time.sleep(0.01)
        parts = [path for kind, path, _ in proxy.log if kind == "PUT part"]
        records = [path for kind, path, _ in proxy.log
                   if kind == "PUT" and "/_pending/" in path and path.endswith("0.json")]
        assert parts and records == []  # a part uploads meanwhile; no record yet
    finally:
        release.set()
        run.join(120)
    assert done["rc"] == 0
    log = [(kind, path) for kind, path, _ in proxy.log]
    job = next(i for i, (k, p) in enumerate(log) if k == "PUT" and p.endswith("/_job.json"))
    first_record = next(i for i, (k, p) in enumerate(log)
                        if k == "PUT" and "/_pending/" in p and p.endswith("0.json"))
    assert job < first_record
    fs = s3fs_client(moto_server)
    manifest = json.loads(fs.cat_file(f"{bucket}/out/_SUCCESS"))
    assert sum(p["rows"] for p in manifest["parts"]) == FILES * 2000


def test_a_part_s_upload_starts_while_it_is_computed_and_is_aborted_if_it_fails(
        small_files, proxy, bucket):
    """S3: a part's multipart upload is started before its file is written (the upload
    then uses it: one start per part); a part that fails has its started upload aborted."""
    from pipeline.io import multipart, parts
    from pipeline.io.storage import open_storage

    storage, root = open_storage(f"{bucket}/parts")
    target = parts.PartTarget(root, "parquet", storage, "a1b2c3d4e5f6", pending=True)
    table = pa.table({"x": np.arange(5.0)})
    rows, _, rec = parts.write_part(table, target, 0)
    starts = [p for k, p, _ in proxy.log if k == "multipart start"]
    assert rows == 5 and len(starts) == 1 and rec["upload"]
    assert not [p for p in multipart._STARTED if target.attempt in p]

    def failing():
        yield table
        raise RuntimeError("the chunk failed midway")

    with pytest.raises(RuntimeError, match="midway"):
        parts.write_part(failing(), target, 1)
    assert len([p for k, p, _ in proxy.log if k == "multipart start"]) == 2
    assert [p for k, p, _ in proxy.log if k == "multipart abort"] != []
    assert not [p for p in multipart._STARTED if target.attempt in p]
    assert set(multipart.list_pending(storage, root)) == {target.staged(0)}


def test_a_command_s_input_is_listed_ahead_once_and_that_listing_answers_the_run(
        small_files, proxy, bucket, moto_server, tmp_path):
    """The CLI lists an s3:// INPUT while it imports what it plans with: the run takes that
    listing (one LIST, what was there then), once; the next run lists again."""
    from pipeline.cli.entry import _list_ahead

    folder, url = small_files
    _list_ahead(["transform", url, str(tmp_path / "out1")])
    _listed_ahead()
    assert any(k == "LIST" and "prefix=in" in p for k, p, _ in proxy.log)
    s3fs_client(moto_server).put(str(folder / "f000.parquet"), f"{url}/late.parquet")
    assert run_cli("transform", url, tmp_path / "out1", "--quiet") == 0
    listed = [p for k, p, _ in proxy.log if k == "LIST" and "prefix=in" in p]
    assert len(listed) == 1
    assert read_output(tmp_path / "out1").num_rows == FILES * 2000  # not the late file
    assert run_cli("transform", url, tmp_path / "out2", "--quiet") == 0
    assert read_output(tmp_path / "out2").num_rows == (FILES + 1) * 2000
    assert len([p for k, p, _ in proxy.log if k == "LIST" and "prefix=in" in p]) == 2


def test_a_listing_ahead_stands_only_for_a_while(small_files, proxy, moto_server, tmp_path,
                                                 monkeypatch):
    from pipeline.cli.entry import _list_ahead
    from pipeline.io import rust_reads

    folder, url = small_files
    monkeypatch.setattr(rust_reads, "_AHEAD_FOR", 0.0)
    _list_ahead(["score", url, "model.json", str(tmp_path / "out")])
    _listed_ahead()
    s3fs_client(moto_server).put(str(folder / "f000.parquet"), f"{url}/late.parquet")
    assert run_cli("transform", url, tmp_path / "out", "--quiet") == 0
    assert read_output(tmp_path / "out").num_rows == (FILES + 1) * 2000
    assert len([p for k, p, _ in proxy.log if k == "LIST" and "prefix=in" in p]) == 2


@pytest.fixture
def asked_ahead(monkeypatch) -> list[str]:
    """The folders that obstore's reader is asked to list ahead (none is listed)."""
    from pipeline.io import rust_reads

    class Reader:
        def find_ahead(self, folder):
            asked.append(folder)

    asked: list[str] = []
    monkeypatch.setattr(rust_reads, "reader_for", lambda settings: Reader())
    return asked


@pytest.mark.parametrize("args", [
    ["generate", "s3://b/in", "--rows", "5"],  # not an INPUT
    ["transform", "s3://b/in/*.parquet", "s3://b/out"],  # a glob: fsspec's
    ["transform", "s3://key:secret@b/in", "s3://b/out"],  # refused by the command
    ["transform", "s3://b/in?versionId=1", "s3://b/out"],
    ["transform", "s3://b/in::file", "s3://b/out"],
    ["transform", "/data/in", "s3://b/out"],
    ["transform", "--quiet", "s3://b/in", "s3://b/out"],  # INPUT not first: listed as before
    ["run", "s3://b/job.toml"],
    ["transform", "s3://b/in", "s3://b/out", "--storage-option", "anon=true"],  # not env's
    ["score", "s3://b/in", "m.json", "o", "--stor", "key=other"],  # (argparse's prefix)
    ["train", "s3://b/in", "m.json", "--storage-option=anon=true"],
])
def test_only_a_plain_s3_input_given_first_is_listed_ahead(args, asked_ahead, monkeypatch):
    from pipeline.cli.entry import _list_ahead
    from pipeline.io import rust_reads

    monkeypatch.setattr(rust_reads, "env_settings", lambda: ("settings",))
    _list_ahead(args)
    assert asked_ahead == []
    _list_ahead(["transform", "s3://b/in", "s3://b/out"])  # (the same calls list a plain one)
    assert asked_ahead == ["b/in"]


def _listed_ahead() -> None:
    """Wait for the listing started ahead to have its answer."""
    import threading

    for thread in threading.enumerate():
        if thread.name == "pipeline-list-ahead":
            thread.join(60)
            assert not thread.is_alive()


def test_a_plain_s3_input_is_listed_ahead_with_the_environments_settings(asked_ahead,
                                                                          monkeypatch):
    from pipeline.cli.entry import _list_ahead
    from pipeline.io import rust_reads

    monkeypatch.setattr(rust_reads, "env_settings", lambda: ("settings",))
    _list_ahead(["evaluate", "s3a://b/in/", "model.json", "--label", "y"])
    assert asked_ahead == ["b/in"]
    monkeypatch.setattr(rust_reads, "env_settings", lambda: None)  # botocore must look
    _list_ahead(["train", "s3://b/in", "model.json"])
    assert asked_ahead == ["b/in"]

    def broken():
        raise RuntimeError("an odd environment")

    monkeypatch.setattr(rust_reads, "env_settings", broken)  # never the command's failure
    _list_ahead(["transform", "s3://b/in", "s3://b/out"])
    assert asked_ahead == ["b/in"]


def test_the_multipart_requests_client_is_made_while_the_input_is_planned(small_files, proxy,
                                                                          bucket):
    """(its imports would otherwise hold the GIL while the first parts compute)"""
    from pipeline.io.writer import EarlyOutput

    _, url = small_files
    early = EarlyOutput(f"{bucket}/out", url, None)
    early.start([f"{url}/f000.parquet"])
    folder = early.take({"command": "transform"}, overwrite=False, resume=False)
    try:
        assert folder.storage._requests is not None
    finally:
        early.close()
        folder.release()


def test_a_command_that_ends_before_it_lists_does_not_wait_for_its_listing(tmp_path):
    """The listing asked ahead runs on a daemon thread: a usage error (OUT missing) ends the
    process at once, even where the store never answers (it took obstore's 30 s before)."""
    import os
    import socket

    from conftest import S3_ENV, run_proc

    with socket.socket() as silent:  # connections queue in its backlog; none is answered
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        env = {**os.environ, **S3_ENV,
               "AWS_ENDPOINT_URL": f"http://127.0.0.1:{silent.getsockname()[1]}"}
        done = run_proc("transform", "s3://bucket/in", timeout=20, env=env)
    assert done.returncode == 2 and "required: out" in done.stderr, done.stderr


def test_a_run_on_this_process_s_threads_does_not_list_uploads_after_its_commit(
        small_files, proxy, bucket, tmp_path):
    """Its chunks ran once each: no task's upload can be left unfinished beside the parts
    (the cluster's retried or duplicated tasks', looked for by the next test)."""
    _, url = small_files
    assert run_cli("transform", url, f"{bucket}/out", "--quiet") == 0
    lists = [path for kind, path, _ in proxy.log if kind == "LIST"]
    assert lists and not [path for path in lists if "uploads" in path], lists


@pytest.mark.parametrize("repeated", [True, False])
def test_a_repeated_task_s_unfinished_upload_is_aborted_after_the_commit(
        small_files, bucket, repeated):
    from pipeline.io import multipart
    from pipeline.io.commit_store import ManifestFolder, _cleanup
    from pipeline.io.storage import open_storage

    storage, root = open_storage(f"{bucket}/out")
    folder = ManifestFolder(storage, root, {"command": "transform"})
    folder.attempt = "a1b2c3d4e5f6"
    stray = f"{root}/part-00000-{folder.attempt}.parquet"  # a task run twice: one upload
    multipart.start_pending(storage, stray)  # kept, the other never finished
    assert multipart._take_started(stray)
    assert set(multipart.list_pending(storage, root)) == {stray}
    _cleanup(folder, {"parts": []}, repeated=repeated)
    assert set(multipart.list_pending(storage, root)) == (set() if repeated else {stray})
    if not repeated:
        multipart.abort_pending(storage, root)
