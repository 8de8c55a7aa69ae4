"""CSV input as written by real exports: quoted newlines across chunk cuts, null markers,
line ends and byte-order marks, long lines, duplicate or undecodable headers, and one schema
per output column."""

from __future__ import annotations

import io
import math

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from conftest import read_output, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pipeline
from pipeline.io import sources


def _err(capsys) -> str:
    return capsys.readouterr().err


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    return lines[0]


def _quoted_rows(n: int) -> str:
    rows = []
    for i in range(n):
        note = f'"line one of {i}\nline two, with ""quotes"" and commas\n{i}"' if i % 3 == 0 \
            else f"plain {i}"
        rows.append(f"{i},{i * 0.5},{note}")
    return "id,x,note\n" + "\n".join(rows) + "\n"


# --- 1. quoted newlines across chunk cuts ---


@pytest.mark.parametrize("blocksize", ["272", "300", "1KiB", "1MiB"])
def test_quoted_newline_across_a_chunk_cut_gives_the_same_rows_at_every_blocksize(
        blocksize, tmp_path):
    path = tmp_path / "a.csv"
    path.write_text(_quoted_rows(41))
    expected = pacsv.read_csv(path)
    assert run_cli("transform", path, tmp_path / "out", "--columns", "x", "--blocksize",
                   blocksize, "--quiet") == 0
    out = read_output(tmp_path / "out")
    assert out.num_rows == 41
    assert out["note"].to_pylist() == expected["note"].to_pylist()
    assert out["id"].to_pylist() == list(range(41))


def test_a_cut_in_quotes_that_cannot_be_known_is_one_error_naming_the_byte(
        moto_server, bucket, tmp_path, capsys, monkeypatch):
    # a large object is not read twice to scan its quotes: its cuts follow line ends, and a
    # piece whose quotes are odd in number is an error naming the byte, never a wrong row
    from conftest import s3fs_client

    from pipeline.io import bodies

    s3fs_client(moto_server).pipe_file(f"{bucket}/a.csv", _quoted_rows(41).encode())
    with monkeypatch.context() as m:
        m.setattr(bodies, "WHOLE_AT_PLANNING", 0)  # as if the object were large
        assert run_cli("transform", f"{bucket}/a.csv", tmp_path / "out", "--columns", "x",
                       "--blocksize", "272", "--quiet") == 2
    line = _one_error_line(_err(capsys))
    assert f"{bucket}/a.csv" in line and "near byte" in line and "--blocksize" in line
    assert not (tmp_path / "out").exists()
    # a small object is fetched whole at planning: its quotes are counted, as on a disk
    assert run_cli("transform", f"{bucket}/a.csv", tmp_path / "small", "--columns", "x",
                   "--blocksize", "272", "--quiet") == 0
    small = read_output(tmp_path / "small")
    assert small["id"].to_pylist() == list(range(41))
    assert run_cli("transform", f"{bucket}/a.csv", tmp_path / "out", "--columns", "x",
                   "--quiet") == 0
    assert read_output(tmp_path / "out").num_rows == 41


# --- 2. null markers ---


def test_only_empty_cells_are_null_and_nan_inf_are_ieee(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("country,x\nNA,1.5\nN/A,NaN\nnull,inf\nNone,-inf\n,\n")
    assert run_cli("transform", path, tmp_path / "out", "--columns", "x", "--quiet") == 0
    out = read_output(tmp_path / "out")
    assert out["country"].to_pylist() == ["NA", "N/A", "null", "None", None]
    x = out["x"].to_pylist()  # sigmoid: NaN stays NaN, inf -> 1, -inf -> 0, null stays null
    assert math.isnan(x[1]) and x[2] == 1.0 and x[3] == 0.0 and x[4] is None
    source = sources.plan(path)
    raw = source.reader().read(source.chunks[0])["x"].to_pylist()
    assert math.isnan(raw[1]) and raw[2] == math.inf and raw[3] == -math.inf


def test_null_values_names_the_markers_on_cli_job_and_library(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("country,x\nNA,1.5\nN/A,NA\nnull,2\n")
    assert run_cli("transform", path, tmp_path / "o1", "--columns", "x",
                   "--null-values", "NA,N/A", "--quiet") == 0
    out = read_output(tmp_path / "o1")
    assert out["country"].to_pylist() == [None, None, "null"]
    assert out.schema.field("x").type == pa.float64() and out["x"][1].as_py() is None
    job = tmp_path / "job.toml"
    job.write_text(f'[[steps]]\ncommand = "transform"\ninput = "{path}"\n'
                   f'out = "{tmp_path / "o2"}"\ncolumns = ["x"]\nnull_values = "NA,N/A"\n'
                   'quiet = true\n')
    assert run_cli("run", job) == 0
    assert read_output(tmp_path / "o2")["country"].to_pylist() == [None, None, "null"]
    pipeline.transform_files(path, tmp_path / "o3", columns=["x"], null_values=["NA", "N/A"],
                             options=pipeline.ExecOptions(quiet=True))
    assert read_output(tmp_path / "o3")["country"].to_pylist() == [None, None, "null"]
    frame = pipeline.read(path, null_values="NA,N/A").compute()
    assert frame["country"].isna().tolist() == [True, True, False]


# --- 3. line ends and byte-order marks ---


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"])
def test_lf_crlf_and_cr_line_ends_give_the_same_rows(eol, tmp_path):
    rows = [f"{i},{i * 0.25},t{i}" for i in range(300)]
    (tmp_path / "a.csv").write_bytes(("\ufeffid,x,name" + eol + eol.join(rows) + eol)
                                     .encode())
    assert run_cli("transform", tmp_path / "a.csv", tmp_path / "out", "--columns", "x",
                   "--blocksize", "1KiB", "--quiet") == 0
    out = read_output(tmp_path / "out")
    assert out.column_names == ["id", "x", "name"]
    assert out["id"].to_pylist() == list(range(300))
    assert out["name"].to_pylist() == [f"t{i}" for i in range(300)]


def test_a_bom_in_one_file_of_two_is_not_a_different_header(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.csv").write_bytes(b"\xef\xbb\xbfid,x\n1,0.5\n")
    (tmp_path / "d" / "b.csv").write_bytes(b"id,x\r\n2,1.5\r\n")
    assert run_cli("transform", tmp_path / "d", tmp_path / "out", "--quiet") == 0
    assert read_output(tmp_path / "out")["id"].to_pylist() == [1, 2]


# --- 7. one schema per output column ---


def test_a_passed_through_column_that_changes_type_late_is_one_error_naming_dtype(
        tmp_path, capsys):
    n = 150_000  # 1.6 MB: more than the 1 MiB typed from all its rows
    rows = [f"{i},{i % 7 * 0.5}" for i in range(n)]
    rows[15000] = "17.5,1.0"  # after the start's type sample, before the middle's
    (tmp_path / "a.csv").write_text("id,x\n" + "\n".join(rows) + "\n")
    assert run_cli("transform", tmp_path / "a.csv", tmp_path / "out", "--columns", "x",
                   "--blocksize", "16KiB", "--quiet") == 2
    line = _one_error_line(_err(capsys))
    assert "a.csv" in line and "column 'id'" in line and "--dtype id=float64" in line
    assert not (tmp_path / "out").exists()
    assert run_cli("transform", tmp_path / "a.csv", tmp_path / "out", "--columns", "x",
                   "--blocksize", "16KiB", "--dtype", "id=float64", "--quiet") == 0
    out = tmp_path / "out"
    schemas = {pq.read_schema(p) for p in out.glob("*.parquet")}
    assert len(schemas) == 1 and read_output(out)["id"][15000].as_py() == 17.5


def test_a_file_up_to_1_mib_is_typed_from_all_its_rows(tmp_path):
    """The same late value in a file of 0.4 MB: its three samples hold every row, so the
    column is float64 and no --dtype is needed."""
    n = 40000
    rows = [f"{i},{i % 7 * 0.5}" for i in range(n)]
    rows[15000] = "17.5,1.0"
    (tmp_path / "a.csv").write_text("id,x\n" + "\n".join(rows) + "\n")
    assert run_cli("transform", tmp_path / "a.csv", tmp_path / "out", "--columns", "x",
                   "--quiet") == 0
    ids = read_output(tmp_path / "out")["id"]
    assert ids.type == pa.float64() and ids[15000].as_py() == 17.5 and ids[1].as_py() == 1


# --- 8. duplicate names, undecodable headers ---


def test_duplicate_csv_column_names_are_one_error(tmp_path, capsys):
    (tmp_path / "a.csv").write_text("x,y,x\n1,2,3\n")
    assert run_cli("transform", tmp_path / "a.csv", tmp_path / "out", "--quiet") == 2
    line = _one_error_line(_err(capsys))
    assert "a.csv" in line and "'x'" in line and "duplicate" in line


def test_duplicate_parquet_column_names_are_one_error(tmp_path, capsys):
    t = pa.Table.from_arrays([pa.array([1.0]), pa.array([2.0])], names=["x", "x"])
    pq.write_table(t, tmp_path / "a.parquet")
    assert run_cli("transform", tmp_path / "a.parquet", tmp_path / "out", "--quiet") == 2
    line = _one_error_line(_err(capsys))
    assert "a.parquet" in line and "'x'" in line and "duplicate" in line


def test_a_header_that_is_not_utf8_is_one_error(tmp_path, capsys):
    (tmp_path / "a.csv").write_bytes(b"id,pr\xe9cis\n1,2\n")
    assert run_cli("transform", tmp_path / "a.csv", tmp_path / "out", "--quiet") == 2
    line = _one_error_line(_err(capsys))
    assert "a.csv" in line and "UTF-8" in line


# --- 9. long lines ---


def test_lines_over_32_kib_in_a_file_over_192_kib_are_read(tmp_path):
    rows = [f"{i},{i * 0.5},{'w' * 40000}" for i in range(8)]
    (tmp_path / "a.csv").write_text("id,x,text\n" + "\n".join(rows) + "\n")
    assert run_cli("transform", tmp_path / "a.csv", tmp_path / "out", "--columns", "x",
                   "--quiet") == 0
    assert read_output(tmp_path / "out")["id"].to_pylist() == list(range(8))


@pytest.mark.parametrize("name", ["a.csv", "a.csv.gz"])
def test_lines_over_1_mib_are_read(name, tmp_path):
    import gzip

    data = ("id,x,text\n" + "".join(f"{i},{i * 0.5},{'w' * (1 << 20) * (1 + i % 2)}\n"
                                    for i in range(4))).encode()
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    assert run_cli("transform", path, tmp_path / "out", "--columns", "x", "--quiet") == 0
    assert read_output(tmp_path / "out")["id"].to_pylist() == list(range(4))


# --- 10. bytes that are not UTF-8 in a column the command does not use ---


def test_non_utf8_bytes_in_a_passed_through_text_column_never_fail_the_job(tmp_path):
    n = 80000  # 1.8 MB: more than the 1 MiB typed from all its rows
    lines = [f"{i},{i * 0.5},name{i}".encode() for i in range(n)]
    lines[n // 2 + 8000] = f"{n // 2 + 8000},1.0,caf".encode() + b"\xe9"
    (tmp_path / "a.csv").write_bytes(b"id,x,name\n" + b"\n".join(lines) + b"\n")
    assert run_cli("transform", tmp_path / "a.csv", tmp_path / "out", "--columns", "x",
                   "--blocksize", "64KiB", "--quiet") == 0
    out = tmp_path / "out"
    assert len({pq.read_schema(p) for p in out.glob("*.parquet")}) == 1
    assert read_output(out)["name"][n // 2 + 8000].as_py() == "caf\ufffd"
    model = tmp_path / "m.json"
    (tmp_path / "b.csv").write_bytes(b"id,x,name,label\n" + b"".join(
        f"{i},{i % 10 * 0.5},".encode() + (b"\xff" if i == n - 5 else b"n") +
        f",{int(i % 10 > 4 if i % 7 else i % 2)}\n".encode() for i in range(n)))
    assert run_cli("train", tmp_path / "b.csv", model, "--label", "label", "--features", "x",
                   "--blocksize", "64KiB", "--quiet") == 0


# --- the property: every --blocksize reads the rows pyarrow reads from the whole file ---

_TEXT = st.one_of(
    st.sampled_from(["NA", "N/A", "null", "None", "NaN", "", "nan", "-", "a,b", 'say "hi"',
                     "two\nlines", "cr\rend", "crlf\r\nend", ",", '"']),
    st.text(alphabet='ab ,"\n\r1.-xé', max_size=12))
_FLOAT = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                   st.sampled_from([math.nan, math.inf, -math.inf]))


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rows=st.lists(st.tuples(_TEXT, _FLOAT, st.booleans()), min_size=1, max_size=40),
       eol=st.sampled_from(["\n", "\r\n", "\r"]),
       blocksize=st.integers(min_value=1, max_value=400))
def test_every_blocksize_reads_the_rows_of_the_whole_file(rows, eol, blocksize, tmp_path):
    lines = ["name,x"]
    for text, x, quoted in rows:
        needs = quoted or any(c in text for c in ',"\n\r') or text == ""
        lines.append(f"{_quote(text) if needs else text},{x!r}")
    data = (eol.join(lines) + eol).encode()
    path = tmp_path / "p.csv"
    path.write_bytes(data)
    whole = pacsv.read_csv(io.BytesIO(data), parse_options=pacsv.ParseOptions(
        newlines_in_values=True), convert_options=pacsv.ConvertOptions(
        null_values=[""], strings_can_be_null=True, column_types={"name": pa.string()}))
    source = sources.plan(path, blocksize=blocksize, dtype={"name": "string"})
    reader = source.reader()
    got = pa.concat_tables([reader.read(c) for c in source.chunks])
    assert got.num_rows == len(rows) == whole.num_rows
    assert got["name"].to_pylist() == whole["name"].to_pylist()
    for a, b in zip(got["x"].to_pylist(), whole["x"].to_pylist(), strict=True):
        assert (a == b) or (math.isnan(a) and math.isnan(b))
