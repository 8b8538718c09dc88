"""Reading the manifest for training: class names, target matrix, split selection."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd

NAMED_SPLITS = ("train", "dev", "test")


def split_labels(labels: pd.Series) -> list[list[str]]:
    """`a|b` -> ["a", "b"]; empty -> []."""
    return [[name.strip() for name in value.split("|") if name.strip()] for value in labels]


def class_names(labels: pd.Series, fixed: str = "") -> list[str]:
    """`fixed` (`|`-joined) when given, else every name by descending frequency, then by name."""
    if fixed.strip():
        names = [n.strip() for n in fixed.split("|") if n.strip()]
        if len(set(names)) != len(names):
            raise ValueError(f"option classes={fixed!r} names a class twice")
        return names
    counts = Counter(name for names in split_labels(labels) for name in names)
    if not counts:
        raise ValueError("the manifest has no labels at all; fill its `labels` column "
                         "or fix the class list with --set classes=A|B")
    return sorted(counts, key=lambda name: (-counts[name], name))


def target_matrix(labels: pd.Series, classes: list[str]) -> np.ndarray:
    """(N, C) float32 multi-hot targets; names outside `classes` are ignored."""
    column = {name: j for j, name in enumerate(classes)}
    lists = split_labels(labels)
    rows = np.repeat(np.arange(len(lists)), [len(names) for names in lists])
    cols = np.array([column.get(name, -1) for names in lists for name in names], dtype=np.int64)
    targets = np.zeros((len(lists), len(classes)), dtype=np.float32)
    known = cols >= 0
    targets[rows[known], cols[known]] = 1.0
    return targets


def _as_int(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


DEV_SEED = 2003_01607  # with the fold number, seeds the dev carve (the paper's arXiv id)


def carve_dev(rows: np.ndarray, strata: np.ndarray, fraction: float,
              rng: np.random.Generator, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split row positions `rows` into (train, dev): dev is floor(fraction * len(rows)) rows,
    stratified on `strata` (N,) (largest remainders get the leftover places; ties at random).

    Each manifest row gets a random key drawn in the row order `order` (N,) (ids sorted, so the
    carve does not depend on the manifest's row order); each stratum gives its lowest keys.
    """
    size = math.floor(fraction * len(rows) + 1e-9)
    keys = np.empty(len(strata))
    keys[order] = rng.random(len(strata))
    names, stratum = np.unique(strata[rows].astype(str), return_inverse=True)
    share = fraction * np.bincount(stratum, minlength=len(names))  # (S,) wanted dev rows
    quota = np.floor(share + 1e-9).astype(np.int64)
    leftover = size - int(quota.sum())
    if leftover > 0:
        by_remainder = np.lexsort((rng.random(len(names)), -(share - quota)))
        quota[by_remainder[:leftover]] += 1
    ranked = rows[np.lexsort((keys[rows], stratum))]  # by stratum, then key
    ranked_stratum = np.sort(stratum, kind="stable")
    first = np.searchsorted(ranked_stratum, np.arange(len(names)))
    rank = np.arange(len(ranked)) - first[ranked_stratum]  # position within its stratum
    dev = np.sort(ranked[rank < quota[ranked_stratum]])
    return np.setdiff1d(rows, dev), dev


def select_splits(split: pd.Series, fold: int | None, source: str = "manifest",
                  dev_fraction: float = 0.1, strata: pd.Series | None = None,
                  ids: pd.Series | None = None) -> dict[str, np.ndarray]:
    """Row positions of train/dev/test.

    Named splits (`train`/`dev`/`test`) are used as they are. Integer folds (cross-validation)
    need `fold`: test = that fold; train = every other fold, less a dev set of
    floor(`dev_fraction` x those rows) carved from them, stratified on `strata` (the Ads fine
    class; None: not stratified) and seeded by the fold alone (every seed and pool of a fold gets
    the same dev set), over rows ordered by `ids` when given. `dev_fraction=0`: no dev set (the
    trainer then keeps the last epoch); its range, [0, 0.5], is checked once, by
    `TrainOptions.validate`. Rows with an empty split are left out.
    """
    values = split.astype(str).str.strip().to_numpy()
    used = values != ""
    distinct = sorted(set(values[used]))
    ints = [_as_int(v) for v in distinct]
    if distinct and all(i is not None for i in ints):
        folds = sorted(set(ints))
        if fold is None:
            raise ValueError(f"{source} uses cross-validation folds {folds}; "
                             "choose the test fold with --set fold=K")
        if fold not in folds:
            raise ValueError(f"fold={fold} is not one of the folds {folds} in {source}")
        if len(folds) < 2:
            raise ValueError(f"{source} has {len(folds)} fold; cross-validation needs at least 2")
        number = np.array([_as_int(v) if v else -1 for v in values])
        rest = np.flatnonzero(used & (number != fold))
        labels = np.zeros(len(values), dtype=np.int64) if strata is None else strata.astype(str).to_numpy()
        order = (np.arange(len(values)) if ids is None
                 else np.argsort(ids.astype(str).to_numpy(), kind="stable"))
        rng = np.random.default_rng([DEV_SEED, fold % 2**32])
        train, dev = carve_dev(rest, labels, dev_fraction, rng, order)
        return {"train": train, "dev": dev, "test": np.flatnonzero(number == fold)}
    unknown = [v for v in distinct if v not in NAMED_SPLITS]
    if unknown:
        raise ValueError(f"{source} has split value(s) {unknown[:5]}; use train/dev/test "
                         "or integer fold numbers")
    if fold is not None:
        raise ValueError(f"{source} has named train/dev/test splits; drop the fold={fold} option")
    return {name: np.flatnonzero(values == name) for name in NAMED_SPLITS}
