"""Evaluation in one pass with tables of fixed size: ROC curve, calibration, score histograms,
confusion matrix; kept by evaluate --out and drawn by the report."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import run_cli

from pipeline.ops.kernels import sigmoid

sklearn = pytest.importorskip("sklearn")
from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.metrics import auc, confusion_matrix, roc_auc_score  # noqa: E402


@pytest.fixture
def scored(tmp_path):
    """A generated data set (2 files), its model, and the evaluation kept beside its scores."""
    data, model, out = tmp_path / "data", tmp_path / "m.json", tmp_path / "scores"
    assert run_cli("generate", data, "--rows", "30000", "--features", "4", "--files", "2",
                   "--seed", "3") == 0
    assert run_cli("train", data, model, "--label", "label", "--quiet") == 0
    assert run_cli("score", data, model, out, "--blocksize", "256KiB", "--quiet") == 0
    return data, model, out


def _truth(data, model):
    import pyarrow.dataset as ds

    t = ds.dataset(data).to_table()
    d = json.loads(model.read_text())
    X = np.column_stack([t[f].to_numpy() for f in d["features"]])
    return t["label"].to_numpy(), sigmoid(X @ np.array(d["coef"]) + d["intercept"])


def test_evaluate_out_keeps_curves_that_match_sklearn(scored, capsys):
    data, model, out = scored
    capsys.readouterr()
    assert run_cli("evaluate", data, model, "--label", "label", "--out",
                   out / "_evaluation.json", "--blocksize", "256KiB", "--quiet") == 0
    printed = json.loads(capsys.readouterr().out)
    assert "roc" not in printed and {"rows", "log_loss", "accuracy", "auc", "confusion"} <= \
        set(printed)  # stdout stays a summary
    ev = json.loads((out / "_evaluation.json").read_text())
    y, p = _truth(data, model)
    # confusion matrix at 0.5, exactly
    tn, fp, fn, tp = confusion_matrix(y, p >= 0.5).ravel()
    assert ev["confusion"] == {"tn": tn, "fp": fp, "fn": fn, "tp": tp}
    # calibration: scikit-learn's uniform 10-bin calibration curve
    rate, mean = calibration_curve(y, p, n_bins=10, strategy="uniform")
    np.testing.assert_allclose([c["observed_rate"] for c in ev["calibration"]], rate,
                               rtol=1e-12)
    np.testing.assert_allclose([c["mean_predicted"] for c in ev["calibration"]], mean,
                               rtol=1e-12)
    assert sum(c["count"] for c in ev["calibration"]) == len(y)
    # score histograms per class
    edges = np.array(ev["histogram"]["edges"])
    for key, cls in (("positive", 1), ("negative", 0)):
        counts = np.bincount(np.minimum((p[y == cls] * 50).astype(int), 49), minlength=50)
        np.testing.assert_array_equal(ev["histogram"][key], counts)
    assert len(edges) == 51
    # ROC: a bounded number of points, from (0, 0) to (1, 1), its area the AUC
    fpr, tpr = np.array(ev["roc"]["fpr"]), np.array(ev["roc"]["tpr"])
    assert len(fpr) <= 201 and (fpr[0], tpr[0]) == (0, 0) and (fpr[-1], tpr[-1]) == (1, 1)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert auc(fpr, tpr) == pytest.approx(roc_auc_score(y, p), abs=2e-3)
    assert ev["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-4)


def test_evaluation_tables_do_not_grow_with_the_rows(tmp_path):
    sizes = []
    for rows in (2000, 40000):
        data, model = tmp_path / f"d{rows}", tmp_path / f"m{rows}.json"
        assert run_cli("generate", data, "--rows", rows, "--features", "3", "--seed", "1") == 0
        assert run_cli("train", data, model, "--label", "label", "--quiet") == 0
        assert run_cli("evaluate", data, model, "--label", "label", "--out",
                       tmp_path / f"e{rows}.json", "--blocksize", "64KiB", "--quiet") == 0
        ev = json.loads((tmp_path / f"e{rows}.json").read_text())
        sizes.append((len(ev["roc"]["fpr"]), len(ev["histogram"]["positive"]),
                      len(ev["calibration"]) <= 10))
    assert sizes[0][1:] == sizes[1][1:] and sizes[1][0] <= 201


def test_report_draws_the_evaluation_beside_the_runs_charts_at_page_width(scored, capsys):
    data, model, out = scored
    assert run_cli("evaluate", data, model, "--label", "label", "--out",
                   out / "_evaluation.json", "--quiet") == 0
    assert run_cli("report", out) == 0
    page = (out / "_report.html").read_text()
    for title in ("seconds per chunk", "training loss per pass", "ROC curve",
                  "calibration", "predicted probability per class",
                  "confusion matrix at threshold 0.5"):
        assert title in page
    assert 'width="100%"' in page and "grid-template-columns" in page
    assert 'width="640"' not in page  # no fixed-width chart
    # the loss axis is fitted to the losses: its lowest tick is near the final loss, not 0
    loss_svg = page[page.index("training loss per pass"):]
    loss_svg = loss_svg[:loss_svg.index("</svg>")]
    ticks = [float(v) for v in re.findall(r'text-anchor="end" font-size="10">([-\d.e+]+)<',
                                          loss_svg)]
    final = json.loads(model.read_text())["loss"]
    assert min(ticks) > 0.5 * final
    assert abs(min(ticks) - final) < max(ticks) - min(ticks)  # round ticks: near, not below


def test_report_without_an_evaluation_draws_only_the_runs_charts(scored):
    _, _, out = scored
    assert run_cli("report", out) == 0
    page = (out / "_report.html").read_text()
    assert "ROC curve" not in page and "confusion matrix" not in page


def test_evaluate_out_may_be_a_url(scored):
    import fsspec

    data, model, _ = scored
    assert run_cli("evaluate", data, model, "--label", "label", "--out",
                   "memory://evaluations/e.json", "--quiet") == 0
    ev = json.loads(fsspec.filesystem("memory").cat_file("/evaluations/e.json"))
    assert ev["rows"] == 30000 and len(ev["histogram"]["positive"]) == 50
