"""`format: table`: a user's CSV/TSV/JSONL/Parquet table -> the manifest contract; iterative
stratification; every bad row reported at once."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from data.__main__ import main as data_main
from core.manifest import read_manifest
from data.stratify import iterative_split
from data.table import TableFormatError, manifest_from_table, parse_ratios, stratified_split

CLASSES = ("cat", "dog", "car", "tree", "boat")


def make_table(folder: Path, n: int = 60, seed: int = 0) -> pd.DataFrame:
    """`n` rows with real PNGs under images/ (paths relative to the table), multi-label."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for k in range(n):
        Image.new("RGB", (6, 6), tuple(int(v) for v in rng.integers(0, 255, 3))).save(folder / "images" / f"{k}.png")
        names = [c for c in CLASSES if rng.random() < 0.3] or ([] if k % 11 == 0 else [CLASSES[k % 5]])
        rows.append({"id": f"x{k:03d}", "image": f"images/{k}.png", "text": f"sample  number\n{k}",
                     "labels": "|".join(names)})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_table_to_manifest(tmp_path, suffix, caplog):
    frame = make_table(tmp_path)
    frame.loc[3, "image"] = "images/gone.png"  # missing file: row kept without its image
    frame.loc[4, "image"] = ""
    frame.loc[5, "text"] = ""
    frame["note"] = "extra"
    path = tmp_path / f"table{suffix}"
    if suffix == ".jsonl":
        records = frame.to_dict("records")
        records[6]["labels"] = ["dog", "cat"]  # a JSON list works too
        path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    else:
        frame.to_csv(path, index=False, sep="," if suffix == ".csv" else "\t")
    out = tmp_path / "results" / "manifest.csv"
    with caplog.at_level(logging.WARNING, logger="data.table"):
        assert data_main(["manifest", "--format", "table", "--table", str(path), "--out", str(out)]) == 0
    m = read_manifest(out)
    assert list(m.columns) == ["id", "split", "image", "text", "labels", "note"]
    assert m["id"].tolist() == frame["id"].tolist()  # the table's order
    row = m.set_index("id")
    assert row.loc["x000", "image"] == str(tmp_path / "images" / "0.png") and Path(row.loc["x000", "image"]).is_file()
    assert row.loc["x003", "image"] == "" and row.loc["x003", "text"] == "sample number 3"  # text kept
    line = 4 if suffix == ".jsonl" else 8  # where the row starts (each text spans two lines)
    assert f"line {line} (id x003): " in caplog.text and "gone.png" in caplog.text
    assert row.loc["x004", "image"] == "" and row.loc["x005", "text"] == ""
    if suffix == ".jsonl":
        assert row.loc["x006", "labels"] == "dog|cat"
    assert set(m["split"]) == {"train", "dev", "test"}
    assert (m["split"].value_counts() / len(m)).round(1).to_dict() == {"train": 0.6, "test": 0.3, "dev": 0.1}


def test_every_bad_row_is_reported_at_once(tmp_path):
    frame = make_table(tmp_path, n=8)
    frame["text"] = "one line each"  # so row k is on line k + 2
    frame["split"] = ["train", "dev", "test", "valid", "train", "train", "3", "test"]
    frame.loc[2, "id"] = "x000"
    frame.loc[5, "id"] = " "
    (tmp_path / "images" / "broken.png").write_bytes(b"not a png at all")
    frame.loc[7, "image"] = "images/broken.png"
    frame.loc[1, "image"] = "images"  # a folder, not an image
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(TableFormatError) as err:
        manifest_from_table(path, strict_images=True)
    text = str(err.value)
    assert "6 bad rows" in text and "strict_images: true refuses" in text
    assert "line 4 (id x000): id 'x000' repeats line 2" in text
    assert "line 5 (id x003): split 'valid' is neither train, dev, test nor a fold number" in text
    assert "line 7: id is empty" in text
    assert "line 8 (id x006): split '3' is a fold number, but other rows use train/dev/test" in text
    assert "line 9 (id x007): image" in text and "broken.png is not a readable image" in text
    assert "line 3 (id x001): image" in text
    assert data_main(["manifest", "--format", "table", "--table", str(path), "--out", str(tmp_path / "m.csv"),
                      "--strict-images"]) == 1
    with pytest.raises(TableFormatError) as err:  # unreadable images kept by default: 4 bad rows left
        manifest_from_table(path)
    assert "4 bad rows" in str(err.value) and "broken.png" not in str(err.value)


def test_given_split_and_folds_are_kept(tmp_path):
    frame = make_table(tmp_path, n=10)
    frame["split"] = [str(k % 5) for k in range(10)]
    path = tmp_path / "folds.csv"
    frame.to_csv(path, index=False)
    m, counts = manifest_from_table(path)
    assert m["split"].tolist() == frame["split"].tolist() and counts["split=0"] == 2


def test_unlabeled_table_for_predictions(tmp_path, caplog):
    frame = make_table(tmp_path, n=5).drop(columns="labels")
    path = tmp_path / "new.csv"
    frame.to_csv(path, index=False)
    with caplog.at_level(logging.WARNING, logger="data.table"):
        m, counts = manifest_from_table(path)
    assert "no `labels` column" in caplog.text
    assert (m["labels"] == "").all() and (m["split"] == "").all() and counts["no_label"] == 5
    text_only = tmp_path / "text.csv"
    pd.DataFrame({"id": ["a", "b"], "text": ["one", "two"]}).to_csv(text_only, index=False)
    m, _ = manifest_from_table(text_only)
    assert m["image"].tolist() == ["", ""] and m["text"].tolist() == ["one", "two"]


def test_table_needs_id_and_a_modality(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"name": ["a"], "labels": ["x"]}).to_csv(path, index=False)
    with pytest.raises(TableFormatError, match="needs `id` and at least one of `image` and `text`"):
        manifest_from_table(path)
    with pytest.raises(TableFormatError, match="unknown table type '.xlsx'"):
        manifest_from_table(tmp_path / "t.xlsx")


def test_parquet(tmp_path, monkeypatch):
    """Parquet reads with the pinned pyarrow (requirements.txt; the test fails without it), labels as
    a list column; without pyarrow the error says how to install it."""
    import pyarrow  # noqa: F401  (pinned in requirements.txt: no skip)

    frame = make_table(tmp_path, n=6)
    frame["labels"] = [names.split("|") if names else [] for names in frame["labels"]]
    path = tmp_path / "t.parquet"
    frame.to_parquet(path)
    m, _ = manifest_from_table(path)
    assert m["id"].tolist() == frame["id"].tolist() and Path(m["image"].iloc[0]).is_file()
    assert m["labels"].tolist() == ["|".join(names) for names in frame["labels"]]
    monkeypatch.setitem(__import__("sys").modules, "pyarrow", None)
    with pytest.raises(TableFormatError, match="needs pyarrow.*pip install -r requirements.txt"):
        manifest_from_table(path)


def test_split_is_seeded_and_order_free():
    rng = np.random.default_rng(1)
    ids = pd.Series([f"s{k:04d}" for k in range(300)])
    labels = pd.Series(["|".join(c for c in CLASSES if rng.random() < 0.25) for _ in range(300)])
    first = stratified_split(ids, labels, seed=0)
    assert (stratified_split(ids, labels, seed=0) == first).all()
    order = rng.permutation(300)
    reordered = stratified_split(ids[order].reset_index(drop=True), labels[order].reset_index(drop=True), seed=0)
    assert (reordered == first[order]).all()
    assert (stratified_split(ids, labels, seed=1) != first).any()
    with pytest.raises(ValueError, match="summing to 1"):
        parse_ratios("0.6,0.1")
    with pytest.raises(ValueError, match="summing to 1"):
        parse_ratios("0.7,0.2,0.3")


def test_iterative_stratification_beats_random():
    """Per-label shares of each part stay close to the ratios, far closer than a random split,
    and rare labels reach every part that wants them."""
    rng = np.random.default_rng(0)
    n, c = 2000, 30
    freq = np.geomspace(0.3, 0.004, c)
    y = rng.random((n, c)) < freq
    ratios = np.array([0.6, 0.1, 0.3])
    part = iterative_split(y, ratios, np.random.default_rng(0))
    sizes = np.bincount(part, minlength=3)
    assert np.abs(sizes - ratios * n).max() <= 0.01 * n

    def label_error(p: np.ndarray) -> float:
        per_part = np.stack([y[p == j].sum(0) for j in range(3)])  # (3, C)
        return float(np.abs(per_part / y.sum(0) - ratios[:, None]).mean())

    random_part = rng.choice(3, size=n, p=ratios)
    assert label_error(part) < 0.4 * label_error(random_part)
    rare = y.sum(0) >= 10
    assert all((y[part == j][:, rare].sum(0) > 0).all() for j in range(3))
    unlabeled = iterative_split(np.zeros((10, 0)), ratios, np.random.default_rng(0))
    assert np.bincount(unlabeled, minlength=3).tolist() == [6, 1, 3]
