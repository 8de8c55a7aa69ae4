"""Shared fixtures: real files in tmp_path, real dask scheduler and worker processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from s3_proxy import MotoServer, free_port

from pipeline.cli.parser import main


def run_cli(*args, capsys=None) -> int:
    """Run the CLI in this process (fast); returns the exit status."""
    return main([str(a) for a in args])


def run_proc(*args, timeout=120, **kw) -> subprocess.CompletedProcess:
    """Run ``python -m pipeline`` as a real process."""
    return subprocess.run([sys.executable, "-m", "pipeline", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, **kw)


def make_table(n: int, *, seed: int = 0, features: int = 3, start: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, features)) * 4
    cols = {"id": pa.array(np.arange(start, start + n, dtype=np.int64))}
    for j in range(features):
        cols[f"f{j}"] = pa.array(X[:, j])
    cols["g32"] = pa.array(X[:, 0].astype(np.float32))
    cols["name"] = pa.array([f"r{i}" for i in range(start, start + n)])
    z = X @ np.linspace(-1, 1, features) * 0.5 + 0.2
    cols["label"] = pa.array((rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.int64))
    return pa.table(cols)


def write_parquet_files(folder: Path, *, files: int = 2, rows: int = 1000,
                        row_group: int = 250, seed: int = 0, features: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(files):
        t = make_table(rows, seed=seed + k, features=features, start=k * rows)
        pq.write_table(t, folder / f"part{k}.parquet", row_group_size=row_group)
    return folder


def read_output(out: Path) -> pa.Table:
    manifest = json.loads((out / "_SUCCESS").read_text())
    return pa.concat_tables([pq.read_table(out / p["part"]) for p in manifest["parts"]])


def _wait_for_workers(address: str, n: int, timeout: float = 60) -> None:
    from distributed import Client

    with Client(address, timeout="30s") as c:
        c.wait_for_workers(n, timeout=timeout)


class DaskProcesses:
    """A real ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1."""

    def __init__(self, workers: int = 2, nthreads: int = 1, cwd=None, wrap=()) -> None:
        """``wrap``: a command line whose last argument, a shell command, is completed with
        each worker's command: e.g. a mount namespace of its own, where a folder of this
        machine is hidden (a machine without this one's disk)."""
        port = free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        env = dict(os.environ, PYTHONWARNINGS="ignore")
        self.scheduler = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
             "--port", str(port), "--no-dashboard", "--dashboard-address", ":0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        self.workers = [
            subprocess.Popen(
                _wrapped(wrap, [sys.executable, "-m", "distributed.cli.dask_worker",
                                self.address, "--host", "127.0.0.1", "--nthreads", str(nthreads),
                                "--no-nanny", "--no-dashboard", "--memory-limit", "2GiB",
                                "--name", f"w{i}"]),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                cwd=None if cwd is None else _own_folder(cwd, f"w{i}"))
            for i in range(workers)
        ]
        _wait_for_workers(self.address, workers)

    def close(self) -> None:
        for p in [*self.workers, self.scheduler]:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in [*self.workers, self.scheduler]:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def _wrapped(wrap, command: list[str]) -> list[str]:
    if not wrap:
        return command
    import shlex

    return [*wrap[:-1], f"{wrap[-1]} {shlex.join(command)}"]


def _own_folder(base, name):
    folder = Path(base) / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def dask_cluster():
    cluster = DaskProcesses()
    yield cluster
    cluster.close()


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return write_parquet_files(tmp_path / "data")


def wait_until(pred, timeout=60.0, interval=0.005):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(interval)
    return False


# --- a real S3 API on loopback: moto's server ---------------------------------------------------

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing-access-key",
    "AWS_SECRET_ACCESS_KEY": "s3cr3t-value-never-written-4f9a",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_SHARED_CREDENTIALS_FILE": "",
    "AWS_CONFIG_FILE": "",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture(scope="session")
def moto_server():
    server = MotoServer(S3_ENV)
    saved = {k: os.environ.get(k) for k in [*S3_ENV, "AWS_ENDPOINT_URL", "AWS_PROFILE"]}
    os.environ.update(S3_ENV)
    os.environ["AWS_ENDPOINT_URL"] = server.endpoint  # botocore reads it (s3fs, dask workers)
    os.environ.pop("AWS_PROFILE", None)
    yield server
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    server.close()


@pytest.fixture
def bucket(moto_server):
    """A fresh, empty bucket (its ``s3://`` URL) on the moto server."""
    import uuid

    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    name = f"b-{uuid.uuid4().hex[:12]}"
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": moto_server.endpoint})
    fs.mkdir(name)
    return f"s3://{name}"


def s3fs_client(moto_server):
    import s3fs

    return s3fs.S3FileSystem(client_kwargs={"endpoint_url": moto_server.endpoint},
                             skip_instance_cache=True)
