"""Metrics on hand-computed cases and degenerate inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model.metrics import binary_metrics, evaluate, fine_key, multilabel_metrics


def test_multilabel_f1_by_hand() -> None:
    targets = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]])
    probs = np.array([[0.9, 0.2, 0.4], [0.1, 0.7, 0.6], [0.8, 0.3, 0.1]])
    # predictions at 0.5: [1,0,0], [0,1,1], [1,0,0] -> tp 3, fp 1, fn 2
    m = multilabel_metrics(targets, probs, 0.5)
    assert m["f1_micro"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 2))
    # per class: c0 tp2 -> 1.0; c1 tp1 fn1 -> 2/3; c2 fp1 fn1 -> 0
    assert m["f1_macro"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert m["f1_weighted"] == pytest.approx((2 * 1 + 2 * 2 / 3 + 1 * 0) / 5)
    # per sample: 2/3, 2/3, 2/3
    assert m["f1_samples"] == pytest.approx(2 / 3)
    # AP per class: c0 = 1; c1: scores .2(0) .7(1) .3(1) -> ranks .7 .3 .2 -> (1 + 1)/2 = 1;
    # c2: .4(1) .6(0) .1(0) -> precision at the positive = 1/2
    assert m["map"] == pytest.approx((1 + 1 + 0.5) / 3)


def test_multilabel_degenerate_classes() -> None:
    targets = np.array([[1, 0], [1, 0]])  # class 1 never positive
    probs = np.array([[0.9, 0.8], [0.2, 0.1]])
    m = multilabel_metrics(targets, probs)
    assert m["map"] == pytest.approx(1.0)  # only classes with positives count
    assert all(math.isfinite(v) for v in m.values())
    none = multilabel_metrics(np.zeros((2, 2)), np.zeros((2, 2)))
    assert none["f1_micro"] == 0 and math.isnan(none["map"])
    assert all(math.isnan(v) for v in multilabel_metrics(np.zeros((0, 2)), np.zeros((0, 2))).values())


def test_binary_accuracy_auc_and_fine_classes() -> None:
    targets = np.array([1, 0, 1, 0, 1])
    probs = np.array([0.8, 0.3, 0.4, 0.6, 0.9])
    fine = ["p-eq", "np", "p-neq", "np", "p-eq"]
    m = binary_metrics(targets, probs, 0.5, fine)
    assert m["accuracy"] == pytest.approx(3 / 5)
    # positives .8 .4 .9 vs negatives .3 .6: pairs won 2 + 1 + 2 = 5 of 6
    assert m["auc"] == pytest.approx(5 / 6)
    assert m[fine_key("p-eq")] == 1.0 and m[fine_key("np")] == 0.5 and m[fine_key("p-neq")] == 0.0
    assert fine_key("p-eq") == "accuracy_p_eq"
    single = binary_metrics(np.ones(3), np.array([0.2, 0.7, 0.9]))
    assert math.isnan(single["auc"]) and single["accuracy"] == pytest.approx(2 / 3)
    assert evaluate("binary", targets[:, None], probs[:, None])["accuracy"] == pytest.approx(0.6)
    with pytest.raises(ValueError):
        evaluate("regression", targets, probs)


def test_metrics_equal_scikit_learn_on_random_data_with_ties() -> None:
    from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

    rng = np.random.default_rng(3)
    for n, c in ((1, 3), (7, 2), (200, 23), (501, 5)):  # (N, 1) is the binary task, not this
        targets = (rng.random((n, c)) < rng.random(c)).astype(int)
        targets[:, 0] = 0  # a class without positives
        probs = np.round(rng.random((n, c)), 1)  # many tied scores
        m = multilabel_metrics(targets, probs, 0.5)
        predicted = (probs >= 0.5).astype(int)
        for avg in ("micro", "macro", "samples", "weighted"):
            assert m[f"f1_{avg}"] == pytest.approx(f1_score(targets, predicted, average=avg, zero_division=0),
                                                   abs=1e-12), (n, c, avg)
        with_pos = [k for k in range(c) if targets[:, k].any()]
        expected = np.mean([average_precision_score(targets[:, k], probs[:, k]) for k in with_pos]) \
            if with_pos else math.nan
        assert m["map"] == pytest.approx(expected, abs=1e-12, nan_ok=True), (n, c)
    for n in (2, 9, 300):
        targets = rng.integers(0, 2, n)
        targets[:2] = [0, 1]
        probs = np.round(rng.random(n), 1)
        assert binary_metrics(targets, probs)["auc"] == pytest.approx(roc_auc_score(targets, probs), abs=1e-12)



def test_best_threshold_searches_the_grid_ties_nearest_half() -> None:
    from model.metrics import best_threshold

    targets = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    probs = np.array([[0.3, 0.1], [0.2, 0.35], [0.32, 0.4], [0.1, 0.05]])
    assert best_threshold("multilabel", targets, probs, "f1_micro") == 0.3  # 0.25 and 0.3 score 1
    assert best_threshold("multilabel", targets, probs, "map") == 0.3  # map has no threshold: f1_micro
    y = np.array([1, 1, 0, 0])
    assert best_threshold("binary", y, np.array([0.6, 0.7, 0.4, 0.45]), "accuracy") == 0.5
    assert best_threshold("binary", y[:, None], np.array([[0.2], [0.25], [0.1], [0.05]]), "accuracy") == 0.2
