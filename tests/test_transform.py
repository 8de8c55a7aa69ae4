"""pipeline transform: chunked input, the kernels over partitions, atomic logged output."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import scipy.special as sp
from conftest import make_table, read_output, run_cli, run_proc, write_parquet_files

import pipeline
from pipeline.io.sources import plan


def test_transform_parquet_files_with_row_groups_keeps_order_and_passthrough(tmp_path):
    data = write_parquet_files(tmp_path / "data", files=3, rows=1000, row_group=200)
    out = tmp_path / "out"
    assert run_cli("transform", data, out, "--blocksize", "10KiB", "--quiet") == 0
    src = pq.read_table(data)
    got = read_output(out)
    assert got.schema == src.schema  # names, order, dtypes (float32 stays float32)
    assert got["id"].to_pylist() == list(range(3000))
    assert got["name"].equals(src["name"]) and got["label"].equals(src["label"])
    np.testing.assert_allclose(got["f1"].to_numpy(), sp.expit(src["f1"].to_numpy()),
                               rtol=1e-15)
    assert got["g32"].type == pa.float32()
    np.testing.assert_allclose(got["g32"].to_numpy(),
                               sp.expit(src["g32"].to_numpy().astype(np.float64)), rtol=1e-7)


def test_parquet_chunks_pack_whole_row_groups_up_to_the_blocksize(tmp_path):
    data = write_parquet_files(tmp_path / "data", files=2, rows=1000, row_group=100)
    meta = pq.read_metadata(data / "part0.parquet")
    sizes = [meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)]
    bound = 3 * max(sizes)
    src = plan(data, blocksize=bound)
    first = [p for c in src.chunks for p in c.pieces if p.path.endswith("part0.parquet")]
    assert [g for p in first for g in p.row_groups] == list(range(10))  # whole, in order
    for p, nxt in zip(first, first[1:], strict=False):
        size = sum(sizes[g] for g in p.row_groups)
        assert size <= bound < size + sizes[nxt.row_groups[0]]  # packed up to the bound
    assert 2 < len(src.chunks) < 20 and sum(c.rows for c in src.chunks) == 2000
    assert len(plan(data).chunks) == 1  # default: two small files are one chunk


def test_many_small_files_are_packed_into_few_chunks_in_order(tmp_path):
    data = write_parquet_files(tmp_path / "data", files=40, rows=50, row_group=50)
    src = plan(data, blocksize=64 * 1024)
    assert len(src.chunks) < 10
    assert [p.path for c in src.chunks for p in c.pieces] == sorted(map(str, data.iterdir()))
    assert "more files" in src.chunks[0].source
    out = tmp_path / "out"
    assert run_cli("transform", data, out, "--blocksize", "64KiB", "--quiet") == 0
    got = read_output(out)
    expected = [i for f in sorted(map(str, data.iterdir()))
                for i in pq.read_table(f)["id"].to_pylist()]  # input order: sorted paths
    assert got["id"].to_pylist() == expected
    manifest = json.loads((out / "_SUCCESS").read_text())
    assert len(manifest["parts"]) == len(src.chunks)


def test_chunks_log_and_success_manifest(tmp_path, data_dir):
    out = tmp_path / "out"
    assert run_cli("transform", data_dir, out, "--blocksize", "20KiB", "--quiet") == 0
    records = [json.loads(x) for x in (out / "_chunks.jsonl").read_text().splitlines()]
    manifest = json.loads((out / "_SUCCESS").read_text())
    assert len(records) == len(manifest["parts"]) > 2
    keys = {"chunk", "part", "source", "rows", "seconds", "cpu_seconds", "rss_bytes",
            "peak_rss_bytes", "worker", "device"}
    for r in records:
        assert keys <= set(r)
        assert r["rows"] > 0 and r["seconds"] > 0 and r["rss_bytes"] > 0
        assert r["peak_rss_bytes"] >= r["rss_bytes"] and r["device"] == "cpu"
        assert r["source"].endswith(".parquet")
    assert manifest["rows"] == 2000 == sum(r["rows"] for r in records)
    assert manifest["params"]["columns"] == ["f0", "f1", "f2", "g32"]
    assert [p["part"] for p in manifest["parts"]] == \
        [f"part-{i:05d}.parquet" for i in range(len(records))]
    assert manifest["peak_rss_bytes"] >= max(r["peak_rss_bytes"] for r in records)


@pytest.mark.parametrize("opts,fn", [
    (["--temperature", "2.5"], lambda x: sp.expit(x / 2.5)),
    (["--range", "-1", "1"], lambda x: -1 + 2 * sp.expit(x)),
    (["--output", "derivative"], lambda x: sp.expit(x) * sp.expit(-x)),
    (["--output", "log"], lambda x: sp.log_expit(x)),
])
def test_transform_options(tmp_path, data_dir, opts, fn):
    out = tmp_path / "out"
    assert run_cli("transform", data_dir, out, "--columns", "f0", "f2", *opts, "--quiet") == 0
    src, got = pq.read_table(data_dir), read_output(out)
    for c in ("f0", "f2"):
        np.testing.assert_allclose(got[c].to_numpy(), fn(src[c].to_numpy()), rtol=1e-13,
                                   atol=4e-16)
    assert got["f1"].equals(src["f1"])  # not selected: unchanged


def test_transform_csv_in_byte_range_chunks(tmp_path):
    t = make_table(3000, seed=3)
    (tmp_path / "csv").mkdir()
    pacsv.write_csv(t.slice(0, 1500), tmp_path / "csv" / "a.csv")
    pacsv.write_csv(t.slice(1500), tmp_path / "csv" / "b.csv")
    src = plan(tmp_path / "csv", blocksize=20_000)
    assert len(src.chunks) > 4
    out = tmp_path / "out"
    assert run_cli("transform", tmp_path / "csv", out, "--blocksize", "20000", "--quiet") == 0
    got = read_output(out)
    assert got["id"].to_pylist() == list(range(3000))
    assert got["name"].to_pylist() == t["name"].to_pylist()
    np.testing.assert_allclose(got["f0"].to_numpy(), sp.expit(t["f0"].to_numpy()), rtol=1e-14)


def test_integer_column_named_explicitly_becomes_float64(tmp_path, data_dir):
    out = tmp_path / "out"
    assert run_cli("transform", data_dir, out, "--columns", "label", "--quiet") == 0
    got = read_output(out)
    assert got["label"].type == pa.float64()
    assert set(np.round(got["label"].to_numpy(), 6)) <= {0.5, round(sp.expit(1.0), 6)}


def test_library_read_sigmoid_columns_write(tmp_path, data_dir):
    df = pipeline.read(data_dir, blocksize="20KiB")
    assert df.npartitions > 2
    df2 = pipeline.sigmoid_columns(df, columns=["f0"], temperature=2.0, feature_range=(0, 10))
    manifest = pipeline.write(df2, tmp_path / "out")
    got = read_output(tmp_path / "out")
    src = pq.read_table(data_dir)
    assert manifest["rows"] == 2000 and len(manifest["parts"]) == df.npartitions
    np.testing.assert_allclose(got["f0"].to_numpy(), 10 * sp.expit(src["f0"].to_numpy() / 2),
                               rtol=1e-14)
    assert got["id"].to_pylist() == list(range(2000))
    # the same lazy frame resumes against its own output: nothing to redo
    again = pipeline.write(df2, tmp_path / "out", resume=True)
    assert again["rows"] == 2000


def test_transform_on_real_dask_scheduler_and_workers(tmp_path, data_dir, dask_cluster):
    out = tmp_path / "out"
    proc = run_proc("transform", data_dir, out, "--scheduler", dask_cluster.address,
                    "--blocksize", "10KiB", "--quiet")
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(x) for x in (out / "_chunks.jsonl").read_text().splitlines()]
    assert {r["worker"] for r in records} <= {w for w in _worker_addresses(dask_cluster)}
    assert len({r["worker"] for r in records}) == 2
    got, src = read_output(out), pq.read_table(data_dir)
    np.testing.assert_allclose(got["f2"].to_numpy(), sp.expit(src["f2"].to_numpy()),
                               rtol=1e-15)


def _worker_addresses(cluster):
    from distributed import Client

    with Client(cluster.address) as c:
        return set(c.scheduler_info()["workers"])


def test_transform_on_local_cluster_processes(tmp_path, data_dir):
    out = tmp_path / "out"
    assert run_cli("transform", data_dir, out, "--workers", "2", "--memory-limit", "1GiB",
                   "--blocksize", "10KiB", "--quiet") == 0
    records = [json.loads(x) for x in (out / "_chunks.jsonl").read_text().splitlines()]
    assert all(r["worker"].startswith("tcp://127.0.0.1") for r in records)
    assert read_output(out).num_rows == 2000


def test_a_chunk_of_many_small_files_is_transformed_in_a_few_calls_with_their_origins():
    """The small batches of a chunk of many files are combined in groups before the op (one
    call per few MiB, not one per file); each call gets the origin of its first row, and the
    result is the per-file one's."""
    from pipeline.io.chunking import RowOrigin
    from pipeline.ops.transform import SigmoidOp
    from pipeline.run import tasks

    rng = np.random.default_rng(3)
    files = [pa.table({"x": rng.normal(size=2000), "id": np.arange(2000)}) for _ in range(300)]
    table = pa.concat_tables(files)
    assert len(table.to_batches()) == 300
    op = SigmoidOp(("x",))
    calls = []

    def recording(part, origin):
        calls.append((part.num_rows, origin.offset))
        return op(part, origin)

    task = tasks.FileChunkTask(reader=None, chunk=None, op=recording)
    out = task._apply(table, RowOrigin((), 0))
    one_by_one = pa.concat_tables([op(t, RowOrigin((), 0)) for t in files])
    assert out.equals(one_by_one)
    group = tasks._GROUP_BYTES // (2000 * 16) + 1  # files of 32,000 bytes to a group
    assert len(calls) == -(-300 // group) < 10
    starts = np.cumsum([0] + [n for n, _ in calls])[:-1]
    assert [o for _, o in calls] == list(starts) and sum(n for n, _ in calls) == 600_000
