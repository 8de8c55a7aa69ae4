"""A library call leaves the process's settings as it found them: pyarrow's default memory
pool, the BLAS thread limit, the ``distributed`` logger and its environment variable."""

from __future__ import annotations

import logging
import os

import pyarrow as pa
from conftest import write_parquet_files
from threadpoolctl import threadpool_info

import pipeline
from pipeline.config.exec_options import ExecOptions
from pipeline.run.execution import open_executor


def _settings() -> dict:
    return {
        "pool": pa.default_memory_pool().backend_name,
        "blas": {i["filepath"]: i["num_threads"] for i in threadpool_info()
                 if i["user_api"] == "blas"},
        "distributed": logging.getLogger("distributed").level,
        "env": os.environ.get("DASK_LOGGING__DISTRIBUTED"),
    }


def test_a_library_call_leaves_the_process_settings_as_they_were(tmp_path):
    data = tmp_path / "in"
    write_parquet_files(data, files=2, rows=500)
    before = _settings()
    pipeline.transform_files(data, tmp_path / "t", options=ExecOptions(quiet=True))
    model = pipeline.train_files(data, None, label="label", options=ExecOptions(quiet=True))
    pipeline.score_files(data, model, tmp_path / "s", options=ExecOptions(quiet=True))
    after = _settings()
    # a BLAS that the call loaded (SciPy's) was not there to change
    after["blas"] = {k: v for k, v in after["blas"].items() if k in before["blas"]}
    assert after == before


def test_the_settings_are_changed_only_while_chunks_run():
    before = _settings()
    with open_executor(ExecOptions(threads_per_worker=2)):
        inside = _settings()
    assert _settings() == before
    if before["blas"]:
        assert all(n == 1 for n in inside["blas"].values())
    try:
        pa.jemalloc_memory_pool()
    except (NotImplementedError, pa.ArrowException):
        return
    assert inside["pool"] == "jemalloc"


def test_a_local_cluster_quiets_distributed_only_while_it_runs():
    before = _settings()
    with open_executor(ExecOptions(workers=1, threads_per_worker=1)):
        assert logging.getLogger("distributed").level == logging.CRITICAL
        assert os.environ["DASK_LOGGING__DISTRIBUTED"] == "critical"
    assert _settings() == before
