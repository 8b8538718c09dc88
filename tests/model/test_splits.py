"""model/inputs.py, the manifest's splits: test = one fold, train = the other folds less a stratified dev carve."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from model.inputs import select_splits

FINE = ("non-parallel", "parallel-equivalent", "parallel-non-equivalent")


def ads_like(n: int = 327, seed: int = 0) -> pd.DataFrame:
    """Ads-sized manifest columns: ids, 5 folds, fine classes in roughly the dataset's shares."""
    rng = np.random.default_rng(seed)
    fine = rng.choice(FINE, size=n, p=[0.35, 0.4, 0.25])
    return pd.DataFrame({"id": [f"ad_{k:03d}" for k in range(n)], "split": [str(k % 5) for k in range(n)],
                         "fine": fine})


def test_train_on_four_folds_less_a_stratified_dev() -> None:
    m = ads_like()
    for fold in range(5):
        chosen = select_splits(m["split"], fold, dev_fraction=0.1, strata=m["fine"], ids=m["id"])
        test, dev, train = chosen["test"], chosen["dev"], chosen["train"]
        non_test = len(m) - len(test)
        assert (m["split"].iloc[test] == str(fold)).all()
        assert len(dev) == int(0.1 * non_test) and len(dev) <= 0.1 * len(m)
        assert len(train) + len(dev) == non_test and len(train) >= 0.8 * non_test
        assert len(np.intersect1d(train, dev)) == 0 and len(np.intersect1d(dev, test)) == 0
        # stratified: each fine class gives its share (within one row) of the training folds
        pool = m.iloc[np.r_[train, dev]]["fine"].value_counts()
        carved = m.iloc[dev]["fine"].value_counts().reindex(pool.index, fill_value=0)
        assert (abs(carved - 0.1 * pool) < 1).all()


def test_dev_carve_is_fixed_per_fold() -> None:
    m = ads_like()
    first = select_splits(m["split"], 2, dev_fraction=0.1, strata=m["fine"], ids=m["id"])
    again = select_splits(m["split"], 2, dev_fraction=0.1, strata=m["fine"], ids=m["id"])
    assert (first["dev"] == again["dev"]).all()  # every seed and pool of fold 2 gets this dev set
    other = select_splits(m["split"], 3, dev_fraction=0.1, strata=m["fine"], ids=m["id"])
    assert set(m["id"].iloc[first["dev"]]) != set(m["id"].iloc[other["dev"]])
    shuffled = m.sample(frac=1.0, random_state=0).reset_index(drop=True)
    moved = select_splits(shuffled["split"], 2, dev_fraction=0.1, strata=shuffled["fine"], ids=shuffled["id"])
    assert set(shuffled["id"].iloc[moved["dev"]]) == set(m["id"].iloc[first["dev"]])  # row order free


def test_no_dev_set_and_unstratified() -> None:
    m = ads_like(50)
    chosen = select_splits(m["split"], 0, dev_fraction=0.0, strata=m["fine"])
    assert len(chosen["dev"]) == 0 and len(chosen["train"]) == 40 and len(chosen["test"]) == 10
    plain = select_splits(m["split"], 0, dev_fraction=0.2)
    assert len(plain["dev"]) == 8 and len(plain["train"]) == 32


def test_named_splits_and_errors() -> None:
    split = pd.Series(["0", "1", "2", "3", "4", "0", "4", ""])
    chosen = select_splits(split, fold=4, dev_fraction=0.0)
    assert chosen["test"].tolist() == [4, 6] and chosen["train"].tolist() == [0, 1, 2, 3, 5]  # '' left out
    with pytest.raises(ValueError, match="fold=K"):
        select_splits(split, fold=None)
    with pytest.raises(ValueError, match="not one of the folds"):
        select_splits(split, fold=7)
    named = select_splits(pd.Series(["train", "dev", "test", "train"]), fold=None, dev_fraction=0.1)
    assert named["train"].tolist() == [0, 3] and named["dev"].tolist() == [1] and named["test"].tolist() == [2]
    with pytest.raises(ValueError, match="train/dev/test"):
        select_splits(pd.Series(["train", "validation"]), fold=None)


def test_folds_without_a_chosen_fold_name_the_setting_that_chooses_one() -> None:
    """A table whose `split` holds fold numbers, trained with `folds: 0`: the message names the
    workflow's setting, not only the CLI's."""
    with pytest.raises(ValueError, match=r"^mine.csv uses cross-validation folds \[0, 1, 2, 3, 4\]; choose the "
                                         r"test fold with --set fold=K \(in the workflow: set `folds: 5` in the "
                                         r"dataset's section\)$"):
        select_splits(ads_like()["split"], None, source="mine.csv")


def test_named_splits_without_dev_rows_get_a_dev_carved_from_train() -> None:
    """A table with train and test rows only: `lr: auto` and `threshold: dev` need a dev split, so
    floor(dev_fraction x train) rows move from train to dev, the same on every call; test stays."""
    split = pd.Series(["train"] * 70 + ["test"] * 30)
    ids = pd.Series([f"x{k:03d}" for k in range(100)])
    chosen = select_splits(split, None, dev_fraction=0.1, ids=ids)
    assert len(chosen["dev"]) == 7 and len(chosen["train"]) == 63 and chosen["test"].tolist() == list(range(70, 100))
    assert not set(chosen["dev"]) & set(chosen["train"]) and set(chosen["dev"]) <= set(range(70))
    assert (select_splits(split, None, dev_fraction=0.1, ids=ids)["dev"] == chosen["dev"]).all()
    assert len(select_splits(split, None, dev_fraction=0.0, ids=ids)["dev"]) == 0  # asked for none
    given = pd.Series(["train"] * 60 + ["dev"] * 10 + ["test"] * 30)  # a dev split of its own: as it is
    assert select_splits(given, None, dev_fraction=0.1)["dev"].tolist() == list(range(60, 70))
