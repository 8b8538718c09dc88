"""MM-IMDb adapter: a hand-made folder in the real layout becomes the manifest contract."""

from __future__ import annotations

import json

import pytest

from data.__main__ import main as data_main
from core.manifest import read_manifest
from data.mmimdb import GENRES, manifest_from_mmimdb


@pytest.fixture
def mmimdb_root(tmp_path):
    root = tmp_path / "mmimdb"
    (root / "dataset").mkdir(parents=True)
    movies = {
        "0000001": {"title": "One", "plot": ["Short.", "A much longer plot about a haunted house."],
                    "genres": ["Horror", "Drama", "NotAGenre"]},
        "0000002": {"title": "Two", "plot": [], "genres": ["Comedy"]},
        "0000003": {"title": "Three", "genres": ["Sci-Fi", "Action"], "plot": ["Space."]},
        "0000004": {"title": "Four", "plot": ["Nothing."], "genres": ["Western"]},
    }
    for sid, meta in movies.items():
        (root / "dataset" / f"{sid}.json").write_text(json.dumps(meta))
    for sid in ("0000001", "0000003", "0000004"):
        (root / "dataset" / f"{sid}.jpeg").write_bytes(b"\xff\xd8 not checked here")
    # split.json may hold ints; one id has no json at all
    (root / "split.json").write_text(json.dumps({"train": [1, "0000002"], "dev": ["0000003"],
                                                 "test": ["0000004", "0000009"]}))
    return root


def test_manifest_from_mmimdb_layout(mmimdb_root, tmp_path):
    out = tmp_path / "results" / "manifest.csv"
    assert data_main(["manifest", "--root", str(mmimdb_root), "--out", str(out)]) == 0
    m = read_manifest(out)
    assert list(m.columns[:5]) == ["id", "split", "image", "text", "labels"]
    assert m["id"].tolist() == ["0000001", "0000002", "0000003", "0000004"]  # strings, zero-padded
    row = m.set_index("id")
    assert row.loc["0000001", "text"] == "Short. A much longer plot about a haunted house."  # all plots
    assert row.loc["0000001", "labels"] == "Drama|Horror"  # GMU order, unknown genre dropped
    assert row.loc["0000003", "labels"] == "Action|Sci-Fi"
    assert row.loc["0000002", "text"] == "" and row.loc["0000002", "image"] == ""  # absent, kept
    assert row.loc["0000003", "split"] == "dev" and row.loc["0000004", "split"] == "test"
    assert row.loc["0000001", "image"].endswith("dataset/0000001.jpeg")


def test_counts_and_genre_subset(mmimdb_root):
    frame, counts = manifest_from_mmimdb(mmimdb_root, ["Drama", "Comedy"])
    assert counts["no_json"] == 1 and counts["no_plot"] == 1 and counts["no_image"] == 1
    assert frame.set_index("id").loc["0000003", "labels"] == ""
    assert counts["no_label"] == 2
    with pytest.raises(ValueError, match="unknown genres"):
        manifest_from_mmimdb(mmimdb_root, ["Dramedy"])


@pytest.mark.parametrize("plot, text", [
    ("all", "First  entry. The second, much longer entry. Third."),
    ("longest", "The second, much longer entry."),
    ("first", "First entry."),
])
def test_plot_choice(mmimdb_root, tmp_path, plot, text):
    """`plot` entries in MM-IMDb's layout: a list of strings; `all` joins every one with a space."""
    entries = ["First\n entry.", "", "The second,  much longer entry.", "  Third. "]
    meta = {"title": "Five", "plot": entries, "genres": ["Drama"]}
    (mmimdb_root / "dataset" / "0000005.json").write_text(json.dumps(meta))
    split = json.loads((mmimdb_root / "split.json").read_text())
    split["train"].append("0000005")
    (mmimdb_root / "split.json").write_text(json.dumps(split))
    out = tmp_path / f"{plot}.csv"
    assert data_main(["manifest", "--format", "mmimdb", "--root", str(mmimdb_root), "--plot", plot,
                      "--out", str(out)]) == 0
    got = read_manifest(out).set_index("id").loc["0000005", "text"]
    assert got == " ".join(text.split())  # whitespace inside an entry collapsed, empty entries dropped
    if plot == "all":
        assert got == "First entry. The second, much longer entry. Third."
    with pytest.raises(ValueError, match="use one of all, longest, first"):
        manifest_from_mmimdb(mmimdb_root, plot="every")


def test_genre_list_is_mmimdb():
    assert len(GENRES) == 23 and GENRES[0] == "Drama" and GENRES[-1] == "Film-Noir"


def test_missing_split_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="split.json"):
        manifest_from_mmimdb(tmp_path)
