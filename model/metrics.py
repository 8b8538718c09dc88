"""Evaluation metrics (scikit-learn), robust to degenerate splits.

multilabel: f1_micro, f1_macro, f1_samples, f1_weighted at a threshold, and map (mean over the
classes that have positives of their average precision).
binary: accuracy at a threshold, auc (ROC AUC; NaN when only one class occurs), and
accuracy_<fine> per fine-grained class when fine class names per sample are given.
"""

from __future__ import annotations

import math
import re
from typing import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, roc_auc_score

MULTILABEL_METRICS = ("f1_micro", "f1_macro", "f1_samples", "f1_weighted", "map")
BINARY_METRICS = ("accuracy", "auc")
DEFAULT_SELECT = {"multilabel": "f1_micro", "binary": "accuracy"}


def fine_key(name: str) -> str:
    """Metric key of a fine-grained class: `accuracy_` + the name with non-word chars as `_`."""
    return "accuracy_" + (re.sub(r"\W+", "_", str(name)).strip("_") or "blank")


def multilabel_metrics(targets: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """`targets` (N, C) 0/1 and `probs` (N, C) in [0, 1]."""
    targets = np.asarray(targets).astype(int)
    predicted = (np.asarray(probs) >= threshold).astype(int)
    if len(targets) == 0:
        return {name: math.nan for name in MULTILABEL_METRICS}
    out = {f"f1_{avg}": float(f1_score(targets, predicted, average=avg, zero_division=0))
           for avg in ("micro", "macro", "samples", "weighted")}
    with_pos = np.flatnonzero(targets.sum(0) > 0)
    out["map"] = (float(np.mean([average_precision_score(targets[:, c], probs[:, c]) for c in with_pos]))
                  if len(with_pos) else math.nan)
    return out


def binary_metrics(targets: np.ndarray, probs: np.ndarray, threshold: float = 0.5,
                   fine: Sequence[str] | None = None) -> dict[str, float]:
    """`targets` and `probs` (N,) or (N, 1); `fine` (N,) optional fine class name per sample."""
    targets = np.asarray(targets).reshape(-1).astype(int)
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    if len(targets) == 0:
        return {name: math.nan for name in BINARY_METRICS}
    predicted = (probs >= threshold).astype(int)
    out = {"accuracy": float(accuracy_score(targets, predicted)),
           "auc": float(roc_auc_score(targets, probs)) if len(np.unique(targets)) == 2 else math.nan}
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


def metric_names(task: str) -> tuple[str, ...]:
    return BINARY_METRICS if task == "binary" else MULTILABEL_METRICS
