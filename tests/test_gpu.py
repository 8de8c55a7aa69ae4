"""The CuPy path: the same kernels, scoring and training on a GPU (skipped without CUDA).

Without CuPy or a CUDA device these tests are skipped with the reason; the CPU-only checks
at the bottom always run (the array-API path and the clear error for --device gpu).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import read_output, run_cli, write_parquet_files

from pipeline.ops.device import gpu_problem

PROBLEM = gpu_problem()
needs_gpu = pytest.mark.skipif(PROBLEM is not None, reason=f"no GPU here: {PROBLEM}")


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cupy_kernels_match_cpu_within_4_ulp(dtype):
    import cupy

    from pipeline import log_sigmoid, sigmoid, sigmoid_derivative

    x = np.concatenate([np.linspace(-750, 750, 300_001), np.linspace(-30, 30, 100_001)])
    x = x.astype(dtype)
    for fn in (sigmoid, log_sigmoid, sigmoid_derivative):
        g = fn(cupy.asarray(x))
        assert isinstance(g, cupy.ndarray) and g.dtype == dtype
        np.testing.assert_array_max_ulp(cupy.asnumpy(g), fn(x), maxulp=4)


@pytest.mark.gpu
@needs_gpu
def test_transform_score_and_train_on_gpu_match_cpu(tmp_path):
    data = write_parquet_files(tmp_path / "data", files=2, rows=5000)
    for dev in ("cpu", "gpu"):
        assert run_cli("transform", data, tmp_path / f"t-{dev}", "--device", dev,
                       "--quiet") == 0
        assert run_cli("train", data, tmp_path / f"m-{dev}.json", "--label", "label",
                       "--device", dev, "--quiet") == 0
        assert run_cli("score", data, tmp_path / "m-cpu.json", tmp_path / f"s-{dev}",
                       "--device", dev, "--quiet") == 0
    tc, tg = read_output(tmp_path / "t-cpu"), read_output(tmp_path / "t-gpu")
    np.testing.assert_array_max_ulp(tg["f0"].to_numpy(), tc["f0"].to_numpy(), maxulp=4)
    sc, sg = read_output(tmp_path / "s-cpu"), read_output(tmp_path / "s-gpu")
    np.testing.assert_allclose(sg["probability"].to_numpy(), sc["probability"].to_numpy(),
                               rtol=1e-12)
    recs = (tmp_path / "s-gpu" / "_chunks.jsonl").read_text().splitlines()
    assert all(json.loads(r)["device"] == "gpu" for r in recs)
    mc = json.loads((tmp_path / "m-cpu.json").read_text())
    mg = json.loads((tmp_path / "m-gpu.json").read_text())
    assert abs(mg["loss"] - mc["loss"]) <= 1e-8 * abs(mc["loss"])


@pytest.mark.skipif(PROBLEM is None, reason="a GPU is present: the error path is not taken")
def test_device_gpu_without_cuda_is_a_clear_error(tmp_path, capsys):
    data = write_parquet_files(tmp_path / "data", files=1, rows=100)
    assert run_cli("transform", data, tmp_path / "out", "--device", "gpu", "--quiet") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --device gpu: ") and ("CuPy" in err or "CUDA" in err)
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(PROBLEM is None, reason="a GPU is present: auto picks it")
def test_device_auto_without_cuda_runs_on_cpu_and_says_so(tmp_path):
    data = write_parquet_files(tmp_path / "data", files=1, rows=100)
    assert run_cli("transform", data, tmp_path / "out", "--device", "auto", "--quiet") == 0
    recs = (tmp_path / "out" / "_chunks.jsonl").read_text().splitlines()
    assert all(json.loads(r)["device"] == "cpu" for r in recs)


def test_scoring_path_runs_on_array_api_strict_arrays():
    xp = pytest.importorskip("array_api_strict")
    from pipeline.model.estimator import LogisticModel

    X = np.random.default_rng(0).standard_normal((200, 3))
    y = (X[:, 0] > 0).astype(int)
    m = LogisticModel(C=0.1).fit(X, y)
    proba = m.predict_proba(xp.asarray(X))
    assert type(proba) is type(xp.asarray(X))
    np.testing.assert_allclose(np.asarray(proba), m.predict_proba(X), rtol=1e-14)


def test_training_statistics_run_on_array_api_strict_arrays():
    xp = pytest.importorskip("array_api_strict")
    from pipeline.model.stats import partition_stats

    rng = np.random.default_rng(1)
    X = rng.standard_normal((500, 4))
    y = (rng.random(500) < 0.5).astype(np.float64)
    coef = np.array([0.3, -0.2, 0.1, 0.0])
    ref = partition_stats((X, y), coef, 0.2)
    got = partition_stats((xp.asarray(X), xp.asarray(y)), coef, 0.2)
    assert got[0] == ref[0] and got[4] == ref[4]
    assert got[1] == pytest.approx(ref[1], rel=1e-13)
    np.testing.assert_allclose(got[2], ref[2], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(got[3], ref[3], rtol=1e-12, atol=1e-13)
