"""On an existing cluster (``--scheduler``), an OUT that the workers cannot see is refused
before any work, naming the worker and the path, and nothing is left behind."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import DaskProcesses, run_cli, write_parquet_files


def _can_hide_folders() -> bool:
    """Whether a process may get a mount namespace of its own (root on Linux)."""
    if shutil.which("unshare") is None:
        return False
    res = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs none /mnt"],
                         capture_output=True)
    return res.returncode == 0


def _refused(err: str, path) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("error:") and "Traceback" not in line
    assert "on worker tcp://127.0.0.1:" in line and str(path) in line
    return line


@pytest.mark.skipif(not _can_hide_folders(), reason="needs a mount namespace (unshare -m)")
def test_a_local_out_the_workers_cannot_see_is_refused_before_any_work(tmp_path, capsys):
    """The workers run in a mount namespace where the client's folder is an empty tmpfs:
    like machines with no shared disk. The rerun, with a shared OUT, needs no flag."""
    here = tmp_path / "client"
    data = write_parquet_files(tmp_path / "shared" / "d")
    here.mkdir()
    out = here / "out"
    hide = ("unshare", "-m", "sh", "-c", f"mount -t tmpfs none {here} && exec")
    cluster = DaskProcesses(workers=1, cwd=tmp_path / "workers", wrap=hide)
    try:
        capsys.readouterr()
        assert run_cli("transform", data, out, "--scheduler", cluster.address,
                       "--quiet") == 2
        line = _refused(capsys.readouterr().err, out)
        assert "cannot be seen" in line
        assert not out.exists()  # no _job.json left to block the rerun
        # an interrupted output there: --resume is refused too, and the folder kept as it was
        assert run_cli("transform", data, out, "--quiet") == 0
        (out / "_SUCCESS").unlink()
        (out / "part-00000.parquet").unlink()  # a part left to write: work for a worker
        before = sorted(p.name for p in out.iterdir())
        assert run_cli("transform", data, out, "--resume", "--scheduler", cluster.address,
                       "--quiet") == 2
        _refused(capsys.readouterr().err, out)
        assert sorted(p.name for p in out.iterdir()) == before
        shared = tmp_path / "shared" / "out"  # a folder the worker sees
        assert run_cli("transform", data, shared, "--scheduler", cluster.address,
                       "--quiet") == 0
    finally:
        cluster.close()
    assert (shared / "_SUCCESS").exists()


def test_an_out_in_the_clients_memory_is_refused_on_a_cluster(tmp_path, capsys):
    """memory:// lives in the client's process: the workers cannot see it."""
    import fsspec

    data = write_parquet_files(tmp_path / "d")
    cluster = DaskProcesses(workers=1, cwd=tmp_path / "workers")
    mem = fsspec.filesystem("memory")
    try:
        capsys.readouterr()
        assert run_cli("transform", data, "memory://not-there/out", "--scheduler",
                       cluster.address, "--quiet") == 2
        _refused(capsys.readouterr().err, "memory://not-there/out")
        assert mem.find("/not-there/out") == []  # no pending attempt left behind
    finally:
        cluster.close()
