"""Logistic model: scikit-learn's optimum, JSON model file, scoring and evaluation."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import read_output, run_cli

import pipeline
from pipeline.model.estimator import ConvergenceWarning, LogisticModel
from pipeline.ops.kernels import log_sigmoid, sigmoid

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score  # noqa: E402


def objective(X, y, coef, b, C):
    """scikit-learn's objective: C * sum(loss) + ||w||^2 / 2 (or the sum alone)."""
    z = X @ coef + b
    loss = -np.sum(log_sigmoid(np.where(y > 0, z, -z)))
    return loss if C is None else C * loss + 0.5 * coef @ coef


def sk_fit(X, y, C):
    kw = {"C": np.inf} if C is None else {"C": C}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LogisticRegression(solver="newton-cholesky", tol=1e-12, max_iter=500,
                                  **kw).fit(X, y)


def synthetic(n=5000, p=6, seed=1, scale=None):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) * (scale if scale is not None else 1.0)
    w = rng.normal(size=p) / np.sqrt(p)
    if scale is not None:
        w = w / scale
    y = (rng.random(n) < sigmoid(X @ w + 0.3)).astype(np.int64)
    return X, y


@pytest.mark.parametrize("C", [1.0, 0.01])
def test_breast_cancer_raw_features_reach_sklearn_optimum(C):
    X, y = load_breast_cancer(return_X_y=True)
    m = LogisticModel(C=C).fit(X, y)
    sk = sk_fit(X, y, C)
    ours, theirs = objective(X, y, m.coef_[0], m.intercept_[0], C), \
        objective(X, y, sk.coef_[0], sk.intercept_[0], C)
    assert ours <= theirs * (1 + 1e-8)
    assert abs(ours - theirs) <= 1e-8 * abs(theirs)
    assert m.converged_


@pytest.mark.parametrize("C", [1.0, 0.01, None])
def test_synthetic_unscaled_features_reach_sklearn_optimum(C):
    X, y = synthetic(scale=np.array([1e-3, 1, 10, 1e3, 0.1, 5]))
    m = LogisticModel(C=C or 1.0, penalty=None if C is None else "l2").fit(X, y)
    sk = sk_fit(X, y, C)
    ours = objective(X, y, m.coef_[0], m.intercept_[0], C)
    theirs = objective(X, y, sk.coef_[0], sk.intercept_[0], C)
    assert abs(ours - theirs) <= 1e-8 * abs(theirs)


def test_wide_float32_data_and_dask_input_give_the_numpy_model(tmp_path):
    rng = np.random.default_rng(5)
    n, p = 3000, 200
    X = rng.standard_normal((n, p)).astype(np.float32)
    y = (rng.random(n) < sigmoid(X.astype(np.float64) @ (rng.normal(size=p) / 20))).astype(int)
    cols = {f"x{j}": pa.array(X[:, j]) for j in range(p)}
    cols["label"] = pa.array(y)
    (tmp_path / "wide").mkdir()
    t = pa.table(cols)
    pq.write_table(t.slice(0, 1500), tmp_path / "wide" / "a.parquet")
    pq.write_table(t.slice(1500), tmp_path / "wide" / "b.parquet")
    m_np = LogisticModel(C=0.5).fit(X.astype(np.float64), y)
    df = pipeline.read(tmp_path / "wide")
    m_dd = LogisticModel(C=0.5).fit(df, label="label")
    np.testing.assert_allclose(m_dd.coef_[0], m_np.coef_[0], rtol=1e-9, atol=1e-12)
    sk = sk_fit(X.astype(np.float64), y, 0.5)
    ours = objective(X.astype(np.float64), y, m_np.coef_[0], m_np.intercept_[0], 0.5)
    theirs = objective(X.astype(np.float64), y, sk.coef_[0], sk.intercept_[0], 0.5)
    assert abs(ours - theirs) <= 1e-8 * abs(theirs)
    proba = m_dd.predict_proba(df).compute()  # a dask array, (n, 2)
    np.testing.assert_allclose(proba[:, 1], m_np.predict_proba(X.astype(np.float64))[:, 1],
                               rtol=1e-9)


def _train_files(tmp_path, n=4000):
    X, y = synthetic(n=n)
    cols = {f"f{j}": pa.array(X[:, j]) for j in range(X.shape[1])}
    cols["label"] = pa.array(y)
    cols["id"] = pa.array(np.arange(n))
    (tmp_path / "d").mkdir()
    t = pa.table(cols)
    pq.write_table(t.slice(0, n // 2), tmp_path / "d" / "a.parquet", row_group_size=500)
    pq.write_table(t.slice(n // 2), tmp_path / "d" / "b.parquet", row_group_size=500)
    return tmp_path / "d", X, y


def test_cli_train_save_load_score_evaluate(tmp_path):
    data, X, y = _train_files(tmp_path)
    model_path = tmp_path / "model.json"
    assert run_cli("train", data, model_path, "--label", "label", "--C", "0.1",
                   "--blocksize", "8KiB", "--quiet") == 0
    d = json.loads(model_path.read_text())
    assert d["kind"] == "logistic" and d["version"] == 1 and d["C"] == 0.1
    assert d["features"] == [f"f{j}" for j in range(6)] and d["rows"] == 4000
    assert d["converged"] and d["passes"] == len(d["history"]) <= 10
    sk = sk_fit(X, y, 0.1)
    np.testing.assert_allclose(d["coef"], sk.coef_[0], rtol=1e-6, atol=1e-8)
    m = LogisticModel.load(model_path)
    assert m.to_dict()["coef"] == d["coef"]
    # scoring equals σ(Xw + b) of the saved model
    out = tmp_path / "scores"
    assert run_cli("score", data, model_path, out, "--threshold", "0.3", "--quiet") == 0
    got = read_output(out)
    assert got.column_names == ["label", "id", "probability", "prediction"]
    p = sigmoid(X @ np.array(d["coef"]) + d["intercept"])
    np.testing.assert_allclose(got["probability"].to_numpy(), p, rtol=1e-13)
    assert got["prediction"].type == pa.int8()
    np.testing.assert_array_equal(got["prediction"].to_numpy(), (p >= 0.3).astype(np.int8))


def test_evaluate_prints_json_metrics_matching_sklearn(tmp_path, capsys):
    data, X, y = _train_files(tmp_path)
    model_path = tmp_path / "model.json"
    assert run_cli("train", data, model_path, "--label", "label", "--quiet") == 0
    capsys.readouterr()
    assert run_cli("evaluate", data, model_path, "--label", "label", "--quiet") == 0
    res = json.loads(capsys.readouterr().out)
    d = json.loads(model_path.read_text())
    p = sigmoid(X @ np.array(d["coef"]) + d["intercept"])
    assert res["rows"] == 4000
    assert res["log_loss"] == pytest.approx(log_loss(y, p), rel=1e-10)
    assert res["accuracy"] == pytest.approx(accuracy_score(y, p >= 0.5))
    assert abs(res["auc"] - roc_auc_score(y, p)) <= 1e-4


def test_not_converged_warns_and_is_recorded():
    X, y = synthetic()
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        m = LogisticModel(max_iter=1).fit(X, y)
    assert m.converged_ is False and m.to_dict()["converged"] is False


def test_separable_without_penalty_warns_with_finite_coefficients():
    X = np.array([[-2.0], [-1.0], [1.0], [2.0]])
    y = np.array([0, 0, 1, 1])
    with pytest.warns(ConvergenceWarning, match="separable"):
        m = LogisticModel(penalty=None).fit(X, y)
    assert np.all(np.isfinite(m.coef_[0]))


@pytest.mark.parametrize("param,value", [("C", 0), ("C", -1.0), ("C", float("nan")),
                                         ("penalty", "l1"), ("tol", 0), ("max_iter", 0),
                                         ("max_iter", 1.5), ("drop_first", "yes")])
def test_invalid_parameters_get_one_clear_sentence(param, value):
    X, y = synthetic(n=50)
    with pytest.raises(pipeline.PipelineError,
                       match=rf"The '{param}' parameter of LogisticModel must be"):
        LogisticModel(**{param: value}).fit(X, y)


def test_get_set_params_like_sklearn():
    m = LogisticModel(C=2.0)
    assert m.get_params() == {"C": 2.0, "penalty": "l2", "tol": 1e-10, "max_iter": 50,
                              "class_weight": None, "drop_first": None}
    assert m.set_params(C=3.0).C == 3.0
    from sklearn.base import clone

    assert clone(m).get_params()["C"] == 3.0


def test_sigmoid_transformer_in_a_sklearn_pipeline():
    from sklearn.pipeline import make_pipeline

    X, y = synthetic(n=300)
    t = pipeline.SigmoidTransformer(feature_range=(-1, 1))
    Xt = t.fit_transform(X)
    np.testing.assert_allclose(Xt, -1 + 2 * sigmoid(X), atol=1e-15)
    assert list(t.get_feature_names_out()) == [f"x{i}" for i in range(6)]
    pipe = make_pipeline(pipeline.SigmoidTransformer(), LogisticRegression()).fit(X, y)
    assert pipe.score(X, y) > 0.6


def test_train_resume_keeps_the_same_jobs_model_and_refuses_another(tmp_path, capsys):
    data, X, y = _train_files(tmp_path)
    model_path = tmp_path / "model.json"
    assert run_cli("train", data, model_path, "--label", "label", "--quiet") == 0
    before = model_path.stat().st_mtime_ns, model_path.read_bytes()
    assert run_cli("train", data, model_path, "--label", "label", "--resume", "--quiet") == 0
    assert (model_path.stat().st_mtime_ns, model_path.read_bytes()) == before
    assert run_cli("train", data, model_path, "--label", "label", "--C", "0.5", "--resume",
                   "--quiet") == 2
    assert "--C differs from the model file's (1.0 there, 0.5 now)" in capsys.readouterr().err
    assert model_path.read_bytes() == before[1]
    assert run_cli("train", data, model_path, "--label", "label", "--quiet") == 2


@pytest.mark.parametrize("kind", ["plain", "weights", "balanced", "categorical"])
def test_warm_start_from_a_sample_reaches_the_same_optimum_in_fewer_passes(
        tmp_path, monkeypatch, kind):
    """On enough rows the solver first solves the objective on 1/32 of every block; the
    model is then the cold start's to 1e-9 and needs fewer passes over the data."""
    import pipeline.model.fit as model_module

    rng = np.random.default_rng(7)
    n = 120_000
    scale = np.array([1e-2, 1, 10, 100, 0.5])  # raw, unscaled features
    X = rng.standard_normal((n, 5)) * scale
    w = np.array([4.5, -6.0, 2.4, 3.6, -3.0]) / scale  # a strong signal: many Newton steps
    y = (rng.random(n) < sigmoid(X @ w + 0.3)).astype(np.int64)
    cols = {f"x{j}": X[:, j] for j in range(5)}
    cols["label"] = y
    args = []
    if kind == "weights":
        cols["w"] = rng.uniform(0.1, 3.0, n)
        args = ["--weight", "w"]
    elif kind == "balanced":
        args = ["--class-weight", "balanced"]
    elif kind == "categorical":
        cols["city"] = rng.choice(["a", "b", "c", "d"], n)
        args = ["--categorical", "city"]
    data = tmp_path / "data"
    data.mkdir()
    table = pa.table(cols)
    for k in range(4):  # 4 files, so 4 chunks and 4 blocks of the sample
        pq.write_table(table.slice(k * n // 4, n // 4), data / f"p{k}.parquet")
    feats = ["--features", *[f"x{j}" for j in range(5)]]

    def train(path, rows_for_warm_start):
        monkeypatch.setattr(model_module, "WARM_START_ROWS", rows_for_warm_start)
        assert run_cli("train", data, path, "--label", "label", *feats, *args,
                       "--quiet") == 0
        return json.loads(path.read_text())

    cold = train(tmp_path / "cold.json", 10**12)
    warm = train(tmp_path / "warm.json", 1000)
    assert cold["sample_passes"] == 0 and warm["sample_passes"] >= 2
    assert warm["passes"] < cold["passes"], (warm["passes"], cold["passes"])
    assert warm["converged"] and cold["converged"]
    # both stop when the next step would gain less than tol = 1e-10: the same optimum
    assert abs(warm["loss"] - cold["loss"]) <= 1e-10
    np.testing.assert_allclose(warm["coef"], cold["coef"], rtol=1e-5)
    assert warm["intercept"] == pytest.approx(cold["intercept"], rel=1e-5)
    # the history holds the passes over all the rows only: w = 0 first, then the sample's
    # optimum, already close
    assert [h["pass"] for h in warm["history"]] == list(range(1, warm["passes"] + 1))
    assert warm["history"][0]["loss"] == cold["history"][0]["loss"]
    assert warm["history"][1]["loss"] < cold["history"][1]["loss"]


def test_warm_start_in_the_estimator_matches_scikit_learn(monkeypatch):
    import pipeline.model.fit as model_module

    monkeypatch.setattr(model_module, "WARM_START_ROWS", 1000)
    X, y = synthetic(n=200_000, p=4, seed=5)
    m = LogisticModel(C=0.5).fit(X, y)
    assert m.sample_passes_ >= 2
    sk = sk_fit(X, y, 0.5)
    ours = objective(X, y, m.coef_[0], m.intercept_[0], 0.5)
    theirs = objective(X, y, sk.coef_[0], sk.intercept_[0], 0.5)
    assert abs(ours - theirs) <= 1e-9 * abs(theirs)


def _sorted_by_label_in_blocks(X, y, rows=65536):
    """Each 65,536-row block (the estimator's) with its negatives first, as in files
    written sorted by the label: the first 1/32 of every block holds one class only (the
    sample is every 32nd row, which holds both)."""
    order = np.concatenate([s + np.argsort(y[s:s + rows], kind="stable")
                            for s in range(0, len(y), rows)])
    return X[order], y[order]


def test_warm_start_on_rows_sorted_by_the_label_costs_no_passes(monkeypatch):
    """Rows sorted by the label: a sample of each block's first rows held one class, which
    has no finite optimum (the intercept is not penalised), and going on from where its
    solve stopped took 34 passes instead of 9. The sample of every 32nd row is fair."""
    import pipeline.model.fit as model_module

    rng = np.random.default_rng(1)
    X = rng.standard_normal((200_000, 4))
    y = (rng.random(len(X)) < sigmoid(X @ [1.0, -2.0, 0.5, 0.3] - 6)).astype(np.int64)
    X, y = _sorted_by_label_in_blocks(X, y)
    assert 0.01 < y.mean() < 0.05 and not y[:2048].any()
    monkeypatch.setattr(model_module, "WARM_START_ROWS", 10**12)
    cold = LogisticModel(C=1.0).fit(X, y)
    monkeypatch.setattr(model_module, "WARM_START_ROWS", 1000)
    warm = LogisticModel(C=1.0).fit(X, y)
    assert warm.converged_ and cold.converged_
    assert warm.passes_ <= cold.passes_, (warm.passes_, cold.passes_)
    np.testing.assert_allclose(warm.coef_, cold.coef_, rtol=1e-6)
    # with a tight max_iter the warm start must not be what stops it converging
    monkeypatch.setattr(model_module, "WARM_START_ROWS", 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        tight = LogisticModel(C=1.0, max_iter=cold.iterations_).fit(X, y)
    assert tight.converged_


def test_warm_start_sample_of_zero_weight_rows_still_trains(monkeypatch):
    """Every 32nd row weighs 0 (the sample's rows): the sample has no weight to solve on,
    and training goes on from w = 0, not an error."""
    import pipeline.model.fit as model_module

    monkeypatch.setattr(model_module, "WARM_START_ROWS", 1000)
    X, y = synthetic(n=200_000, p=4, seed=3)
    sw = np.ones(len(y))
    sw[::32] = 0.0  # the estimator's blocks are 65,536 rows: every block's sample rows
    m = LogisticModel(C=0.5).fit(X, y, sample_weight=sw)
    assert m.converged_ and m.sample_passes_ == 1
    keep = sw > 0
    sk = sk_fit(X[keep], y[keep], 0.5)
    ours = objective(X[keep], y[keep], m.coef_[0], m.intercept_[0], 0.5)
    theirs = objective(X[keep], y[keep], sk.coef_[0], sk.intercept_[0], 0.5)
    assert abs(ours - theirs) <= 1e-9 * abs(theirs)


def test_warm_start_sample_of_one_class_starts_cold(monkeypatch):
    """The sample's rows (every 32nd) are all negatives: no finite optimum to start from,
    so the solver starts at w = 0 and reaches the cold start's model."""
    import pipeline.model.fit as model_module

    X, y = synthetic(n=200_000, p=4, seed=4)
    y[::32] = 0
    monkeypatch.setattr(model_module, "WARM_START_ROWS", 10**12)
    cold = LogisticModel(C=1.0).fit(X, y)
    monkeypatch.setattr(model_module, "WARM_START_ROWS", 1000)
    warm = LogisticModel(C=1.0).fit(X, y)
    assert warm.sample_passes_ == 1 and warm.passes_ == cold.passes_
    np.testing.assert_array_equal(warm.coef_, cold.coef_)


def test_streamed_fit_warm_starts_from_a_sample_kept_in_its_first_pass(tmp_path, monkeypatch):
    """Data that is not cached is re-read on every pass; its first pass keeps every 32nd row
    of each chunk, the warm start is solved on those, and the passes over the files drop to
    the cached fit's. CSV chunks (rows unknown before reading) start cold."""
    import pipeline.api.train as api_module
    import pipeline.model.fit as model_module

    rng = np.random.default_rng(11)
    n = 160_000
    X = rng.standard_normal((n, 4)) * [1.0, 3.0, 0.2, 10.0]
    y = (rng.random(n) < sigmoid(X @ [3.0, -1.5, 12.0, 0.4] + 0.5)).astype(np.int64)
    table = pa.table({**{f"x{j}": X[:, j] for j in range(4)}, "label": y})
    data, csv = tmp_path / "data", tmp_path / "csv"
    data.mkdir()
    csv.mkdir()
    for k in range(4):
        pq.write_table(table.slice(k * n // 4, n // 4), data / f"p{k}.parquet")
        table.slice(k * n // 4, n // 4).to_pandas().to_csv(csv / f"p{k}.csv", index=False)

    def train(name, source=data):
        path = tmp_path / f"{name}.json"
        assert run_cli("train", source, path, "--label", "label", "--quiet") == 0
        return json.loads(path.read_text())

    monkeypatch.setattr(model_module, "WARM_START_ROWS", 1000)
    cached = train("cached")
    monkeypatch.setattr(api_module, "_fits_in_memory", lambda *a, **k: False)
    streamed = train("streamed")
    from_csv = train("csv", csv)
    monkeypatch.setattr(model_module, "WARM_START_ROWS", 10**12)
    cold = train("cold")

    assert cached["sample_passes"] >= 2 and streamed["sample_passes"] >= 2
    assert streamed["passes"] == cached["passes"] < cold["passes"]
    assert from_csv["sample_passes"] == 0 and from_csv["passes"] == cold["passes"]
    np.testing.assert_allclose(streamed["coef"], cached["coef"], rtol=1e-9)
    assert abs(streamed["loss"] - cold["loss"]) <= 1e-10
    np.testing.assert_allclose(streamed["coef"], cold["coef"], rtol=1e-5)


def test_fit_chunks_deciding_to_stream_reads_each_chunk_once_per_pass(tmp_path, monkeypatch):
    """fit_chunks(cache=None) over Parquet chunks (rows known) that do not fit: its first
    pass already read every chunk to decide, so it takes no sample (a second first pass,
    one read more than ``passes_`` counts); cache=False keeps one in that first pass."""
    import threading

    import pipeline.model.fit as model_module
    from pipeline.api import TrainChunk
    from pipeline.io.sources import plan
    from pipeline.ops.design import block_nbytes
    from pipeline.run.execution import LocalExecutor
    from pipeline.run.tasks import file_tasks

    rng = np.random.default_rng(5)
    n = 100_000
    X = rng.standard_normal((n, 3))
    y = (rng.random(n) < sigmoid(X @ [1.0, -2.0, 0.5])).astype(np.int64)
    for k in range(4):
        pq.write_table(pa.table({**{f"x{j}": X[k::4, j] for j in range(3)},
                                 "label": y[k::4]}), tmp_path / f"p{k}.parquet")
    feats = ("x0", "x1", "x2")
    tasks = file_tasks(plan(str(tmp_path), blocksize=400_000), columns=(*feats, "label"),
                       numeric=feats)
    chunks = [TrainChunk(t, feats, "label") for t in tasks]
    assert len(chunks) >= 4 and all(c.rows for c in chunks)
    reads, lock, load = [0], threading.Lock(), TrainChunk.load

    def counted(self):
        with lock:
            reads[0] += 1
        return load(self)

    monkeypatch.setattr(TrainChunk, "load", counted)
    monkeypatch.setattr(model_module, "WARM_START_ROWS", 1000)
    fits = {}
    for cache in (None, False):
        ex = LocalExecutor(2)
        ex.memory_limit = int(1.5 * block_nbytes(n, 3))  # the blocks: no; the sample: yes
        reads[0] = 0
        try:
            m = LogisticModel(C=1.0).fit_chunks(chunks, ex, features=feats, cache=cache)
        finally:
            ex.close()
        assert not m.cached_ and m.converged_
        assert reads[0] == m.passes_ * len(chunks), (cache, reads[0], m.passes_)
        fits[cache] = m
    assert fits[None].sample_passes_ == 0 and fits[False].sample_passes_ >= 2
    assert fits[False].passes_ < fits[None].passes_
    np.testing.assert_allclose(fits[False].coef_, fits[None].coef_, rtol=1e-6)
