"""index: integer-list manifest columns -> `labels` rows; round trip through the CLI and the store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from extract.__main__ import main
from extract.index import parse_indices
from extract.store import read_store


@pytest.mark.parametrize("raw, expected", [
    ("3|7|12", [3, 7, 12]), ("[3, 7]", [3, 7]), ("3,7", [3, 7]), ("4 1", [4, 1]), ("5", [5]),
    ("2.0", [2]), ("", []), ("[]", []), ("  ", []), (None, []), ("1|1", [1, 1]),
])
def test_parse_indices(raw, expected):
    assert parse_indices(raw) == expected


@pytest.mark.parametrize("raw", ["a|b", "-1", "1.5"])
def test_parse_indices_rejects(raw):
    with pytest.raises(ValueError):
        parse_indices(raw)


@pytest.fixture()
def manifest(tmp_path):
    frame = pd.DataFrame({
        "id": ["a1", "a2", "a3", "a4", "a5"], "split": ["0", "1", "2", "3", "4"],
        "image": [""] * 5, "text": [""] * 5, "labels": ["x"] * 5,
        "naturalness": ["3|7|12", "[0, 2]", "", "5", "oops"],
        "concreteness": ["1", "", "0|1", "[]", "2"],
    })
    path = tmp_path / "manifest.csv"
    frame.to_csv(path, index=False)
    return path


def run(manifest, out, *sets):
    args = ["index", "--manifest", str(manifest), "--out", str(out), "--no-progress"]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    return read_store(out)


def test_round_trip_through_the_cli(manifest, tmp_path):
    store = run(manifest, tmp_path / "nat.h5", "column=naturalness")
    assert store.ids == ["a1", "a2", "a3", "a4", "a5"]
    assert store.rows["labels"].dtype == np.int64
    per_sample = {i: store.sample(i)["labels"].tolist() for i in store.ids}
    assert per_sample == {"a1": [3, 7, 12], "a2": [0, 2], "a3": [], "a4": [5], "a5": []}
    assert list(store.failed) == ["a5"] and "oops" in store.failed["a5"]
    assert store.attrs["vocab_size"] == 13 and store.attrs["dim"] == 13
    assert store.attrs["column"] == "naturalness" and store.attrs["extractor"] == "index"


def test_explicit_vocab_size_and_out_of_range(manifest, tmp_path):
    store = run(manifest, tmp_path / "conc.h5", "column=concreteness", "vocab_size=3")
    assert store.attrs["vocab_size"] == 3 and not store.failed
    assert [store.sample(i)["labels"].tolist() for i in store.ids] == [[1], [], [0, 1], [], [2]]
    small = run(manifest, tmp_path / "small.h5", "column=concreteness", "vocab_size=2")
    assert list(small.failed) == ["a5"] and "vocab_size" in small.failed["a5"]


def test_all_empty_column_gives_zero_rows(tmp_path):
    frame = pd.DataFrame({"id": ["1", "2"], "split": ["0", "1"], "image": ["", ""], "text": ["", ""],
                          "labels": ["", ""], "naturalness": ["", ""]})
    frame.to_csv(tmp_path / "m.csv", index=False)
    store = run(tmp_path / "m.csv", tmp_path / "e.h5", "column=naturalness", "vocab_size=4")
    assert store.rows["labels"].shape == (0,) and store.offsets.tolist() == [0, 0, 0]


def test_missing_column_stops_with_a_clear_message(manifest, tmp_path):
    with pytest.raises(SystemExit, match="no column 'colour'"):
        main(["index", "--manifest", str(manifest), "--out", str(tmp_path / "x.h5"), "--no-progress",
              "--set", "column=colour"])
    with pytest.raises(ValueError, match="column=NAME"):
        main(["index", "--manifest", str(manifest), "--out", str(tmp_path / "x.h5"), "--no-progress"])


def test_hashed_ocr_words_from_an_input_store(tmp_path):
    """IE(ocr): tokens of an OCR store's words, hashed into buckets, one row per token."""
    import pandas as pd

    from extract.__main__ import main as extract_main
    from extract.index import hash_tokens
    from extract.store import base_attrs, read_store, write_store
    from tests.builders import StoreBuilder

    b = StoreBuilder()
    b.add("a", {"words": np.array(["FEAR THE", "night"], dtype=object)}, {"text": "FEAR THE night"})
    b.add("b", {"words": np.zeros(0, dtype=object)}, {"text": ""})
    ocr = write_store(tmp_path / "ocr.h5", b.build(base_attrs("ocr", "easyocr-en", 0, {}),
                                                    {"words": ((), object)}))
    manifest = tmp_path / "m.csv"
    pd.DataFrame({"id": ["a", "b", "c"], "split": "train", "image": "", "text": "", "labels": ""}).to_csv(
        manifest, index=False)
    out = tmp_path / "words.h5"
    assert extract_main(["index", "--manifest", str(manifest), "--out", str(out), "--input", str(ocr),
                         "--set", "source=words", "--set", "vocab_size=1000", "--no-progress"]) == 0
    store = read_store(out)
    assert store.counts.tolist() == [3, 0, 0] and store.attrs["vocab_size"] == 1000
    assert store.rows["labels"].tolist() == hash_tokens(["fear", "the", "NIGHT"], 1000).tolist()
    assert "c" in store.failed and "not in the input store" in store.failed["c"]


def test_options_that_would_not_be_applied_are_refused(tmp_path):
    """source=words reads the OCR store, not a manifest column; no network runs, so no autocast."""
    import torch

    from extract.index import IndexExtractor, IndexOptions

    with pytest.raises(ValueError, match="column='naturalness' is for source=column"):
        IndexExtractor("metadata", torch.device("cpu"), IndexOptions(column="naturalness", source="words"))
    with pytest.raises(ValueError, match="always runs in float32"):
        IndexExtractor("metadata", torch.device("cpu"), IndexOptions(column="naturalness", precision="fp16"))
