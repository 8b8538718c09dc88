"""Classes a manifest cannot score: a label seen only once, or without a positive in a test split.

A class with no positive among a run's test samples has F1 = 0 there (scikit-learn's
`zero_division=0`), and a class seen once is either never trained on or never tested; either
way the macro averages count it as a 0 without saying so. `unscorable(frame)` names them with
their positives per split, for the warning written with the manifest (`python -m data
manifest`) and the note under the results table (`report/results.py`).
"""

from __future__ import annotations

import pandas as pd


def positives(frame: pd.DataFrame) -> pd.DataFrame:
    """Positives per (class, split): rows = class names (most frequent first), columns = split
    values ('' = no split), counts int."""
    pairs = pd.DataFrame({"class": frame["labels"].astype(str).str.split("|"),
                          "split": frame["split"].astype(str).str.strip()}).explode("class")
    pairs["class"] = pairs["class"].str.strip()
    pairs = pairs[pairs["class"] != ""]
    counts = pd.crosstab(pairs["class"], pairs["split"])
    order = [s for s in ("train", "dev", "test") if s in counts.columns]
    counts = counts[order + sorted((s for s in counts.columns if s not in order), key=lambda s: (len(s), s))]
    return counts.loc[counts.sum(axis=1).sort_values(ascending=False, kind="stable").index]


def test_splits(splits: list[str]) -> list[str]:
    """The split values that are a run's test set: `test`, or every fold number."""
    if all(s.isdigit() for s in splits if s):
        return [s for s in splits if s]
    return ["test"]


def unscorable(frame: pd.DataFrame) -> list[tuple[str, dict[str, int], str]]:
    """(class, positives per split, why) for each class seen once or with no positive in a test
    split (for folds: in some fold); [] for a manifest without labels."""
    counts = positives(frame)
    if counts.empty:
        return []
    splits = [str(s) for s in counts.columns]
    tests = test_splits(splits) if any(splits) else []
    out = []
    for name, row in counts.iterrows():
        per_split = {str(s): int(n) for s, n in row.items()}
        empty = [s for s in tests if per_split.get(s, 0) == 0]
        if sum(per_split.values()) == 1:
            why = "seen once"
        elif empty:
            why = "no positive in the test split" if tests == ["test"] else f"no positive in fold {', '.join(empty)}"
        else:
            continue
        out.append((str(name), per_split, why))
    return out


def describe(found: list[tuple[str, dict[str, int], str]]) -> str:
    """One line per class: `'name': why (train 1, dev 0, test 0)`."""
    lines = []
    for name, per_split, why in found:
        counts = ", ".join(f"{'fold ' + split if split.isdigit() else split or 'no split'} {n}"
                           for split, n in per_split.items())
        lines.append(f"{name!r}: {why} ({counts})")
    return "\n  ".join(lines)
