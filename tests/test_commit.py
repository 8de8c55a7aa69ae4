"""The output folder's edges: resume identity, what --overwrite may replace, OUT against INPUT,
a failed fresh run, and SIGKILL at every step of the commit (crash consistency)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from conftest import make_table, read_output, run_cli

from pipeline.io.local_storage import exchange_paths


def _tree(folder):
    """Every file under ``folder`` with its bytes (hidden ones included)."""
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _csv_input(tmp_path, rows=6000, files=2):
    folder = tmp_path / "csv"
    folder.mkdir()
    for k in range(files):
        pacsv.write_csv(make_table(rows, seed=k, start=k * rows), folder / f"p{k}.csv")
    return folder


def _only_manifest_files(out):
    """The folder holds the manifest's parts and the run's own files, nothing else."""
    manifest = json.loads((out / "_SUCCESS").read_text())
    listed = {p["part"] for p in manifest["parts"]}
    names = {p.name for p in out.iterdir()}
    assert names == listed | {"_SUCCESS", "_job.json", "_chunks.jsonl"}, names ^ (
        listed | {"_SUCCESS", "_job.json", "_chunks.jsonl"})
    return manifest


# --- resume identity --------------------------------------------------------------------------


def test_resume_with_another_blocksize_is_refused_and_untouched(tmp_path, capsys):
    data = _csv_input(tmp_path)
    out = tmp_path / "out"
    assert run_cli("transform", data, out, "--blocksize", "16KiB", "--quiet") == 0
    (out / "_SUCCESS").unlink()  # as if interrupted just before the commit
    before = _tree(out)
    for other in (["--blocksize", "64KiB"], []):
        assert run_cli("transform", data, out, *other, "--resume", "--quiet") == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "chunk plan" in err[0] and "--blocksize" in err[0]
        assert _tree(out) == before


def test_resume_on_another_device_is_refused(tmp_path, data_dir, capsys):
    out = tmp_path / "out"
    assert run_cli("transform", data_dir, out, "--quiet") == 0
    (out / "_SUCCESS").unlink()
    job = json.loads((out / "_job.json").read_text())
    assert job["device"] == "cpu" and job["plan"]["chunks"] >= 1
    job["device"] = "gpu"  # an interrupted GPU run
    (out / "_job.json").write_text(json.dumps(job))
    assert run_cli("transform", data_dir, out, "--resume", "--quiet") == 2
    assert "device" in capsys.readouterr().err


def test_resume_removes_part_files_outside_the_plan(tmp_path, data_dir):
    out, clean = tmp_path / "out", tmp_path / "clean"
    assert run_cli("transform", data_dir, clean, "--blocksize", "1", "--quiet") == 0
    assert run_cli("transform", data_dir, out, "--blocksize", "1", "--quiet") == 0
    (out / "_SUCCESS").unlink()
    pq.write_table(make_table(10), out / "part-00999.parquet")  # left by another plan
    (out / "part-00042.csv").write_text("a\n1\n")
    assert run_cli("transform", data_dir, out, "--blocksize", "1", "--resume", "--quiet") == 0
    manifest = _only_manifest_files(out)
    assert manifest["resumed_parts"] == 8
    assert read_output(out).equals(read_output(clean))


def test_resume_of_csv_input_checks_each_part_against_its_record(tmp_path):
    data = _csv_input(tmp_path)
    out, clean = tmp_path / "out", tmp_path / "clean"
    assert run_cli("transform", data, clean, "--blocksize", "16KiB", "--quiet") == 0
    assert run_cli("transform", data, out, "--blocksize", "16KiB", "--quiet") == 0
    (out / "_SUCCESS").unlink()
    records = (out / "_chunks.jsonl").read_text().splitlines()
    n = len(records)
    assert n >= 6
    # part 1: a complete Parquet file with the wrong rows (no count known from the CSV plan);
    # part 2: no record (killed between its rename and its record)
    pq.write_table(pq.read_table(out / "part-00001.parquet").slice(0, 5),
                   out / "part-00001.parquet")
    kept = [r for r in records if json.loads(r)["chunk"] != 2]
    (out / "_chunks.jsonl").write_text("\n".join(kept) + "\n")
    assert run_cli("transform", data, out, "--blocksize", "16KiB", "--resume", "--quiet") == 0
    manifest = _only_manifest_files(out)
    assert manifest["resumed_parts"] == n - 2
    assert read_output(out).equals(read_output(clean))


# --- what --overwrite may replace --------------------------------------------------------------


def test_overwrite_refuses_a_folder_that_is_not_an_output(tmp_path, data_dir, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    (mine / "sub").mkdir()
    (mine / "sub" / "notes.txt").write_text("more")
    before = _tree(mine)
    assert run_cli("transform", data_dir, mine, "--overwrite", "--quiet") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "_job.json" in err[0] and "not touched" in err[0]
    assert _tree(mine) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "mine"]


def test_overwrite_of_the_current_folder_is_refused(tmp_path, data_dir, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    (work / "keep.txt").write_text("mine")
    monkeypatch.chdir(work)
    assert run_cli("transform", data_dir, ".", "--overwrite", "--quiet") == 2
    assert (work / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "work"]
    assert capsys.readouterr().err.startswith("error:")


def test_an_empty_existing_folder_is_a_fresh_output(tmp_path, data_dir):
    out = tmp_path / "out"
    out.mkdir()
    assert run_cli("transform", data_dir, out, "--quiet") == 0
    _only_manifest_files(out)


# --- OUT against INPUT -------------------------------------------------------------------------


@pytest.mark.parametrize("flags", [[], ["--overwrite"], ["--resume"]])
@pytest.mark.parametrize("where", ["same", "same via ..", "symlink", "inside", "contains"])
def test_out_equal_to_inside_or_containing_input_is_refused_before_any_work(
        tmp_path, where, flags, capsys):
    top = tmp_path / "top"
    data = top / "data"
    data.mkdir(parents=True)
    pq.write_table(make_table(500), data / "a.parquet")
    if flags == ["--overwrite"] or flags == ["--resume"]:
        # make INPUT look like an output of this tool, the strongest temptation
        (data / "_job.json").write_text(json.dumps({"command": "transform"}))
    if where == "symlink":
        (tmp_path / "link").symlink_to(data)
    out = {"same": data, "same via ..": data / ".." / "data", "symlink": tmp_path / "link",
           "inside": data / "out", "contains": top}[where]
    before = _tree(tmp_path)
    assert run_cli("transform", data, out, *flags, "--quiet") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "the input" in err[0], err
    assert _tree(tmp_path) == before
    assert not list(tmp_path.rglob(".*pipeline-*"))


def test_score_out_inside_a_glob_inputs_folder_tree_is_refused_when_it_holds_input(
        tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(make_table(300), data / "a.parquet")
    assert run_cli("train", data, tmp_path / "m.json", "--label", "label", "--quiet") == 0
    # OUT contains an input file named by a glob
    assert run_cli("score", f"{data}/*.parquet", tmp_path / "m.json", data, "--quiet") == 2
    assert "contains the input" in capsys.readouterr().err


def test_train_model_path_equal_to_an_input_file_is_refused(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(make_table(300), data / "a.parquet")
    before = (data / "a.parquet").read_bytes()
    assert run_cli("train", data / "a.parquet", data / "a.parquet", "--label", "label",
                   "--overwrite", "--quiet") == 2
    err = capsys.readouterr().err
    assert "input file" in err
    assert (data / "a.parquet").read_bytes() == before


def test_train_overwrite_replaces_only_a_model_file(tmp_path, data_dir, capsys):
    notes = tmp_path / "notes.json"
    notes.write_text('{"my": "notes"}')
    assert run_cli("train", data_dir, notes, "--label", "label", "--overwrite",
                   "--quiet") == 2
    assert "not touched" in capsys.readouterr().err
    assert notes.read_text() == '{"my": "notes"}'
    model = tmp_path / "model.json"
    assert run_cli("train", data_dir, model, "--label", "label", "--quiet") == 0
    assert run_cli("train", data_dir, model, "--label", "label", "--C", "0.5",
                   "--overwrite", "--quiet") == 0
    assert json.loads(model.read_text())["C"] == 0.5


# --- a failed fresh run ------------------------------------------------------------------------


def _bad_csv(tmp_path):
    folder = _csv_input(tmp_path, rows=3000, files=1)
    lines = (folder / "p0.csv").read_text().splitlines()
    cells = lines[2500].split(",")
    cells[1] = "oops"
    lines[2500] = ",".join(cells)
    (folder / "p0.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_failed_run_in_a_fresh_out_leaves_nothing_and_the_rerun_needs_no_flag(
        tmp_path, capsys):
    data = _bad_csv(tmp_path)
    out = tmp_path / "new" / "out"
    assert run_cli("transform", data, out, "--blocksize", "16KiB", "--quiet") == 2
    assert "row 2500" in capsys.readouterr().err
    assert not out.exists()
    text = (data / "p0.csv").read_text()
    (data / "p0.csv").write_text(text.replace("oops", "1.5"))  # the input corrected
    assert run_cli("transform", data, out, "--blocksize", "16KiB", "--quiet") == 0
    assert read_output(out).num_rows == 3000


def test_failed_run_in_an_empty_folder_of_the_user_keeps_the_folder(tmp_path):
    data = _bad_csv(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    assert run_cli("transform", data, out, "--blocksize", "16KiB", "--quiet") == 2
    assert out.is_dir()
    # kept empty, as it was: the corrected rerun needs no flag (README: a fresh output)
    assert list(out.iterdir()) == []
    text = (data / "p0.csv").read_text()
    (data / "p0.csv").write_text(text.replace("oops", "1.5"))
    assert run_cli("transform", data, out, "--blocksize", "16KiB", "--quiet") == 0
    assert read_output(out).num_rows == 3000


# --- the swap and crash consistency ------------------------------------------------------------


def test_rename_exchange_swaps_two_folders(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    (b / "y").write_text("b")
    if sys.platform.startswith("linux"):
        assert exchange_paths(a, b)
        assert (a / "y").read_text() == "b" and (b / "x").read_text() == "a"


def _kill_at(point, data, out, *flags, env_extra=None):
    env = dict(os.environ, PIPELINE_KILL_AT=point, **(env_extra or {}))
    proc = subprocess.run([sys.executable, "-m", "pipeline", "transform", str(data), str(out),
                           "--blocksize", "1", "--quiet", *flags],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, (point, proc.returncode, proc.stderr)


def test_sigkill_at_every_step_then_resume_equals_a_clean_run(tmp_path):
    """A transform killed after k parts, around _SUCCESS, and inside an --overwrite's swap
    (both protocols), then resumed: the result is a clean run's, and nothing else is left."""
    folder = tmp_path / "data"
    folder.mkdir()
    rng = np.random.default_rng(0)
    t = pa.table({"id": np.arange(24_000), **{f"f{j}": rng.standard_normal(24_000)
                                             for j in range(3)}})
    pq.write_table(t, folder / "a.parquet", row_group_size=2000)  # 12 chunks
    clean, old = tmp_path / "clean", tmp_path / "old-params"
    assert run_cli("transform", folder, clean, "--blocksize", "1", "--temperature", "2",
                   "--quiet") == 0
    assert run_cli("transform", folder, old, "--blocksize", "1", "--quiet") == 0
    expected = read_output(clean)
    old_rows = read_output(old)
    cases = [(p, False, None) for p in
             ("part-1", "part-5", "part-11", "before-success", "success-tmp", "after-success")]
    cases += [(p, True, None) for p in
              ("part-3", "success-tmp", "after-success", "swap-exchanged")]
    cases += [("swap-moved-old", True, {"PIPELINE_NO_RENAME_EXCHANGE": "1"})]
    for i, (point, overwrite, env) in enumerate(cases):
        run = tmp_path / f"run{i}"
        run.mkdir()
        out = run / "out"
        flags = ["--temperature", "2"]
        if overwrite:
            assert run_cli("transform", folder, out, "--blocksize", "1", "--quiet") == 0
            flags.append("--overwrite")
        _kill_at(point, folder, out, *flags, env_extra=env)
        if overwrite and point not in ("swap-exchanged", "swap-moved-old"):
            assert read_output(out).equals(old_rows), point  # the old output, whole
        if point == "swap-exchanged":
            assert read_output(out).equals(expected)  # the new one, never neither
        assert run_cli("transform", folder, out, "--blocksize", "1", "--temperature", "2",
                       "--resume", "--quiet") == 0, point
        assert read_output(out).equals(expected), point
        manifest = _only_manifest_files(out)
        assert manifest["rows"] == 24_000 and manifest["params"]["temperature"] == 2.0
        assert sorted(p.name for p in run.iterdir()) == ["out"], (point, list(run.iterdir()))


def test_a_deleted_out_is_not_brought_back_from_an_exchanged_swap(tmp_path, data_dir):
    """Killed right after RENAME_EXCHANGE, the hidden sibling holds the *old* output. A user
    who then deletes OUT and runs afresh gets a fresh output, not that old one moved back."""
    out = tmp_path / "out"
    assert run_cli("transform", data_dir, out, "--quiet") == 0
    probe = [tmp_path / "probe-a", tmp_path / "probe-b"]
    for p in probe:
        p.mkdir()
    exchanged = exchange_paths(*probe)
    for p in probe:
        p.rmdir()
    if not exchanged:
        pytest.skip("no RENAME_EXCHANGE: the two-rename swap leaves no old output beside OUT")
    _kill_at("swap-exchanged", data_dir, out, "--temperature", "3", "--overwrite")
    assert [p.name for p in tmp_path.glob(".out.pipeline-new-*/_SUCCESS")] == ["_SUCCESS"]
    for p in out.iterdir():
        p.unlink()
    out.rmdir()
    assert run_cli("transform", data_dir, out, "--temperature", "5", "--quiet") == 0
    assert json.loads((out / "_SUCCESS").read_text())["params"]["temperature"] == 5.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "out"]


@pytest.mark.parametrize("spelling", ["out", "input"])
def test_a_file_url_equal_to_the_input_is_refused(tmp_path, spelling, capsys):
    """file:// is the local disk: OUT spelled as a file:// URL (or INPUT) is compared with
    the input's local path, so --overwrite never replaces the input."""
    data = tmp_path / "data"
    assert run_cli("generate", data, "--rows", "500", "--features", "2", "--quiet") == 0
    before = _tree(tmp_path)
    inp, out = (data, f"file://{data}") if spelling == "out" else (f"file://{data}", data)
    assert run_cli("transform", inp, out, "--overwrite", "--quiet") == 2
    assert "the input" in capsys.readouterr().err
    assert _tree(tmp_path) == before
