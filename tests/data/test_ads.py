"""Ads-Parallelity adapter: the CSV format's checks, the manifest contract, seeded stratified folds."""

from __future__ import annotations

import csv
import logging
import shutil
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from data.__main__ import main as data_main
from data.ads import FINE, AdsFormatError, manifest_from_ads, read_annotations
from core.manifest import read_manifest

FIXTURE = Path(__file__).parents[1] / "fixtures" / "ads" / "annotations.csv"
MISSING = "ad_005"  # its image is named but never created


@pytest.fixture
def ads_csv(tmp_path) -> Path:
    """The 30-ad fixture with tiny images next to it (one named image left missing)."""
    folder = tmp_path / "ads"
    (folder / "images").mkdir(parents=True)
    path = folder / "annotations.csv"
    shutil.copy(FIXTURE, path)
    for k, row in enumerate(_rows(path)):
        if row["image"] and row["id"] != MISSING:
            Image.new("RGB", (8, 8), (k * 8, 255 - k * 8, 100)).save(folder / row["image"])
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _write(path: Path, rows: list[dict[str, str]], header: list[str] | None = None) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=header or list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_manifest_contract(ads_csv, tmp_path):
    out = tmp_path / "results" / "ads" / "manifest.csv"
    assert data_main(["manifest", "--format", "ads", "--annotations", str(ads_csv), "--out", str(out)]) == 0
    m = read_manifest(out)
    assert list(m.columns) == ["id", "split", "image", "text", "labels",
                               "fine", "naturalness", "concreteness"]
    assert m["id"].tolist() == [r["id"] for r in _rows(ads_csv)]  # the CSV's order
    assert set(m["split"]) == {"0", "1", "2", "3", "4"}
    assert ((m["labels"] == "parallel") == (m["fine"] != "non-parallel")).all()
    assert set(m["labels"]) == {"parallel", ""} and set(m["fine"]) == set(FINE)
    row = m.set_index("id")
    assert Path(row.loc["ad_000", "image"]).is_file() and Path(row.loc["ad_000", "image"]).is_absolute()
    assert row.loc[MISSING, "image"] == "" and row.loc["ad_029", "image"] == ""  # absent modality, kept
    assert row.loc["ad_007", "text"] == "Two lines: still one slogan"
    assert row.loc["ad_002", "text"] == 'The "real" taste'
    assert row.loc["ad_011", "text"] == ""
    assert row.loc["ad_001", "naturalness"] == "" and row.loc["ad_001", "concreteness"] == "7|9"
    assert row.loc["ad_003", "labels"] == "parallel"  # parallel written as 1
    assert row.loc["ad_006", "labels"] == ""  # non-parallel written as 0


def test_counts_and_missing_image_warning(ads_csv, caplog):
    with caplog.at_level(logging.WARNING, logger="data.ads"):
        _, counts = manifest_from_ads(ads_csv)
    assert counts["samples"] == 30 and counts["parallel"] == 20
    assert counts["missing_image"] == 1 and counts["no_image"] == 1 and counts["no_text"] == 1
    assert counts["fine=non-parallel"] == 10 and counts["fine=parallel-equivalent"] == 12
    assert counts["fine=parallel-non-equivalent"] == 8
    assert "1 image files named but not found" in caplog.text and f"{MISSING}" in caplog.text


def test_folds_are_stratified_on_fine(ads_csv):
    m, _ = manifest_from_ads(ads_csv, folds=5, seed=0)
    assert m.groupby("split").size().tolist() == [6] * 5
    per_fold = m.groupby(["fine", "split"]).size().unstack(fill_value=0)
    totals = m["fine"].value_counts()
    for fine, counts in per_fold.iterrows():
        low, high = totals[fine] // 5, -(-totals[fine] // 5)
        assert counts.min() >= low and counts.max() <= high, (fine, counts.tolist())


def test_folds_depend_on_seed_only(ads_csv, tmp_path):
    first = manifest_from_ads(ads_csv, seed=0)[0].set_index("id")["split"]
    again = manifest_from_ads(ads_csv, seed=0)[0].set_index("id")["split"]
    assert first.equals(again)
    # reordering the CSV's rows changes nothing
    rows = _rows(ads_csv)
    shuffled = _write(ads_csv.parent / "shuffled.csv", rows[::-1][5:] + rows[::-1][:5])
    reordered = manifest_from_ads(shuffled, seed=0)[0].set_index("id")["split"]
    assert reordered.loc[first.index].equals(first)
    other = manifest_from_ads(ads_csv, seed=1)[0].set_index("id")["split"]
    assert not other.equals(first)
    assert manifest_from_ads(ads_csv, folds=3)[0]["split"].nunique() == 3


def test_row_errors_name_line_and_problem(ads_csv):
    rows = _rows(ads_csv)[:8]
    rows[1]["id"] = rows[0]["id"]  # duplicate id          -> line 3
    rows[2]["parallel"] = "maybe"  # unknown value        -> line 4
    rows[3]["fine"] = "sort-of"  # unknown fine class     -> line 5
    rows[4]["fine"] = "non-parallel"  # ad_004 is parallel -> line 6
    rows[5]["naturalness"] = "3;7"  # malformed list      -> line 7
    rows[6]["id"] = " "  # empty id                       -> line 8
    bad = _write(ads_csv.parent / "bad.csv", rows)
    with pytest.raises(AdsFormatError) as err:
        read_annotations(bad)
    msg = str(err.value)
    assert str(bad) in msg and "6 bad rows" in msg and "ADS_FORMAT.md" in msg
    assert "line 3 (id ad_000): id 'ad_000' repeats line 2" in msg
    assert "line 4 (id ad_002): parallel is 'maybe'" in msg
    assert "line 5 (id ad_003): fine is 'sort-of'" in msg
    assert "line 6 (id ad_004): fine 'non-parallel' contradicts parallel 'parallel'" in msg
    assert "line 7 (id ad_005): naturalness is '3;7'" in msg
    assert "line 8: id is empty" in msg
    assert msg.count("\n  line ") == 6  # the good rows (lines 2 and 9) are not listed


def test_lenient_spellings_are_accepted(tmp_path):
    rows = [{"id": f"x{k}", "image": "", "slogan": "s", "parallel": p, "fine": f,
             "naturalness": " 1 | 2 ", "concreteness": ""}
            for k, (p, f) in enumerate([("Parallel", "Parallel_Equivalent"), ("NON-PARALLEL", "non parallel"),
                                        ("1", "parallel-non-equiv")] * 2)]
    frame, _ = read_annotations(_write(tmp_path / "a.csv", rows))
    assert frame["fine"].tolist()[:3] == ["parallel-equivalent", "non-parallel", "parallel-non-equivalent"]
    assert frame["naturalness"].iloc[0] == "1|2"


def test_missing_columns_and_extra_fields(ads_csv, tmp_path):
    rows = _rows(ads_csv)
    for r in rows:
        del r["fine"], r["concreteness"]
    with pytest.raises(AdsFormatError, match=r"lacks the columns \['fine', 'concreteness'\]"):
        read_annotations(_write(tmp_path / "cols.csv", rows))
    text = ads_csv.read_text(encoding="utf-8").splitlines()
    text[1] += ",surplus"
    extra = tmp_path / "ads" / "extra.csv"
    extra.write_text("\n".join(text) + "\n", encoding="utf-8")
    with pytest.raises(AdsFormatError, match=r"line 2 \(id ad_000\): 1 more fields than the header"):
        read_annotations(extra)


def test_too_few_ads_for_the_folds(ads_csv, tmp_path):
    small = _write(tmp_path / "ads" / "small.csv", _rows(ads_csv)[:3])
    with pytest.raises(AdsFormatError, match="3 ads cannot be split into 5 folds"):
        manifest_from_ads(small)


def test_cli_reports_format_errors(ads_csv, tmp_path, caplog):
    rows = _rows(ads_csv)
    rows[0]["fine"] = "??"
    bad = _write(tmp_path / "ads" / "bad.csv", rows)
    out = tmp_path / "m.csv"
    assert data_main(["manifest", "--format", "ads", "--annotations", str(bad), "--out", str(out)]) == 1
    assert "line 2 (id ad_000): fine is '??'" in caplog.text and not out.exists()
    with pytest.raises(SystemExit):
        data_main(["manifest", "--format", "ads", "--out", str(out)])  # no --annotations
    with pytest.raises(SystemExit):
        data_main(["manifest", "--out", str(out)])  # mmimdb without --root


def test_fold_sizes_match_paper_scale(tmp_path):
    """The paper's 327 ads (class shares made up here) split into folds of 65 or 66."""
    classes = Counter({"non-parallel": 150, "parallel-equivalent": 100, "parallel-non-equivalent": 77})
    rows = [{"id": f"{k:04d}", "image": "", "slogan": "", "parallel": "0" if f == "non-parallel" else "1",
             "fine": f, "naturalness": "", "concreteness": ""}
            for k, f in enumerate(f for f, n in classes.items() for _ in range(n))]
    m, _ = manifest_from_ads(_write(tmp_path / "big.csv", rows))
    assert sorted(m.groupby("split").size().tolist()) == [65, 65, 65, 66, 66]
