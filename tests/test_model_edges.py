"""Model edge cases: a feature with no curvature, one-class labels, the positive class on
--resume."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import read_output, run_cli

from pipeline.model.estimator import LogisticModel, RankWarning
from pipeline.model.newton import PassStats, newton_solve, newton_step
from pipeline.ops.kernels import log_sigmoid

sklearn = pytest.importorskip("sklearn")
from sklearn.linear_model import LogisticRegression  # noqa: E402


def _zero_column_data(n=400, seed=3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n) * 2
    y = (rng.random(n) < 1 / (1 + np.exp(-(0.8 * x - 0.2)))).astype(np.int64)
    return pd.DataFrame({"f0": x, "zero": np.zeros(n), "label": y})


def test_newton_step_leaves_a_coordinate_without_curvature_where_it_is():
    H = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 0.0]])
    g = np.array([0.3, -0.2, 1e-17])   # rounding left in the flat coordinate's gradient
    step = newton_step(H, g)
    assert step[2] == 0.0
    np.testing.assert_allclose(step[:2], np.linalg.solve(H[:2, :2], -g[:2]), rtol=1e-12)


def test_the_last_newton_step_is_evaluated_before_it_is_kept():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.standard_normal((300, 2)), np.ones(300)])
    y = (rng.random(300) < 0.4).astype(float)
    seen = []

    def stats(coef, b):
        seen.append((coef.copy(), b))
        z = X[:, :2] @ coef + b
        s = 1 / (1 + np.exp(-z))
        loss = -np.sum(log_sigmoid(np.where(y > 0, z, -z)))
        return PassStats(weight=300.0, loss=float(loss), grad=X.T @ (s - y),
                         hess=(X * (s * (1 - s))[:, None]).T @ X, wrong=1, rows=300)

    res = newton_solve(stats, 2, C=None, tol=1e-10, max_iter=50)
    assert res.converged
    last_coef, last_b = seen[-1]
    assert np.array_equal(res.coef, last_coef) and res.intercept == last_b
    assert res.passes == len(seen) == len(res.history)
    assert res.loss == res.history[-1]["loss"]


@pytest.mark.parametrize("penalty", [None, "l2"])
def test_an_all_zero_feature_gets_coefficient_zero_like_scikit_learn(penalty):
    d = _zero_column_data()
    X, y = d[["f0", "zero"]], d["label"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RankWarning)
        m = LogisticModel(penalty=penalty).fit(X, y)
    sk = LogisticRegression(C=np.inf if penalty is None else 1.0, tol=1e-12,
                            max_iter=1000).fit(X, y)
    assert m.coef_[0, 1] == 0.0
    np.testing.assert_allclose(m.coef_[0], sk.coef_[0], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(m.intercept_, sk.intercept_, rtol=1e-5, atol=1e-8)
    assert m.converged_
    tiny = pd.DataFrame({"f0": [0.0], "zero": [1e-300]})
    assert m.predict_proba(tiny)[0, 1] < 0.9


def test_cli_all_zero_feature_without_penalty_is_zero_and_scores_a_tiny_value_sanely(
        tmp_path, capsys):
    d = _zero_column_data()
    data = tmp_path / "d.csv"
    d.to_csv(data, index=False)
    model = tmp_path / "m.json"
    assert run_cli("train", data, model, "--label", "label", "--no-penalty", "--quiet") == 0
    m = json.loads(model.read_text())
    sk = LogisticRegression(C=np.inf, tol=1e-12, max_iter=1000).fit(
        d[["f0", "zero"]], d["label"])
    assert m["features"] == ["f0", "zero"] and m["coef"][1] == 0.0 and m["converged"]
    np.testing.assert_allclose(m["coef"][0], sk.coef_[0, 0], rtol=1e-5)
    assert m["loss"] == m["history"][-1]["loss"]
    rows = tmp_path / "rows.csv"
    pd.DataFrame({"f0": [0.0, 0.0], "zero": [1e-300, -1e-300]}).to_csv(rows, index=False)
    assert run_cli("score", rows, model, tmp_path / "out", "--quiet") == 0
    proba = read_output(tmp_path / "out")["probability"].to_numpy()
    assert np.all(proba < 0.9) and np.all(proba > 0.1)
    capsys.readouterr()


ONE_CLASS = {
    "zeros": [0] * 6,
    "ones": [1] * 6,
    "true": [True] * 6,
    "false": [False] * 6,
    "integer": [7] * 6,
    "text": ["yes"] * 6,
}


def _one_class_frame(values):
    return pd.DataFrame({"f0": np.linspace(-1, 1, len(values)), "label": values})


@pytest.mark.parametrize("kind", sorted(ONE_CLASS))
def test_cli_train_on_a_one_class_label_is_one_error(tmp_path, capsys, kind):
    d = _one_class_frame(ONE_CLASS[kind])
    data = tmp_path / "d.parquet"
    d.to_parquet(data, index=False)
    model = tmp_path / "m.json"
    assert run_cli("train", data, model, "--label", "label", "--quiet") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert "label takes only one value" in err[0] and repr(ONE_CLASS[kind][0]) in err[0]
    assert not model.exists()


@pytest.mark.parametrize("kind", ["zeros", "ones", "text"])
def test_cli_train_on_a_one_class_csv_label_is_one_error_even_naming_the_positive(
        tmp_path, capsys, kind):
    data = tmp_path / "d.csv"
    _one_class_frame(ONE_CLASS[kind]).to_csv(data, index=False)
    model = tmp_path / "m.json"
    for extra in ([], ["--positive", str(ONE_CLASS[kind][0])]):
        assert run_cli("train", data, model, "--label", "label", *extra, "--quiet") == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "label takes only one value" in err[0], err
        assert not model.exists()


@pytest.mark.parametrize("kind", sorted(ONE_CLASS))
def test_library_fit_on_a_one_class_label_raises_the_same_message(kind):
    import dask.dataframe as dd

    d = _one_class_frame(ONE_CLASS[kind])
    with pytest.raises(ValueError, match=r"label takes only one value \(" +
                       repr(ONE_CLASS[kind][0]).replace("'", ".") + r"\)"):
        LogisticModel().fit(d[["f0"]], d["label"])
    with pytest.raises(ValueError, match=r"label takes only one value"):
        LogisticModel().fit(d[["f0"]].to_numpy(), d["label"].to_numpy())
    with pytest.raises(ValueError, match=r"label takes only one value \(" +
                       repr(ONE_CLASS[kind][0]).replace("'", ".") + r"\)"):
        LogisticModel().fit(dd.from_pandas(d, npartitions=2), label="label")


def _resume_data(tmp_path):
    d = _zero_column_data()[["f0", "label"]]
    data = tmp_path / "d.csv"
    d.to_csv(data, index=False)
    return data


def test_train_resume_without_positive_refuses_a_model_of_the_other_positive_class(
        tmp_path, capsys):
    data, model = _resume_data(tmp_path), tmp_path / "m.json"
    assert run_cli("train", data, model, "--label", "label", "--positive", "0", "--quiet") == 0
    before = model.read_bytes()
    for extra in ([], ["--positive", "1"]):
        assert run_cli("train", data, model, "--label", "label", "--resume", *extra,
                       "--quiet") == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and "--positive" in err[0], err
        assert model.read_bytes() == before
    assert run_cli("train", data, model, "--label", "label", "--resume", "--positive", "0",
                   "--quiet") == 0
    assert model.read_bytes() == before


def test_train_resume_with_the_implied_positive_class_keeps_the_model(tmp_path, capsys):
    data, model = _resume_data(tmp_path), tmp_path / "m.json"
    assert run_cli("train", data, model, "--label", "label", "--quiet") == 0
    before = model.stat().st_mtime_ns, model.read_bytes()
    for extra in ([], ["--positive", "1"]):
        assert run_cli("train", data, model, "--label", "label", "--resume", *extra,
                       "--quiet") == 0
        assert (model.stat().st_mtime_ns, model.read_bytes()) == before
    assert run_cli("train", data, model, "--label", "label", "--resume", "--positive", "0",
                   "--quiet") == 2
    assert "--positive" in capsys.readouterr().err


@pytest.mark.parametrize("changed, param", [
    (["--dtype", "f0=float32"], "--dtype"),
    (["--null-values", "NA"], "--null-values"),
])
def test_train_resume_refuses_another_dtype_or_null_values(tmp_path, capsys, changed, param):
    data, model = _resume_data(tmp_path), tmp_path / "m.json"
    assert run_cli("train", data, model, "--label", "label", "--quiet") == 0
    before = model.read_bytes()
    assert run_cli("train", data, model, "--label", "label", "--resume", *changed,
                   "--quiet") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and param in err[0], err
    assert model.read_bytes() == before
    # trained with it, resumed with it: kept; resumed without it: refused
    assert run_cli("train", data, model, "--label", "label", "--overwrite", *changed,
                   "--quiet") == 0
    before = model.read_bytes()
    assert run_cli("train", data, model, "--label", "label", "--resume", *changed,
                   "--quiet") == 0
    assert model.read_bytes() == before
    assert run_cli("train", data, model, "--label", "label", "--resume", "--quiet") == 2
    assert param in capsys.readouterr().err
