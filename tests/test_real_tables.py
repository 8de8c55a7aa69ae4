"""Tables as users bring them: pandas categoricals in Parquet, string labels in the library,
identifiable unpenalized one-hot fits, feature patterns."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import read_output, run_cli

import pipeline
from pipeline.model.estimator import RankWarning
from pipeline.ops.kernels import sigmoid

sklearn = pytest.importorskip("sklearn")
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.preprocessing import OneHotEncoder  # noqa: E402


def credit(n=3000, seed=0) -> pd.DataFrame:
    """A credit-default table as pandas holds it: text columns are categoricals."""
    rng = np.random.default_rng(seed)
    balance = rng.gamma(2.0, 400.0, n)
    income = rng.normal(30.0, 8.0, n)
    student = rng.choice(["No", "Yes"], n, p=[0.7, 0.3])
    region = rng.choice(["east", "north", "south", "west"], n)
    band = rng.choice([10, 20, 30], n)
    z = (-4 + 0.004 * balance - 0.03 * income + (student == "Yes") * 0.6
         + np.select([region == "north", region == "west"], [0.5, -0.7], 0.0) + band * 0.01)
    default = np.where(rng.random(n) < sigmoid(z), "Yes", "No")
    return pd.DataFrame({
        "default": pd.Categorical(default), "student": pd.Categorical(student),
        "region": pd.Categorical(region), "band": pd.Categorical(band),
        "balance": balance, "income": income, "id": np.arange(n, dtype=np.int64)})


def test_pandas_categorical_parquet_is_its_values_in_every_command(tmp_path, capsys):
    frame = credit()
    path = tmp_path / "credit.parquet"
    frame.to_parquet(path, index=False)  # dictionary-encoded columns, as pandas writes them
    assert str(pq.read_schema(path).field("default").type).startswith("dictionary")
    model = tmp_path / "m.json"
    assert run_cli("train", path, model, "--label", "default", "--features", "balance",
                   "income", "--categorical", "student", "region", "band", "--positive",
                   "Yes", "--quiet") == 0, capsys.readouterr().err
    d = json.loads(model.read_text())
    assert d["positive"] == "Yes" and d["negative"] == "No"
    assert d["categories"] == {"student": ["No", "Yes"],
                               "region": ["east", "north", "south", "west"],
                               "band": [10, 20, 30]}
    capsys.readouterr()
    assert run_cli("evaluate", path, model, "--label", "default", "--quiet") == 0
    res = json.loads(capsys.readouterr().out)
    assert res["rows"] == len(frame) and 0.5 < res["accuracy"] <= 1
    out = tmp_path / "s"
    assert run_cli("score", path, model, out, "--keep", "id", "default", "--quiet") == 0
    got = read_output(out)
    assert got.column("default").to_pylist() == frame["default"].astype(str).tolist()
    # a dictionary weight column is its numbers; a dictionary integer label its integers
    frame2 = frame.assign(w=pd.Categorical(np.where(frame["id"] % 2 == 0, 1.0, 2.0)),
                          y01=pd.Categorical((frame["default"] == "Yes").astype(np.int64)))
    path2 = tmp_path / "credit2.parquet"
    frame2.to_parquet(path2, index=False)
    assert run_cli("train", path2, tmp_path / "m2.json", "--label", "y01", "--features",
                   "balance", "--weight", "w", "--quiet") == 0, capsys.readouterr().err
    d2 = json.loads((tmp_path / "m2.json").read_text())
    assert (d2["positive"], d2["negative"]) == (1, 0)
    t = tmp_path / "t"
    assert run_cli("transform", path, t, "--columns", "balance", "--quiet") == 0
    assert read_output(t).column("student").to_pylist() == frame["student"].tolist()


def test_only_dictionary_columns_are_decoded_a_plain_table_is_passed_as_read():
    """A chunk reads each file's table through decode_dictionaries: a table with no
    dictionary column is returned itself (no cast per file, no pyarrow.compute)."""
    import pyarrow as pa

    from pipeline.io.formats import decode_dictionaries

    plain = pa.table({"x": [1.0, 2.0], "s": ["a", "b"]})
    assert decode_dictionaries(plain) is plain
    coded = pa.table({"x": [1.0, 2.0], "s": pa.array(["a", "b"]).dictionary_encode()})
    decoded = decode_dictionaries(coded)
    assert decoded.schema == pa.schema([("x", pa.float64()), ("s", pa.string())])
    assert decoded.column("s").to_pylist() == ["a", "b"]


def test_library_string_label_dask_predictions_are_the_classes(tmp_path):
    frame = credit(2000)
    path = tmp_path / "credit.parquet"
    frame.to_parquet(path, index=False)
    df = pipeline.read(path)
    m = pipeline.LogisticModel(C=1.0).fit(df, label="default", features=["balance", "income"],
                                          categorical=["student"], positive="Yes")
    assert m.classes_.tolist() == ["No", "Yes"]
    assert m.coef_.shape == (1, 4) and m.n_features_in_ == 4
    assert m.feature_names_in_.tolist() == ["balance", "income", "student_No", "student_Yes"]
    proba = m.predict_proba(df)
    assert hasattr(proba, "compute") and proba.shape[1] == 2  # a lazy dask array
    p1 = proba[:, 1].compute()
    assert p1.shape == (len(frame),)
    pred = m.predict(df)
    assert hasattr(pred, "compute")
    got = np.asarray(pred.compute())
    assert set(got) <= {"No", "Yes"}
    np.testing.assert_array_equal(got, np.where(p1 > 0.5, "Yes", "No"))
    # the CLI's model of the same data is the same model
    assert run_cli("train", path, tmp_path / "m.json", "--label", "default", "--features",
                   "balance", "income", "--categorical", "student", "--quiet") == 0
    d = json.loads((tmp_path / "m.json").read_text())
    np.testing.assert_allclose(m.coef_[0], d["coef"], rtol=1e-8, atol=1e-10)
    # an integer label other than 0/1: its larger value is the positive class, as the CLI's
    df12 = df.assign(y12=(df["default"] == "Yes").astype("int64") + 1)
    m12 = pipeline.LogisticModel(C=1.0).fit(df12, label="y12", features=["balance", "income"],
                                            categorical=["student"])
    assert m12.classes_.tolist() == [1, 2]
    np.testing.assert_allclose(m12.coef_[0], m.coef_[0], rtol=1e-8, atol=1e-10)
    # a positive class that the label does not take
    with pytest.raises(pipeline.PipelineError, match="positive 'Maybe'"):
        pipeline.LogisticModel().fit(df, label="default", features=["balance"],
                                     positive="Maybe")


def test_dir_lists_the_lazy_names():
    names = dir(pipeline)
    for name in ("read", "write", "LogisticModel", "train_files", "sigmoid"):
        assert name in names


def test_readme_string_label_example_runs_as_written(tmp_path, monkeypatch):
    text = (Path(__file__).parents[1] / "README.md").read_text()
    m = re.search(r"<!-- string-label example -->\n```python\n(.*?)```", text, re.S)
    assert m, "the README's string-label example"
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(m.group(1), "README.md", "exec"), scope)  # noqa: S102
    assert scope["model"].classes_.tolist() == ["no", "yes"]


def onehot_data(seed=1, n=4000):
    rng = np.random.default_rng(seed)
    g = rng.choice(["b", "a", "d", "c"], n)
    h = rng.choice([3, 1, 2], n)
    x = rng.standard_normal(n)
    z = 0.8 * x + np.select([g == "b", g == "c", g == "d"], [0.4, -0.6, 1.1], 0) + (h - 2) * .3
    y = (rng.random(n) < sigmoid(z)).astype(np.int64)
    return pd.DataFrame({"x": x, "g": g, "h": h, "y": y})


def test_unpenalized_onehot_drops_the_first_level_as_sklearn_and_r(tmp_path, capsys):
    frame = onehot_data()
    path = tmp_path / "d.parquet"
    pq.write_table(__import__("pyarrow").Table.from_pandas(frame, preserve_index=False), path,
                   row_group_size=500)
    enc = OneHotEncoder(drop="first", sparse_output=False).fit(frame[["g", "h"]])
    X = np.column_stack([frame[["x"]].to_numpy(), enc.transform(frame[["g", "h"]])])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # penalty=None: deprecated in 1.8
        lr = LogisticRegression(penalty=None, solver="newton-cholesky", tol=1e-12,
                                max_iter=200).fit(X, frame["y"])
    coefs = []
    for bs in ("8KiB", "32KiB", "1MiB"):
        model = tmp_path / f"m{bs}.json"
        assert run_cli("train", path, model, "--label", "y", "--features", "x",
                       "--categorical", "g", "h", "--no-penalty", "--blocksize", bs,
                       "--quiet") == 0
        assert "warning" not in capsys.readouterr().err  # identifiable: no rank warning
        d = json.loads(model.read_text())
        assert d["drop_first"] is True
        assert d["categories"] == {"g": ["a", "b", "c", "d"], "h": [1, 2, 3]}
        coef = np.array(d["coef"])
        # the reference levels keep their place, at 0
        assert coef[1] == 0.0 and coef[5] == 0.0
        ours = np.delete(coef, [1, 5])
        np.testing.assert_allclose(ours, lr.coef_[0], rtol=1e-7, atol=1e-9)
        assert d["intercept"] == pytest.approx(lr.intercept_[0], rel=1e-7, abs=1e-9)
        coefs.append(np.append(coef, d["intercept"]))
    np.testing.assert_allclose(coefs[1], coefs[0], rtol=0, atol=1e-8)
    np.testing.assert_allclose(coefs[2], coefs[0], rtol=0, atol=1e-8)
    # the library: drop_first= and the same model
    lib = pipeline.LogisticModel(penalty=None, drop_first=True).fit(
        pipeline.read(path), label="y", features=["x"], categorical=["g", "h"])
    np.testing.assert_allclose(np.append(lib.coef_[0], lib.intercept_[0]), coefs[0],
                               rtol=1e-8, atol=1e-9)


def test_a_rank_deficient_design_warns_and_its_coefficients_do_not_depend_on_blocksize(
        tmp_path, capsys):
    frame = onehot_data(seed=2).assign(x2=lambda f: 2.0 * f["x"])  # x2 = 2 x
    path = tmp_path / "d.parquet"
    pq.write_table(__import__("pyarrow").Table.from_pandas(frame, preserve_index=False), path,
                   row_group_size=500)
    fits = []
    for bs, extra in (("8KiB", []), ("1MiB", []), ("32KiB", ["--threads-per-worker", "2"])):
        model = tmp_path / f"m{bs}.json"
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            assert run_cli("train", path, model, "--label", "y", "--features", "x", "x2",
                           "--categorical", "g", "--no-penalty", "--no-drop-first",
                           "--blocksize", bs, "--quiet", *extra) == 0
        err = capsys.readouterr().err
        assert err.startswith("warning: the design is rank-deficient, or nearly (2 linear "
                              "dependencies among x, x2, g_a, g_b, g_c, g_d, intercept)"), err
        d = json.loads(model.read_text())
        fits.append(np.append(d["coef"], d["intercept"]))
    np.testing.assert_allclose(fits[1], fits[0], rtol=0, atol=1e-8)
    np.testing.assert_allclose(fits[2], fits[0], rtol=0, atol=1e-8)
    # the minimum-norm optimum: x and x2 share the slope as 1:2, the levels sum with b
    assert fits[0][1] == pytest.approx(2 * fits[0][0], rel=1e-8)
    # the library warns too; the same optimum
    with pytest.warns(RankWarning, match="rank-deficient"):
        lib = pipeline.LogisticModel(penalty=None, drop_first=False).fit(
            pipeline.read(path), label="y", features=["x", "x2"], categorical=["g"])
    np.testing.assert_allclose(np.append(lib.coef_[0], lib.intercept_[0]), fits[0],
                               rtol=0, atol=1e-8)


def test_feature_patterns_exclude_and_integer_defaults(tmp_path, capsys):
    rng = np.random.default_rng(4)
    n = 1500
    frame = pd.DataFrame({f"f{j}": rng.standard_normal(n) for j in range(4)})
    frame["k0"] = rng.integers(0, 5, n)
    frame["k1"] = rng.integers(0, 3, n)
    frame["id"] = np.arange(n)
    frame["y"] = (rng.random(n) < sigmoid(frame["f0"] + 0.2 * frame["k0"])).astype(np.int64)
    path = tmp_path / "d.parquet"
    frame.to_parquet(path, index=False)

    def features(*args):
        model = tmp_path / "m.json"
        assert run_cli("train", path, model, "--label", "y", *args, "--quiet",
                       "--overwrite") == 0, capsys.readouterr().err
        return json.loads(model.read_text())["features"]

    assert features("--features", "f*") == ["f0", "f1", "f2", "f3"]
    assert features("--features", "f*", "--exclude", "f2") == ["f0", "f1", "f3"]
    assert features("--exclude", "f1", "f3") == ["f0", "f2"]
    assert features("--features-from", "numeric", "--exclude", "id") == \
        ["f0", "f1", "f2", "f3", "k0", "k1"]
    assert features("--features", "f[01]", "k?") == ["f0", "f1", "k0", "k1"]
    assert run_cli("train", path, tmp_path / "m.json", "--label", "y", "--features", "z*",
                   "--overwrite", "--quiet") == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "z*" in err
