"""Evaluation metrics, vectorised numpy, robust to degenerate splits.

multilabel: f1_micro, f1_macro, f1_samples, f1_weighted at a threshold, and map (mean over the
classes that have positives of their average precision).
binary: accuracy at a threshold, auc (ROC AUC; NaN when only one class occurs), and
accuracy_<fine> per fine-grained class when fine class names per sample are given.
`best_threshold`: the decision threshold of `threshold: dev`, one value for every class.

Definitions are scikit-learn's (`f1_score(zero_division=0)`, `average_precision_score`,
`roc_auc_score`; tests check equality on random data with ties); written here because importing
sklearn.metrics costs ~1.2 s per training job and its per-class calls dominated dev evaluation.
"""

from __future__ import annotations

import math
import re
from typing import Sequence

import numpy as np

MULTILABEL_METRICS = ("f1_micro", "f1_macro", "f1_samples", "f1_weighted", "map")
BINARY_METRICS = ("accuracy", "auc")
DEFAULT_SELECT = {"multilabel": "f1_micro", "binary": "accuracy"}
THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.05), 2)  # the grid `best_threshold` searches


def fine_key(name: str) -> str:
    """Metric key of a fine-grained class: `accuracy_` + the name with non-word chars as `_`."""
    return "accuracy_" + (re.sub(r"\W+", "_", str(name)).strip("_") or "blank")


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den == 0 (scikit-learn's zero_division=0)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def f1_scores(targets: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """F1 micro / macro / samples / weighted of 0/1 matrices (N, C)."""
    t, p = targets.astype(bool), predicted.astype(bool)
    tp = (t & p).sum(0)  # (C,)
    fp = (~t & p).sum(0)
    fn = (t & ~p).sum(0)
    per_class = _ratio(2 * tp, 2 * tp + fp + fn)  # (C,)
    support = tp + fn
    tp_s, fp_s, fn_s = (t & p).sum(1), (~t & p).sum(1), (t & ~p).sum(1)  # (N,)
    return {"f1_micro": float(_ratio(2 * tp.sum(), 2 * tp.sum() + fp.sum() + fn.sum())),
            "f1_macro": float(per_class.mean()),
            "f1_samples": float(_ratio(2 * tp_s, 2 * tp_s + fp_s + fn_s).mean()),
            "f1_weighted": float(_ratio((per_class * support).sum(), support.sum()))}


def average_precision(targets: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Average precision of each column (C,) of `targets` (N, C) 0/1 ranked by `scores` (N, C):
    sum over score thresholds of (recall step) x precision, tied scores forming one threshold.
    NaN for a column without positives."""
    order = np.argsort(-scores, axis=0, kind="stable")  # (N, C) descending
    s = np.take_along_axis(scores, order, 0)
    y = np.take_along_axis(targets, order, 0).astype(np.float64)
    n = len(s)
    precision = np.cumsum(y, 0) / np.arange(1, n + 1)[:, None]  # (N, C) at every cut
    ends = np.ones_like(s, dtype=bool)
    ends[:-1] = s[:-1] != s[1:]  # last row of each group of tied scores
    end_row = np.where(ends, np.arange(n)[:, None], n)
    end_row = np.minimum.accumulate(end_row[::-1], axis=0)[::-1]  # (N, C) end of each row's group
    positives = y.sum(0)
    gained = (y * np.take_along_axis(precision, end_row, 0)).sum(0)  # each positive at its group end
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(positives > 0, gained / positives, np.nan)


def roc_auc(targets: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC of 0/1 `targets` (N,) by `scores` (N,): the Mann-Whitney statistic with ties
    counted half. NaN when only one class occurs."""
    y = targets.astype(bool)
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return math.nan
    order = np.argsort(scores, kind="stable")
    s = scores[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # first row of each tie group
    sizes = np.diff(np.r_[starts, len(s)])
    mean_rank = starts + (sizes + 1) / 2.0  # 1-based average rank of each group
    ranks = np.empty(len(s))
    ranks[order] = np.repeat(mean_rank, sizes)
    return float((ranks[y].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def multilabel_metrics(targets: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """`targets` (N, C) 0/1 and `probs` (N, C) in [0, 1]."""
    targets = np.asarray(targets).astype(int)
    predicted = (np.asarray(probs) >= threshold).astype(int)
    if len(targets) == 0:
        return {name: math.nan for name in MULTILABEL_METRICS}
    out = f1_scores(targets, predicted)
    ap = average_precision(targets, np.asarray(probs, dtype=np.float64))
    out["map"] = float(np.nanmean(ap)) if np.isfinite(ap).any() else math.nan
    return out


def binary_metrics(targets: np.ndarray, probs: np.ndarray, threshold: float | np.ndarray = 0.5,
                   fine: Sequence[str] | None = None) -> dict[str, float]:
    """`targets` and `probs` (N,) or (N, 1); `threshold` one value or one per sample (N,); `fine`
    (N,) optional fine class name per sample."""
    targets = np.asarray(targets).reshape(-1).astype(int)
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    if len(targets) == 0:
        return {name: math.nan for name in BINARY_METRICS}
    predicted = (probs >= threshold).astype(int)
    out = {"accuracy": float(np.mean(predicted == targets)), "auc": roc_auc(targets, probs)}
    if fine is not None:
        fine = np.asarray([str(v) for v in fine])
        if len(fine) != len(targets):
            raise ValueError(f"fine class names: {len(fine)} for {len(targets)} samples")
        for name in sorted(set(fine) - {""}):
            mask = fine == name
            out[fine_key(name)] = float(np.mean(predicted[mask] == targets[mask]))
    return out


def evaluate(task: str, targets: np.ndarray, probs: np.ndarray, threshold: float = 0.5,
             fine: Sequence[str] | None = None) -> dict[str, float]:
    if task == "binary":
        return binary_metrics(targets, probs, threshold, fine)
    if task == "multilabel":
        return multilabel_metrics(targets, probs, threshold)
    raise ValueError(f"unknown task {task!r}; use binary or multilabel")


def best_threshold(task: str, targets: np.ndarray, probs: np.ndarray, metric: str) -> float:
    """The threshold of THRESHOLDS that scores best on (`targets`, `probs`) (dev), one value for
    every class: `metric` when a threshold moves it (an F1, accuracy), else the task's
    DEFAULT_SELECT. Ties go to the threshold nearest 0.5, then the lower one.

    One global value, not one per class: a dev split of 10% holds a few positives of most classes
    (the emoji table of BENCHMARKS.md: 193 dev items for 107 classes), on which per-class
    thresholds would fit noise; a grid of 19 values cannot overfit much either. The trainer scores
    every epoch's dev split at its best threshold, so epoch and lr are selected at the threshold
    they will be used at."""
    if task == "binary":
        y = np.asarray(targets).reshape(-1) > 0
        p = np.asarray(probs).reshape(-1)
        scores = ((p[None, :] >= THRESHOLDS[:, None]) == y).mean(1)  # (T,) accuracy
    else:
        metric = metric if metric.startswith("f1_") else DEFAULT_SELECT[task]
        probs = np.asarray(probs)
        scores = np.array([f1_scores(targets, probs >= t)[metric] for t in THRESHOLDS])  # (T,)
    order = np.lexsort((THRESHOLDS, np.abs(THRESHOLDS - 0.5)))  # nearest 0.5 first, then lower
    return float(THRESHOLDS[order[np.argmax(scores[order])]])


def metric_names(task: str) -> tuple[str, ...]:
    return BINARY_METRICS if task == "binary" else MULTILABEL_METRICS
