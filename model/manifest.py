"""Reading the manifest for training: class names, target matrix, split selection."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from data.manifest import read_manifest  # noqa: F401  (the one manifest reader; used by train)

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


def select_splits(split: pd.Series, fold: int | None, source: str = "manifest") -> dict[str, np.ndarray]:
    """Row positions of train/dev/test.

    Named splits (`train`/`dev`/`test`) are used as they are. Integer folds need `fold`:
    test = that fold, dev = the next fold (in sorted order, wrapping round), train = the rest.
    Rows with an empty split are left out.
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
        if len(folds) < 3:
            raise ValueError(f"{source} has {len(folds)} folds; fold selection needs at least 3 "
                             "(test, dev, train)")
        dev_fold = folds[(folds.index(fold) + 1) % len(folds)]
        number = np.array([_as_int(v) if v else -1 for v in values])
        return {"train": np.flatnonzero(used & (number != fold) & (number != dev_fold)),
                "dev": np.flatnonzero(number == dev_fold),
                "test": np.flatnonzero(number == fold)}
    unknown = [v for v in distinct if v not in NAMED_SPLITS]
    if unknown:
        raise ValueError(f"{source} has split value(s) {unknown[:5]}; use train/dev/test "
                         "or integer fold numbers")
    if fold is not None:
        raise ValueError(f"{source} has named train/dev/test splits; drop the fold={fold} option")
    return {name: np.flatnonzero(values == name) for name in NAMED_SPLITS}
