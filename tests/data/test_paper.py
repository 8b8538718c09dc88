"""The paper's tables as the project keeps them (config/paper/), parsed by data.paper."""

from __future__ import annotations

import math

import pytest

from data.paper import load_table


def test_imdb_table():
    t = load_table("imdb")
    assert len(t) == 24 and list(t.columns[4:]) == ["f1_micro", "f1_macro", "f1_samples"]
    best = t.loc[t["f1_micro"].idxmax()]
    assert best["features"] == ["WSL(i)", "RoBERTa(t)", "WSL(bbox)"] and best["pool"] == "max"
    assert (best["f1_micro"], best["f1_macro"], best["f1_samples"]) == (0.6773, 0.6133, 0.6763)
    gmu = t.set_index("method").loc["GMU [1]"]
    assert gmu["features"] == [] and gmu["pool"] == "" and gmu["f1_macro"] == 0.541
    assert math.isnan(t.set_index("method").loc["Kiela et al. 2018 [12]", "f1_macro"])


def test_ads_table():
    t = load_table("ads")
    assert len(t) == 18 and set(t["pool"]) == {"", "max", "min", "sum"}
    assert t["accuracy"].max() == 76.713
    top = t.loc[t["accuracy"].idxmax()]
    assert top["pool"] == "sum" and top["features"][-1] == "IE(con)" and len(top["features"]) == 5
    assert t["features"].map(len).max() == 8


def test_unknown_table():
    with pytest.raises(ValueError, match="choose one of ads, imdb"):
        load_table("coco")
