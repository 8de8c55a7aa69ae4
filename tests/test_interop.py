"""Outputs are standard Parquet: Polars and DuckDB read what pipeline writes (floating-point
columns are BYTE_STREAM_SPLIT-encoded), value for value."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from conftest import read_output, run_cli, write_parquet_files


def _parts(out):
    manifest = json.loads((out / "_SUCCESS").read_text())
    return [str(out / p["part"]) for p in manifest["parts"]]


def test_transform_output_reads_the_same_in_polars_and_duckdb(tmp_path):
    data = write_parquet_files(tmp_path / "in", files=2, rows=3000)
    out = tmp_path / "out"
    assert run_cli("transform", data, out, "--quiet") == 0
    ours = read_output(out)
    parts = _parts(out)
    meta = pq.ParquetFile(parts[0]).metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings
                 for i in range(meta.num_columns)}
    assert "BYTE_STREAM_SPLIT" in encodings["f0"] and "BYTE_STREAM_SPLIT" in encodings["g32"]
    assert "BYTE_STREAM_SPLIT" not in encodings["id"]

    by_polars = pl.concat([pl.read_parquet(p) for p in parts])
    files = ", ".join(f"'{p}'" for p in parts)
    by_duckdb = duckdb.sql(f"SELECT * FROM read_parquet([{files}])").arrow()
    by_duckdb = by_duckdb.read_all() if hasattr(by_duckdb, "read_all") else by_duckdb
    for name in ("id", "f0", "f1", "f2", "g32", "name"):
        expected = ours.column(name).to_numpy(zero_copy_only=False)
        np.testing.assert_array_equal(by_polars[name].to_numpy(), expected)
        np.testing.assert_array_equal(by_duckdb.column(name).to_numpy(zero_copy_only=False),
                                      expected)
    assert 0 < float(by_polars["f0"].min()) < float(by_polars["f0"].max()) < 1


def test_score_output_reads_the_same_in_polars_and_duckdb(tmp_path):
    data = write_parquet_files(tmp_path / "in", files=2, rows=2000)
    model = tmp_path / "m.json"
    assert run_cli("train", data, model, "--label", "label", "--quiet") == 0
    out = tmp_path / "scores"
    assert run_cli("score", data, model, out, "--keep", "id", "--quiet") == 0
    ours = read_output(out)
    parts = _parts(out)
    by_polars = pl.concat([pl.read_parquet(p) for p in parts])
    np.testing.assert_array_equal(by_polars["probability"].to_numpy(),
                                  ours.column("probability").to_numpy())
    files = ", ".join(f"'{p}'" for p in parts)
    (total,), = duckdb.sql(f"SELECT sum(probability) FROM read_parquet([{files}])").fetchall()
    assert np.isclose(total, np.sum(ours.column("probability").to_numpy()), rtol=1e-12)
    assert 0 < total < ours.num_rows


def test_half_float_column_passed_through_reads_in_duckdb(tmp_path):
    """BYTE_STREAM_SPLIT is for float and double only in DuckDB (and Parquet readers before
    the 2024 format): a float16 column that passes through is written as it was read."""
    data = tmp_path / "in"
    data.mkdir()
    half = np.array([0.5, -1.25, 3.0, 65504.0], dtype=np.float16)
    pq.write_table(pa.table({"x": [-2.0, 0.0, 1.0, 2.0], "h": pa.array(half)}),
                   data / "a.parquet")
    out = tmp_path / "out"
    assert run_cli("transform", data, out, "--columns", "x", "--quiet") == 0
    (part,) = _parts(out)
    meta = pq.ParquetFile(part).metadata.row_group(0)
    assert "BYTE_STREAM_SPLIT" in meta.column(0).encodings
    assert "BYTE_STREAM_SPLIT" not in meta.column(1).encodings
    rows = duckdb.sql(f"SELECT h FROM read_parquet('{part}')").fetchall()
    assert [r[0] for r in rows] == half.astype(np.float64).tolist()
    np.testing.assert_array_equal(pl.read_parquet(part)["h"].to_numpy(), half)
