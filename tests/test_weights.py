"""Sample weights and class weights: scikit-learn's weighted objective, exactly, on real data."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_cli

from pipeline.model.estimator import LogisticModel
from pipeline.ops.kernels import log_sigmoid

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score  # noqa: E402
from sklearn.utils.class_weight import compute_class_weight  # noqa: E402


def weighted_objective(X, y, coef, b, s, C=1.0):
    """scikit-learn's objective with per-row weights s: C * sum(s * loss) + ||w||^2 / 2."""
    z = X @ coef + b
    return C * float(s @ -log_sigmoid(np.where(y > 0, z, -z))) + 0.5 * float(coef @ coef)


def row_weights(y, class_weight, sample_weight):
    """The weight scikit-learn gives each row: sample weight times its class's weight."""
    sw = np.ones(len(y)) if sample_weight is None else sample_weight
    cw = compute_class_weight(class_weight, classes=np.array([0, 1]), y=y,
                              sample_weight=sample_weight) if class_weight else np.ones(2)
    return sw * cw[y]


def sk_fit(X, y, C, class_weight, sample_weight):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LogisticRegression(C=C, solver="newton-cholesky", tol=1e-12, max_iter=500,
                                  class_weight=class_weight).fit(X, y,
                                                                 sample_weight=sample_weight)


@pytest.fixture(scope="module")
def cancer():
    """Breast cancer as a table: 30 float columns with spaced names, a 0/1 target and an
    exponential sample weight (some rows weigh 0)."""
    frame = load_breast_cancer(as_frame=True).frame
    rng = np.random.default_rng(7)
    w = rng.exponential(size=len(frame))
    w[::17] = 0.0
    frame["w"] = w
    return frame


CASES = [("balanced", False), ({0: 3.0, 1: 0.5}, False), (None, True), ("balanced", True),
         ({0: 0.25, 1: 2.0}, True)]


@pytest.mark.parametrize("class_weight,weighted", CASES)
def test_library_fit_with_weights_reaches_sklearn_optimum(cancer, class_weight, weighted):
    X = cancer.drop(columns=["target", "w"]).to_numpy()
    y = cancer["target"].to_numpy()
    sw = cancer["w"].to_numpy() if weighted else None
    m = LogisticModel(C=1.0, class_weight=class_weight).fit(X, y, sample_weight=sw)
    sk = sk_fit(X, y, 1.0, class_weight, sw)
    s = row_weights(y, class_weight, sw)
    ours = weighted_objective(X, y, m.coef_.ravel(), float(np.ravel(m.intercept_)[0]), s)
    theirs = weighted_objective(X, y, sk.coef_[0], sk.intercept_[0], s)
    assert ours <= theirs * (1 + 1e-9)
    assert abs(ours - theirs) <= 1e-9 * abs(theirs)
    assert m.converged_


@pytest.mark.parametrize("class_weight,weighted", CASES)
def test_cli_train_weight_and_class_weight_on_spaced_columns_reach_sklearn_optimum(
        cancer, class_weight, weighted, tmp_path):
    path = tmp_path / "cancer.parquet"
    pq.write_table(pa.Table.from_pandas(cancer, preserve_index=False), path, row_group_size=100)
    feats = [c for c in cancer.columns if c not in ("target", "w")]
    assert " " in feats[0]  # "mean radius"
    args = ["--features", *feats]
    if weighted:
        args += ["--weight", "w"]
    if class_weight is not None:
        args += ["--class-weight", class_weight if isinstance(class_weight, str) else
                 json.dumps({str(k): v for k, v in class_weight.items()})]
    model = tmp_path / "m.json"
    assert run_cli("train", path, model, "--label", "target", *args, "--blocksize", "16KiB",
                   "--quiet") == 0
    d = json.loads(model.read_text())
    assert d["weight"] == ("w" if weighted else None)
    assert d["class_weight"] == (class_weight if not isinstance(class_weight, dict) else
                                 {str(k): v for k, v in class_weight.items()})
    X, y = cancer[feats].to_numpy(), cancer["target"].to_numpy()
    sw = cancer["w"].to_numpy() if weighted else None
    sk = sk_fit(X, y, 1.0, class_weight, sw)
    s = row_weights(y, class_weight, sw)
    ours = weighted_objective(X, y, np.array(d["coef"]), d["intercept"], s)
    theirs = weighted_objective(X, y, sk.coef_[0], sk.intercept_[0], s)
    assert abs(ours - theirs) <= 1e-9 * abs(theirs)
    assert d["loss"] == pytest.approx(ours / s.sum(), rel=1e-9)  # scaled by the total weight
    assert d["rows"] == len(y)


def test_balanced_class_weight_is_counted_while_loading_no_extra_pass(cancer, tmp_path):
    path = tmp_path / "cancer.parquet"
    pq.write_table(pa.Table.from_pandas(cancer, preserve_index=False), path)
    feats = [c for c in cancer.columns if c not in ("target", "w")]
    runs = {}
    for cw in (None, "balanced"):
        model = tmp_path / f"{cw}.json"
        extra = ["--class-weight", cw] if cw else []
        assert run_cli("train", path, model, "--label", "target", "--features", *feats,
                       *extra, "--quiet") == 0
        runs[cw] = json.loads(model.read_text())
    # passes = iterations + 1 (the loading pass evaluates the start) with or without it
    for d in runs.values():
        assert d["passes"] <= d["iterations"] + 1 + 2  # a few backtracking passes at most
    assert runs["balanced"]["passes"] - runs["balanced"]["iterations"] == \
        runs[None]["passes"] - runs[None]["iterations"]


def test_class_weight_keys_are_the_label_classes_as_text(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(400)
    label = np.where(rng.random(400) < 1 / (1 + np.exp(-2 * x)), "yes", "no")
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"x": x, "label": label}), path)
    model = tmp_path / "m.json"
    assert run_cli("train", path, model, "--label", "label", "--class-weight",
                   '{"yes": 4, "no": 1}', "--quiet") == 0
    ref = LogisticModel(class_weight={1: 4.0, 0: 1.0}).fit(x[:, None],
                                                            (label == "yes").astype(int))
    np.testing.assert_allclose(json.loads(model.read_text())["coef"], np.ravel(ref.coef_),
                               rtol=1e-8)
    before = model.read_bytes()
    assert run_cli("train", path, model, "--label", "label", "--class-weight",
                   '{"maybe": 4}', "--overwrite", "--quiet") == 2
    err = capsys.readouterr().err
    assert "'maybe'" in err and "not a class of the label" in err
    assert run_cli("train", path, model, "--label", "label", "--class-weight", "heavy",
                   "--overwrite", "--quiet") == 2
    assert "--class-weight must be" in capsys.readouterr().err
    assert model.read_bytes() == before  # the earlier model file is untouched


@pytest.mark.parametrize("bad", [-1.0, np.inf])
def test_negative_or_infinite_weight_names_file_row_and_value(tmp_path, capsys, bad):
    rng = np.random.default_rng(1)
    w = np.ones(300)
    w[123] = bad
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"x": rng.standard_normal(300), "w": w,
                             "label": rng.integers(0, 2, 300)}), path)
    assert run_cli("train", path, tmp_path / "m.json", "--label", "label", "--features", "x",
                   "--weight", "w", "--quiet") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "d.parquet" in err and "row 123" in err
    assert "column 'w'" in err and repr(float(bad)) in err
    assert not (tmp_path / "m.json").exists()
    assert not (tmp_path / "m.json").exists()


def test_evaluate_weight_gives_sklearn_weighted_metrics(cancer, tmp_path, capsys):
    path = tmp_path / "cancer.parquet"
    pq.write_table(pa.Table.from_pandas(cancer, preserve_index=False), path)
    feats = [c for c in cancer.columns if c not in ("target", "w")]
    model = tmp_path / "m.json"
    assert run_cli("train", path, model, "--label", "target", "--features", *feats,
                   "--weight", "w", "--C", "0.1", "--quiet") == 0
    capsys.readouterr()
    assert run_cli("evaluate", path, model, "--label", "target", "--weight", "w",
                   "--quiet") == 0
    res = json.loads(capsys.readouterr().out)
    d = json.loads(model.read_text())
    X, y, w = cancer[feats].to_numpy(), cancer["target"].to_numpy(), cancer["w"].to_numpy()
    p = 1 / (1 + np.exp(-(X @ np.array(d["coef"]) + d["intercept"])))
    assert res["rows"] == len(y) and res["weight_sum"] == pytest.approx(w.sum(), rel=1e-12)
    assert res["log_loss"] == pytest.approx(log_loss(y, p, sample_weight=w), rel=1e-9)
    assert res["accuracy"] == pytest.approx(accuracy_score(y, p >= 0.5, sample_weight=w))
    assert abs(res["auc"] - roc_auc_score(y, p, sample_weight=w)) <= 1e-4


def test_weighted_statistics_are_the_same_on_array_api_arrays():
    xp = pytest.importorskip("array_api_strict")
    from pipeline.model.stats import partition_stats
    from pipeline.ops.design import Block

    rng = np.random.default_rng(2)
    X = rng.standard_normal((700, 3))
    y = (rng.random(700) < 0.4).astype(np.float64)
    w = rng.exponential(size=700)
    w[::7] = 0.0
    coef = np.array([0.4, -0.1, 0.2])
    ref = partition_stats(Block(X, y, 0, w), coef, -0.3, (2.0, 0.5))
    got = partition_stats(Block(xp.asarray(X), xp.asarray(y), 0, xp.asarray(w)), coef, -0.3,
                          (2.0, 0.5))
    assert got[0] == ref[0] and got[4] == ref[4]
    for a, b in zip(got[1:4] + got[5:], ref[1:4] + ref[5:], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    # and equal to the unweighted statistics of rows repeated by integer weights
    reps = rng.integers(0, 3, 700)
    rep = partition_stats(Block(np.repeat(X, reps, axis=0), np.repeat(y, reps), 0), coef, 0.1)
    wtd = partition_stats(Block(X, y, 0, reps.astype(float)), coef, 0.1)
    np.testing.assert_allclose(wtd[1], rep[1], rtol=1e-12)
    np.testing.assert_allclose(wtd[3], rep[3], rtol=1e-11, atol=1e-12)
    assert wtd[5] == reps.sum()


def test_job_file_takes_weight_class_weight_and_categorical(cancer, tmp_path):
    frame = cancer.assign(site=np.where(np.arange(len(cancer)) % 3 == 0, "north", "south"))
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "c.parquet")
    job = tmp_path / "job.toml"
    job.write_text('''
[[steps]]
command = "train"
input = "c.parquet"
model = "m.json"
label = "target"
features = ["mean radius", "mean texture"]
weight = "w"
class-weight = '{"0": 2.0, "1": 1.0}'
categorical = ["site"]
max-categories = 5
''')
    assert run_cli("run", job) == 0
    d = json.loads((tmp_path / "m.json").read_text())
    assert d["weight"] == "w" and d["class_weight"] == {"0": 2.0, "1": 1.0}
    assert d["categories"] == {"site": ["north", "south"]} and len(d["coef"]) == 4
