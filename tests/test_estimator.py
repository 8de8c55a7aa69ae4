"""LogisticModel as a scikit-learn estimator: the attributes, methods and checks of one, and
a model fitted in the library with named columns is the CLI's model (and back)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import read_output, run_cli

from pipeline.model.estimator import LogisticModel
from pipeline.ops.kernels import log_sigmoid

sklearn = pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402


@parametrize_with_checks([LogisticModel()])
def test_sklearn_check_estimator(estimator, check):
    # every check applies but the multiclass ones, declared off by the tags (binary only)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "does not inherit from BaseEstimator"
        check(estimator)


def test_binary_only_is_declared_in_the_tags_with_the_sklearn_error():
    from sklearn.utils import get_tags

    tags = get_tags(LogisticModel())
    assert tags.estimator_type == "classifier" and tags.classifier_tags.multi_class is False
    X = np.arange(12.0).reshape(6, 2)
    with pytest.raises(ValueError, match="Only binary classification is supported"):
        LogisticModel().fit(X, [0, 1, 2, 0, 1, 2])


@pytest.fixture(scope="module")
def cancer():
    data = load_breast_cancer(as_frame=True)
    y = data.target.map({0: "malignant", 1: "benign"}).rename("diagnosis")
    return data.data, y


def test_fitted_attributes_have_sklearn_shapes_and_names(cancer):
    X, y = cancer
    m = LogisticModel(C=0.5).fit(X, y)
    assert m.classes_.tolist() == ["benign", "malignant"]  # sorted; the second is positive
    assert m.n_features_in_ == 30 and m.feature_names_in_.tolist() == list(X.columns)
    assert m.coef_.shape == (1, 30) and m.intercept_.shape == (1,)
    assert m.n_iter_.shape == (1,) and m.n_iter_[0] >= 1
    z = m.decision_function(X)
    assert z.shape == (len(X),)
    np.testing.assert_allclose(z, X.to_numpy() @ m.coef_[0] + m.intercept_[0], rtol=1e-12)
    proba = m.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-15)
    lp = m.predict_log_proba(X)  # log σ(±z): where p rounds near 1, np.log(p) loses digits
    np.testing.assert_allclose(lp, np.log(proba), rtol=1e-9, atol=1e-15)
    np.testing.assert_array_equal(lp[:, 1], log_sigmoid(z))
    assert set(m.predict(X)) <= set(m.classes_)
    assert m.score(X, y) == pytest.approx(np.mean(m.predict(X) == y))
    # far in the tails the log-probabilities stay exact (log σ, not log of a rounded p)
    far = X.iloc[:1] * 1e4
    lp = m.predict_log_proba(far)
    assert np.all(np.isfinite(lp))
    zf = m.decision_function(far)
    np.testing.assert_allclose(lp[:, 0], log_sigmoid(-zf), rtol=1e-15)


def test_predict_checks_columns_by_name_like_sklearn(cancer):
    X, y = cancer
    m = LogisticModel().fit(X, y)
    reordered = X[list(reversed(X.columns))]
    with pytest.raises(ValueError, match="feature names should match"):
        m.predict_proba(reordered)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        m.predict(X.to_numpy())
    with pytest.raises(ValueError, match="X has 29 features"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        m.predict(X.to_numpy()[:, 1:])


def test_clone_pipeline_gridsearch_and_cross_val_score_match_sklearn(cancer):
    X, y = cancer
    ours = make_pipeline(StandardScaler(), LogisticModel())
    theirs = make_pipeline(StandardScaler(),
                           LogisticRegression(solver="newton-cholesky", tol=1e-12, max_iter=500))
    grid = {"logisticmodel__C": [0.01, 0.1, 1.0]}
    gs = GridSearchCV(ours, grid, cv=3).fit(X, y)
    ref = GridSearchCV(theirs, {"logisticregression__C": [0.01, 0.1, 1.0]}, cv=3).fit(X, y)
    np.testing.assert_allclose(gs.cv_results_["mean_test_score"],
                               ref.cv_results_["mean_test_score"], atol=1e-12)
    assert gs.best_params_["logisticmodel__C"] == ref.best_params_["logisticregression__C"]
    s1 = cross_val_score(clone(ours), X, y, cv=4, scoring="neg_log_loss")
    s2 = cross_val_score(clone(theirs), X, y, cv=4, scoring="neg_log_loss")
    np.testing.assert_allclose(s1, s2, rtol=1e-8)
    assert clone(LogisticModel(C=3.0, class_weight="balanced")).get_params()["class_weight"] \
        == "balanced"


def test_library_model_with_named_columns_is_the_clis_and_back(cancer, tmp_path):
    X, y = cancer
    frame = X.assign(diagnosis=y.to_numpy())
    path = tmp_path / "cancer.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    # library -> CLI: the saved features are the column names, the classes the label's
    m = LogisticModel(C=0.1).fit(X, y)
    m.save(tmp_path / "lib.json")
    d = json.loads((tmp_path / "lib.json").read_text())
    assert d["features"] == list(X.columns) and len(d["coef"]) == 30
    assert (d["positive"], d["negative"]) == ("malignant", "benign")
    out = tmp_path / "scores"
    assert run_cli("score", path, tmp_path / "lib.json", out, "--quiet") == 0
    np.testing.assert_allclose(read_output(out)["probability"].to_numpy(),
                               m.predict_proba(X)[:, 1], rtol=1e-13)
    # CLI -> library: a trained model file predicts from a DataFrame by column name
    assert run_cli("train", path, tmp_path / "cli.json", "--label", "diagnosis", "--C", "0.1",
                   "--quiet") == 0
    cli = LogisticModel.load(tmp_path / "cli.json")
    assert cli.classes_.tolist() == ["benign", "malignant"]
    assert cli.feature_names_in_.tolist() == list(X.columns)
    np.testing.assert_allclose(cli.predict_proba(X), m.predict_proba(X), rtol=1e-7)
    assert (cli.predict(X) == m.predict(X)).all()
    with pytest.raises(ValueError, match="feature names should match"):
        cli.predict(X[list(reversed(X.columns))])
