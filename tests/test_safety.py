"""Nothing lost: atomic parts, resume after SIGKILL, overwrite safety, bad input, failures."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from conftest import (
    DaskProcesses,
    make_table,
    read_output,
    run_cli,
    run_proc,
    wait_until,
    write_parquet_files,
)


def _many_chunks(tmp_path, groups=300, rows=2000):
    folder = tmp_path / "many"
    folder.mkdir()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((groups * rows, 4))
    t = pa.table({"id": np.arange(groups * rows), **{f"f{j}": X[:, j] for j in range(4)}})
    pq.write_table(t, folder / "big.parquet", row_group_size=rows)
    return folder


def _records(out):
    p = out / "_chunks.jsonl"
    return p.read_text().splitlines() if p.exists() else []


def _snapshot(folder):
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(folder.iterdir())}


def test_existing_output_without_flags_is_an_error_and_untouched(tmp_path, data_dir, capsys):
    out = tmp_path / "out"
    assert run_cli("transform", data_dir, out, "--quiet") == 0
    before = _snapshot(out)
    assert run_cli("transform", data_dir, out, "--quiet") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and str(out) in err[0]
    assert _snapshot(out) == before


def test_overwrite_replaces_only_when_the_new_output_is_complete(tmp_path, data_dir):
    out = tmp_path / "out"
    assert run_cli("transform", data_dir, out, "--quiet") == 0
    assert run_cli("transform", data_dir, out, "--overwrite", "--temperature", "3",
                   "--quiet") == 0
    assert json.loads((out / "_SUCCESS").read_text())["params"]["temperature"] == 3.0
    assert not any(p.name.startswith(".out") for p in tmp_path.iterdir())


def test_failed_overwrite_leaves_the_old_output_whole(tmp_path, capsys):
    csv = tmp_path / "csv"
    csv.mkdir()
    t = make_table(4000, seed=2)
    pacsv.write_csv(t, csv / "a.csv")
    out = tmp_path / "out"
    assert run_cli("transform", csv, out, "--quiet") == 0
    before = _snapshot(out)
    # a bad cell far past the type-inference sample: found while chunks are written
    lines = (csv / "a.csv").read_text().splitlines()
    cells = lines[3500].split(",")
    cells[1] = "oops"
    lines[3500] = ",".join(cells)
    (csv / "a.csv").write_text("\n".join(lines) + "\n")
    assert run_cli("transform", csv, out, "--overwrite", "--blocksize", "16KiB",
                   "--quiet") == 2
    err = capsys.readouterr().err
    assert "a.csv" in err and "'f0'" in err and "row 3500" in err
    assert _snapshot(out) == before
    assert not any(p.name.startswith(".out") for p in tmp_path.iterdir())


def test_resume_after_sigkill_redoes_only_missing_parts(tmp_path):
    data = _many_chunks(tmp_path)
    out, clean = tmp_path / "out", tmp_path / "clean"
    assert run_cli("transform", data, clean, "--blocksize", "1", "--quiet") == 0
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "transform", str(data),
                             str(out), "--blocksize", "1", "--quiet"],
                            start_new_session=True, stderr=subprocess.DEVNULL)
    assert wait_until(lambda: len(_records(out)) >= 20)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "_SUCCESS").exists()
    parts = sorted(out.glob("part-*.parquet"))
    assert 0 < len(parts) < 300
    for p in parts:  # every part under its final name is complete
        assert pq.read_metadata(p).num_rows == 2000
    kept = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in parts}
    assert run_cli("transform", data, out, "--blocksize", "1", "--resume", "--quiet") == 0
    for name, ident in kept.items():  # no complete part rewritten
        p = out / name
        assert (p.stat().st_ino, p.stat().st_mtime_ns) == ident
    manifest = json.loads((out / "_SUCCESS").read_text())
    assert manifest["resumed_parts"] == len(kept) and manifest["rows"] == 600_000
    assert read_output(out).equals(read_output(clean))
    assert len(_records(out)) == 300


def test_sigkill_during_overwrite_keeps_the_old_output_and_resumes_the_new(tmp_path):
    data = _many_chunks(tmp_path, groups=200)
    out, clean = tmp_path / "out", tmp_path / "clean"
    assert run_cli("transform", data, out, "--blocksize", "1", "--quiet") == 0
    assert run_cli("transform", data, clean, "--blocksize", "1", "--temperature", "2",
                   "--quiet") == 0
    old = read_output(out)

    def staging():  # the attempt's own staging folder, .out.pipeline-new-<attempt>
        found = list(tmp_path.glob(".out.pipeline-new-*"))
        return found[0] if found else tmp_path / ".out.pipeline-new-none"

    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "transform", str(data),
                             str(out), "--blocksize", "1", "--temperature", "2", "--overwrite",
                             "--quiet"], start_new_session=True, stderr=subprocess.DEVNULL)
    assert wait_until(lambda: len(_records(staging())) >= 10)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert read_output(out).equals(old)  # the old output is whole and still the output
    assert run_cli("transform", data, out, "--blocksize", "1", "--temperature", "2",
                   "--resume", "--quiet") == 0
    assert json.loads((out / "_SUCCESS").read_text())["resumed_parts"] >= 10
    assert read_output(out).equals(read_output(clean))
    assert not list(tmp_path.glob(".out.pipeline-*"))


def test_resume_with_other_parameters_or_changed_input_is_an_error(tmp_path, data_dir,
                                                                   capsys):
    out = tmp_path / "out"
    assert run_cli("transform", data_dir, out, "--quiet") == 0
    (out / "_SUCCESS").unlink()
    assert run_cli("transform", data_dir, out, "--resume", "--temperature", "2",
                   "--quiet") == 2
    err = capsys.readouterr().err.strip()
    assert "--temperature differs from the interrupted run's (1.0 there, 2.0 now)" in err
    assert err.endswith("rerun with --overwrite")
    assert run_cli("transform", data_dir, out, "--resume", "--columns", "f0", "--quiet") == 2
    assert "--columns differs" in capsys.readouterr().err
    os.utime(data_dir / "part0.parquet", ns=(1, 1))
    assert run_cli("transform", data_dir, out, "--resume", "--quiet") == 2
    err = capsys.readouterr().err
    assert "the input file" in err and str(data_dir / "part0.parquet") in err, err


def test_resume_of_a_score_with_another_model_or_threshold_names_it(tmp_path, data_dir,
                                                                    capsys):
    model, out = tmp_path / "m.json", tmp_path / "s"
    assert run_cli("train", data_dir, model, "--label", "label", "--quiet") == 0
    assert run_cli("score", data_dir, model, out, "--quiet") == 0
    (out / "_SUCCESS").unlink()
    assert run_cli("score", data_dir, model, out, "--resume", "--threshold", "0.3",
                   "--quiet") == 2
    assert "--threshold differs from the interrupted run's (0.5 there, 0.3 now)" in \
        capsys.readouterr().err
    assert run_cli("train", data_dir, model, "--label", "label", "--C", "0.1", "--overwrite",
                   "--quiet") == 0
    assert run_cli("score", data_dir, model, out, "--resume", "--quiet") == 2
    assert "the model differs from the interrupted run's" in capsys.readouterr().err


def test_resume_of_a_train_with_other_parameters_names_the_first(tmp_path, data_dir, capsys):
    model = tmp_path / "m.json"
    assert run_cli("train", data_dir, model, "--label", "label", "--quiet") == 0
    assert run_cli("train", data_dir, model, "--label", "label", "--tol", "1e-3", "--resume",
                   "--quiet") == 2
    err = capsys.readouterr().err
    assert "cannot resume: --tol differs from the model file's" in err, err


def test_ctrl_c_stops_with_130_and_leaves_a_resumable_folder(tmp_path):
    data = _many_chunks(tmp_path)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "transform", str(data),
                             str(out), "--blocksize", "1", "--quiet"],
                            stderr=subprocess.PIPE, text=True)
    assert wait_until(lambda: len(_records(out)) >= 10)
    proc.send_signal(signal.SIGINT)
    t0 = time.time()
    assert proc.wait(30) == 130
    assert time.time() - t0 < 10
    assert "interrupted" in proc.stderr.read()
    assert not (out / "_SUCCESS").exists()
    assert run_cli("transform", data, out, "--blocksize", "1", "--resume", "--quiet") == 0
    assert read_output(out).num_rows == 600_000


def test_ctrl_c_on_a_local_cluster_is_one_error_line_and_130(tmp_path):
    """Ctrl-C at a terminal reaches the whole process group, the cluster's worker processes
    too: they leave the stop to the command, so no traceback of theirs is shown."""
    data = _many_chunks(tmp_path, groups=200)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "transform", str(data),
                             str(out), "--blocksize", "1", "--quiet", "--workers", "2"],
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert wait_until(lambda: len(_records(out)) >= 10, timeout=120)
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    assert proc.wait(60) == 130
    err = proc.stderr.read().strip().splitlines()
    assert err == ["error: interrupted; rerun with --resume to continue"], err
    assert not (out / "_SUCCESS").exists()
    assert run_cli("transform", data, out, "--blocksize", "1", "--resume", "--quiet") == 0
    assert read_output(out).num_rows == 400_000


def test_killed_dask_worker_is_survived(tmp_path):
    data = _many_chunks(tmp_path, groups=200)
    out, clean = tmp_path / "out", tmp_path / "clean"
    assert run_cli("transform", data, clean, "--blocksize", "1", "--quiet") == 0
    cluster = DaskProcesses(workers=2)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "pipeline", "transform", str(data),
                                 str(out), "--blocksize", "1", "--quiet", "--scheduler",
                                 cluster.address], stderr=subprocess.PIPE, text=True)
        assert wait_until(lambda: len(_records(out)) >= 10)
        victim = cluster.workers[0]
        assert proc.poll() is None  # the job is still running when the worker dies
        victim.kill()
        assert proc.wait(120) == 0, proc.stderr.read()
        assert victim.poll() is not None
    finally:
        cluster.close()
    assert read_output(out).equals(read_output(clean))


def test_chunk_that_kills_its_workers_stops_the_job_naming_its_file(tmp_path):
    (tmp_path / "oom").mkdir()
    n = 3_000_000
    t = pa.table({f"f{j}": np.random.default_rng(j).standard_normal(n) for j in range(6)})
    pq.write_table(t, tmp_path / "oom" / "big.parquet", row_group_size=n)  # one 144 MB chunk
    proc = run_proc("transform", tmp_path / "oom", tmp_path / "out", "--workers", "1",
                    "--memory-limit", "250MiB", "--quiet", timeout=300)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and "big.parquet" in lines[0]
    assert "killed the workers" in lines[0]
    assert not (tmp_path / "out" / "_SUCCESS").exists()
    assert not list((tmp_path / "out").glob("part-*"))


# --- the bad-input catalogue: exit 2, one `error:` line naming the file/column, nothing lost


def _bad_cases(tmp_path):
    data = write_parquet_files(tmp_path / "data")
    model = tmp_path / "model.json"
    assert run_cli("train", data, model, "--label", "label", "--quiet") == 0
    good_model = json.loads(model.read_text())
    cases = {}

    def folder(name):
        p = tmp_path / name
        p.mkdir()
        return p

    cases["missing path"] = (["transform", tmp_path / "nope"], "nope", None)
    e = folder("empty")
    (e / "_SUCCESS").write_text("")
    (e / ".hidden.parquet").write_text("")
    cases["only _ and . files"] = (["transform", e], "empty", None)
    c = folder("corrupt")
    (c / "x.parquet").write_bytes(os.urandom(2000))
    cases["corrupt parquet"] = (["transform", c], "x.parquet", None)
    tr = folder("trunc")
    raw = (data / "part0.parquet").read_bytes()
    (tr / "t.parquet").write_bytes(raw[: len(raw) // 2])
    cases["truncated parquet"] = (["transform", tr], "t.parquet", None)
    cv = folder("csvbad")
    (cv / "a.csv").write_text("id,x,y\n1,0.5,1.0\n2,abc,2.0\n")
    cases["csv non-numeric cell in selected column"] = (
        ["transform", cv, "--columns", "x"], "a.csv", "x")
    rg = folder("ragged")
    (rg / "a.csv").write_text("id,x,y\n1,0.5,1.0\n2,0.25\n")
    cases["csv ragged rows"] = (["transform", rg], "a.csv", None)
    cases["selected column missing"] = (["transform", data, "--columns", "zz"], "part0", "zz")
    cases["selected column not numeric"] = (["transform", data, "--columns", "name"],
                                            "part0", "name")
    sd = folder("schemadiff")
    pq.write_table(make_table(10), sd / "a.parquet")
    pq.write_table(make_table(10).drop(["f1"]), sd / "b.parquet")
    cases["schema differs"] = (["transform", sd], "b.parquet", "f1")
    mx = folder("mixed")
    pq.write_table(make_table(10), mx / "a.parquet")
    pacsv.write_csv(make_table(10), mx / "b.csv")
    cases["parquet and csv mixed"] = (["transform", mx], "mixed", None)
    cases["temperature <= 0"] = (["transform", data, "--temperature", "0"], "temperature",
                                 None)
    cases["empty range"] = (["transform", data, "--range", "1", "1"], "range", None)
    cases["unparsable size"] = (["transform", data, "--blocksize", "lots"], "blocksize", None)
    cases["label missing"] = (["train", data, tmp_path / "m1.json", "--label", "nolabel"],
                              "part0", "nolabel")
    lb = folder("badlabel")
    pq.write_table(make_table(20).set_column(6, "label", pa.array([2] * 20)), lb / "a.parquet")
    cases["label not in {0,1}"] = (["train", lb, tmp_path / "m2.json", "--label", "label"],
                                   "a.parquet", "label")
    nf = folder("nanfeature")
    t = make_table(20)
    f1 = t["f1"].to_numpy().copy()
    f1[7] = np.inf
    pq.write_table(t.set_column(2, "f1", pa.array(f1)), nf / "a.parquet")
    cases["inf in a training feature"] = (["train", nf, tmp_path / "m3.json", "--label",
                                           "label"], "a.parquet", "f1")
    cases["C <= 0"] = (["train", data, tmp_path / "m4.json", "--label", "label", "--C", "0"],
                       "--C", None)

    def model_file(name, content):
        p = tmp_path / name
        p.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
        return p

    cases["model truncated"] = (["score", data, model_file("trunc.json",
                                 model.read_bytes()[:40])], "trunc.json", None)
    cases["model is a pickle"] = (["score", data, model_file("p.json",
                                   pickle.dumps({"kind": "logistic"}))], "p.json", None)
    cases["model of another kind"] = (["score", data, model_file(
        "k.json", good_model | {"kind": "tree"})], "k.json", None)
    cases["model of another version"] = (["score", data, model_file(
        "v.json", good_model | {"version": 9})], "v.json", None)
    cases["model with non-finite coef"] = (["score", data, model_file(
        "nf.json", good_model | {"coef": [1.0, float("nan"), 0.0, 0.0]})], "nf.json", None)
    cases["model with mis-sized coef"] = (["score", data, model_file(
        "ms.json", good_model | {"coef": [1.0]})], "ms.json", None)
    cases["model feature the data lacks"] = (["score", data, model_file(
        "f.json", good_model | {"features": ["f0", "f1", "f2", "zz"]})], "part0", "zz")
    return cases


BAD = ["missing path", "only _ and . files", "corrupt parquet", "truncated parquet",
       "csv non-numeric cell in selected column", "csv ragged rows", "selected column missing",
       "selected column not numeric", "schema differs", "parquet and csv mixed",
       "temperature <= 0", "empty range", "unparsable size", "label missing",
       "label not in {0,1}", "inf in a training feature", "C <= 0", "model truncated",
       "model is a pickle", "model of another kind", "model of another version",
       "model with non-finite coef", "model with mis-sized coef",
       "model feature the data lacks"]


@pytest.fixture(scope="module")
def bad_cases(tmp_path_factory):
    return _bad_cases(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_error_line_exit_2_and_nothing_written(case, bad_cases, tmp_path,
                                                                capsys):
    args, names, column = bad_cases[case]
    cmd = args[0]
    out = tmp_path / "out"
    k = {"transform": 2, "score": 3}.get(cmd)
    if k is not None:
        args = [*args[:k], out, *args[k:]]
    code = run_cli(*args, "--quiet")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error:"), err
    assert names in err[0]
    if column:
        assert repr(column) in err[0]
    assert "Traceback" not in err[0]
    assert not (out / "_SUCCESS").exists()
    if cmd == "train":
        assert not os.path.exists(args[2])


def test_bad_input_in_a_real_process_has_no_traceback(tmp_path):
    proc = run_proc("transform", tmp_path / "missing", tmp_path / "out")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'missing'}: no such file or folder"]


def test_an_empty_input_folder_says_so(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert run_cli("transform", tmp_path / "empty", tmp_path / "out", "--quiet") == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {tmp_path / 'empty'}: folder holds no input files (names starting with _ or "
        ". are not input)"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", ["out is a file", "overwrite and resume", "no scheduler"])
def test_bad_usage_is_one_error_line_and_nothing_written(case, tmp_path, data_dir, capsys):
    out = tmp_path / "out"
    extra = []
    if case == "out is a file":
        out.write_text("keep me")
    elif case == "overwrite and resume":
        assert run_cli("transform", data_dir, out, "--quiet") == 0
        extra = ["--overwrite", "--resume"]
    else:
        extra = ["--scheduler", "tcp://127.0.0.1:1"]
    before = _snapshot(out) if out.is_dir() else (out.read_bytes() if out.exists() else None)
    capsys.readouterr()
    assert run_cli("transform", data_dir, out, *extra, "--quiet") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")
    after = _snapshot(out) if out.is_dir() else (out.read_bytes() if out.exists() else None)
    assert after == before


def test_the_command_ends_with_its_status_and_all_it_wrote(tmp_path):
    """The process ends right after the run, without the interpreter's teardown of every
    object: with the run's status and all it wrote (a usage error 2, --help 0, a bad input 2
    with its one line, a run 0 with its output whole, an exception escaping the command 1),
    the exit handlers registered during the run still called; where one was registered
    before the command started (coverage.py's, say), the process ends as usual and that one
    is called too."""
    from importlib.metadata import entry_points

    assert [e.value for e in entry_points(group="console_scripts", name="pipeline")] == \
        ["pipeline.cli.entry:run"]
    assert run_proc("transform").returncode == 2
    help_ = run_proc("transform", "--help")
    assert help_.returncode == 0 and "--io-concurrency" in help_.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("x\n0.5\nabc\n")
    proc = run_proc("transform", bad, tmp_path / "out", "--columns", "x", "--quiet")
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and \
        proc.stderr.count("\n") == 1 and not (tmp_path / "out").exists()
    good = tmp_path / "good.csv"
    good.write_text("x\n" + "\n".join(str(i / 7) for i in range(5000)) + "\n")
    proc = run_proc("transform", good, tmp_path / "out", "--quiet")
    assert proc.returncode == 0 and proc.stderr == ""
    assert read_output(tmp_path / "out").num_rows == 5000
    marks = {name: tmp_path / name for name in ("during", "before", "ended")}
    # os._exit watched: the fast end writes the status it ends with
    script = """
import atexit, os, sys, types
{first}
real_exit = os._exit
def ended(status):
    open({ended!r}, "w").write(str(status))
    real_exit(status)
os._exit = ended
def main(argv=None):
    atexit.register(lambda: open({during!r}, "w").write("called"))
    print("out" * 20000)
    return 3
sys.modules["pipeline.cli.parser"] = {parser}
from pipeline.cli import entry
entry.run()
"""

    def run(first="", parser="types.SimpleNamespace(main=main)"):
        for mark in marks.values():
            mark.unlink(missing_ok=True)
        text = script.format(first=first, parser=parser,
                             **{k: str(v) for k, v in marks.items()})
        return subprocess.run([sys.executable, "-c", text], capture_output=True, text=True,
                              timeout=60)

    proc = run()
    assert proc.returncode == 3 and proc.stdout == "out" * 20000 + "\n"
    assert marks["during"].read_text() == "called" and marks["ended"].read_text() == "3"
    proc = run(first=f"atexit.register(lambda: open({str(marks['before'])!r}, 'w').write('x'))")
    assert proc.returncode == 3 and proc.stdout == "out" * 20000 + "\n"
    assert marks["during"].exists() and marks["before"].exists()
    assert not marks["ended"].exists()  # the usual end
    proc = run(parser="None")  # the parser cannot be imported: a traceback, status 1
    assert proc.returncode == 1 and "ModuleNotFoundError" in proc.stderr
    assert marks["ended"].read_text() == "1"
    # python -m pipeline itself ends so
    text = (f"import os, runpy, sys\nreal = os._exit\n"
            f"os._exit = lambda s: (open({str(marks['ended'])!r}, 'w').write(str(s)), real(s))\n"
            f"sys.argv = ['pipeline', 'transform', {str(bad)!r}, {str(tmp_path / 'out2')!r}, "
            f"'--columns', 'x', '--quiet']\nrunpy.run_module('pipeline', run_name='__main__')\n")
    proc = subprocess.run([sys.executable, "-c", text], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and marks["ended"].read_text() == "2"
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
