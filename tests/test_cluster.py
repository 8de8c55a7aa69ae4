"""On a Dask cluster a command shows its dashboard and can keep Dask's performance report."""

from __future__ import annotations

import pytest
from conftest import run_cli, write_parquet_files

pytest.importorskip("bokeh")  # Dask's dashboard and performance report draw with it


def test_workers_print_the_dashboard_and_write_the_performance_report(tmp_path, capsys):
    data = write_parquet_files(tmp_path / "d")
    report = tmp_path / "perf.html"
    assert run_cli("train", data, tmp_path / "m.json", "--label", "label", "--workers", "1",
                   "--performance-report", report) == 0
    err = capsys.readouterr().err
    line = next(ln for ln in err.splitlines() if ln.startswith("dask dashboard: "))
    assert line.startswith("dask dashboard: http://") and line.endswith("/status")
    page = report.read_text()
    assert "<html" in page.lower() and "Dask Performance Report" in page


def test_quiet_prints_no_dashboard(tmp_path, capsys):
    data = write_parquet_files(tmp_path / "d")
    assert run_cli("transform", data, tmp_path / "o", "--workers", "1", "--quiet") == 0
    assert "dashboard" not in capsys.readouterr().err


def test_performance_report_without_a_cluster_is_an_error(tmp_path, capsys):
    data = write_parquet_files(tmp_path / "d")
    assert run_cli("transform", data, tmp_path / "o", "--performance-report",
                   tmp_path / "p.html", "--quiet") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "needs a Dask cluster" in err
    assert not (tmp_path / "o").exists() and not (tmp_path / "p.html").exists()


def test_a_clusters_records_are_written_concurrently_and_a_failed_write_is_raised():
    """On an object store the client writes each part's record (a PUT) on threads of its
    own: three writes that each wait for the other two all finish, each is counted once
    written, in the order submitted, and the first failed write's error is the one raised."""
    import threading
    import time

    from pipeline.run.chunks import _RecordWrites

    barrier = threading.Barrier(3, timeout=10)
    written = []

    def append(rec):
        barrier.wait()  # passes only when three writes are under way at once
        time.sleep(0.05 * (3 - rec["chunk"]))  # the last submitted ends first
        written.append(rec["chunk"])

    counted = []
    writes = _RecordWrites(append, 4, lambda rec: counted.append(rec["chunk"]))
    for i in range(3):
        writes.submit({"chunk": i})
    writes.drain()
    assert written == [2, 1, 0] and counted == [0, 1, 2]

    def failing(rec):
        time.sleep(0.2 if rec["chunk"] == 7 else 0)
        raise OSError(f"store down at record {rec['chunk']}")

    counted.clear()
    writes = _RecordWrites(failing, 2, counted.append)
    writes.submit({"chunk": 7})
    writes.submit({"chunk": 8})
    with pytest.raises(OSError, match="record 7"):
        writes.drain()
    assert counted == []


def _ctrl_c_before_the_coroutine_starts(monkeypatch):
    """distributed's own ``sync``, with the Ctrl-C landing in its first wait (before its
    coroutine has set ``future``): the race a real Ctrl-C hits now and then."""
    import threading
    import types

    import distributed.utils as du

    class FirstWaitInterrupted(threading.Event):
        def wait(self, timeout=None):
            if not getattr(self, "interrupted", False):
                self.interrupted = True
                raise KeyboardInterrupt
            return super().wait(timeout)

    runner = du.LoopRunner(asynchronous=False)
    runner.start()
    patched = types.ModuleType("threading")
    patched.__dict__.update(threading.__dict__)
    patched.Event = FirstWaitInterrupted
    monkeypatch.setattr(du, "threading", patched)

    async def work():
        return 1

    # the loop held until the Ctrl-C is raised: on a busy machine its thread could otherwise
    # run the whole coroutine before sync's first wait (then nothing is interrupted)
    gate = threading.Event()
    runner.loop.add_callback(gate.wait, 10)
    try:
        with pytest.raises(KeyboardInterrupt):
            du.sync(runner.loop, work)
        gate.set()
        done = threading.Event()
        runner.loop.add_callback(done.set)  # after the cancel callback
        assert done.wait(10)
    finally:
        gate.set()
        monkeypatch.undo()
        runner.stop()


def test_the_ctrl_c_race_in_distributed_sync_logs_nothing_on_a_cluster(monkeypatch, caplog):
    import logging

    from pipeline.run import cluster

    logger = logging.getLogger("tornado.application")
    for f in [f for f in logger.filters if isinstance(f, cluster._CtrlCRace)]:
        logger.removeFilter(f)
    _ctrl_c_before_the_coroutine_starts(monkeypatch)  # without the filter: logged
    assert [r for r in caplog.records if r.name == "tornado.application"
            and isinstance(r.exc_info[1], NameError)]
    caplog.clear()
    cluster.drop_ctrl_c_race_log()
    _ctrl_c_before_the_coroutine_starts(monkeypatch)
    assert not [r for r in caplog.records if r.name == "tornado.application"]
    # any other failure of a callback is still logged
    logger.error("Exception in callback %r", "other", exc_info=NameError("name 'x'"))
    assert [r.getMessage() for r in caplog.records] == ["Exception in callback 'other'"]
