"""model/inputs.py: feature specs, rows aligned by id, seeded sub-sampling at load time (packing into
batches is tested with the models in test_networks.py, loading stores with training in test_train.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model.inputs import FeatureSpec, align_rows, cap_rows


def test_feature_spec_parse() -> None:
    assert FeatureSpec.parse("objs=results/x/objects.h5:labels") == FeatureSpec(
        "objs", Path("results/x/objects.h5"), "labels")
    assert FeatureSpec.parse("image=a/b.h5").column is None
    with pytest.raises(ValueError):
        FeatureSpec.parse("image")


def test_align_rows_by_id() -> None:
    store_ids = ["x", "y", "z"]
    store_offsets = np.array([0, 2, 2, 5])
    rows, offsets = align_rows(store_ids, store_offsets, ["z", "w", "x", "y"])  # w missing
    assert offsets.tolist() == [0, 3, 3, 5, 5]
    assert rows.tolist() == [2, 3, 4, 0, 1]


def test_cap_rows_keeps_a_seeded_subset() -> None:
    offsets = np.array([0, 3, 3, 20, 21])
    keep, new = cap_rows(offsets, 5, np.random.default_rng(0))
    assert new.tolist() == [0, 3, 3, 8, 9]
    assert keep[:3].tolist() == [0, 1, 2] and keep[-1] == 20
    assert all(3 <= k < 20 for k in keep[3:8]) and len(set(keep[3:8])) == 5
    assert np.all(np.diff(keep) > 0)
    again, _ = cap_rows(offsets, 5, np.random.default_rng(0))
    assert np.array_equal(keep, again)
