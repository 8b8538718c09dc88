"""Own tables that used to go wrong without a word (issue 23, items 4 and 7): rows mostly without
their image, a `predict:` table split and warned about, near-miss column names, `|` inside a
JSON-list label, JSON Lines cut at U+2028, an image cell that cannot be a path."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from core.manifest import read_manifest
from data.__main__ import main as data_main
from data.table import TableFormatError, manifest_from_table


def manifest(table: Path, *args: str) -> int:
    return data_main(["manifest", "--format", "table", "--table", str(table), "--out",
                      str(table.with_name("manifest.csv")), *args])


def photos(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        Image.new("RGB", (6, 6), (k * 20 % 255, 90, 40)).save(folder / name)


# --- item 4: rows without their image -------------------------------------------------------
def test_mostly_missing_images_stop_naming_examples_and_the_other_case(tmp_path, caplog):
    """Ids in upper case, files in lower case: 12 of 20 image paths are not found. Today the
    manifest was written (training became mostly text-only) with the missing files listed at
    INFO/WARNING but no count against the rows, no hint and no stop."""
    ids = [f"M{k:02d}X" for k in range(20)]
    photos(tmp_path / "images", [f"{sid.lower()}.png" for sid in ids[:12]] + [f"{sid}.png" for sid in ids[12:]])
    table = tmp_path / "table.csv"
    pd.DataFrame({"id": ids, "image": [f"images/{sid}.png" for sid in ids], "text": "t",
                  "labels": ["a", "b"] * 10}).to_csv(table, index=False)
    with caplog.at_level(logging.WARNING):
        assert manifest(table) == 1
    said = caplog.text
    assert "12 of 20 rows have no image (12 naming a file not found)" in said
    assert f"line 2 (id M00X): image {tmp_path / 'images/M00X.png'} not found; {tmp_path / 'images/m00x.png'} exists" in said
    assert "line 4 (id M02X)" in said and "line 5 (id M03X)" not in said  # three examples, not 12 lines
    assert "12 of them have a file under another case or suffix" in said
    assert "set `allow_missing_images: true` (--allow-missing-images)" in said
    assert not table.with_name("manifest.csv").exists()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert manifest(table, "--allow-missing-images") == 0
    assert "12 of 20 rows have no image" in caplog.text and "WARNING" in caplog.text
    assert (read_manifest(table.with_name("manifest.csv"))["image"] == "").sum() == 12


def test_any_missing_image_is_a_warning_with_the_suffix_hint(tmp_path, caplog):
    """2 of 10 rows: below the stop, still a WARNING with the count and where the files are
    (`x.jpg` named, `x.JPG` / `x.jpeg` on disk)."""
    photos(tmp_path / "images", [f"p{k}.jpg" for k in range(8)] + ["p8.JPG", "p9.jpeg"])
    table = tmp_path / "table.csv"
    pd.DataFrame({"id": [f"p{k}" for k in range(10)], "image": [f"images/p{k}.jpg" for k in range(10)],
                  "text": "t", "labels": "a"}).to_csv(table, index=False)
    with caplog.at_level(logging.WARNING, logger="data.table"):
        frame, counts = manifest_from_table(table)
    assert [r.levelname for r in caplog.records if "rows have no image" in r.message] == ["WARNING"]
    assert "2 of 10 rows have no image (2 naming a file not found)" in caplog.text
    assert f"; {tmp_path / 'images/p8.JPG'} exists" in caplog.text
    assert f"; {tmp_path / 'images/p9.jpeg'} exists" in caplog.text
    assert counts["no_image"] == 2 and counts["missing_image"] == 2


def test_empty_image_cells_count_and_the_id_names_the_file(tmp_path):
    """The table the README's old snippet wrote for upper-case ids and lower-case files: empty
    cells for every id but the ones whose case matched. The only trace was INFO `no_image=N`."""
    ids = [f"TT{k:03d}" for k in range(30)] + ["42", "43"]
    photos(tmp_path / "images", [f"{sid.lower()}.jpg" for sid in ids])
    table = tmp_path / "table.csv"
    pd.DataFrame({"id": ids, "image": [""] * 30 + ["images/42.jpg", "images/43.jpg"], "text": "t",
                  "labels": "a"}).to_csv(table, index=False)
    with pytest.raises(TableFormatError) as err:
        manifest_from_table(table)
    said = str(err.value)
    assert "30 of 32 rows have no image (30 with an empty image cell)" in said
    assert f"line 2 (id TT000): empty image cell; {tmp_path / 'images/tt000.jpg'} exists" in said
    assert "30 of them have a file under another case or suffix" in said


def test_a_text_only_table_is_not_warned(tmp_path, caplog):
    table = tmp_path / "table.csv"
    pd.DataFrame({"id": ["a", "b"], "text": ["x", "y"], "labels": ["p", "q"]}).to_csv(table, index=False)
    with caplog.at_level(logging.WARNING, logger="data.table"):
        manifest_from_table(table)
    assert "no image" not in caplog.text


def test_a_table_to_predict_on_gets_no_split_and_no_class_warnings(tmp_path, caplog):
    """`--predict` (a `predict:` dataset): labels that would get a split and warnings about rare,
    look-alike and unscorable classes get none of them; a split column is not used either."""
    table = tmp_path / "table.csv"
    pd.DataFrame({"id": [f"s{k}" for k in range(12)], "text": "t",
                  "labels": ["a", "a|Rare", "a;b", "rare"] * 3, "split": ["train", "dev", "test"] * 4}).to_csv(
        table, index=False)
    with caplog.at_level(logging.WARNING):
        assert manifest(table, "--predict") == 0
    m = read_manifest(table.with_name("manifest.csv"))
    assert (m["split"] == "").all() and m["labels"].iloc[1] == "a|Rare"
    assert caplog.text == ""
    table.write_text(table.read_text().replace(",split", ",fold"))  # no split column: none made either
    assert manifest(table, "--predict") == 0
    assert (read_manifest(table.with_name("manifest.csv"))["split"] == "").all()
    assert caplog.text == ""
    assert manifest(table) == 0 and "class 'a;b'" in caplog.text  # the same table to train on is warned


# --- item 7: one level deeper ---------------------------------------------------------------
@pytest.mark.parametrize("header,column,name", [
    ("id,image,text,labels,Split", "Split", "split"),
    ("id,image, text,labels", " text", "text"),
    ("id,IMAGE,text,labels", "IMAGE", "image"),
    ("id ,image,text,labels", "id ", "id"),
])
def test_a_near_miss_column_name_is_refused_naming_it(tmp_path, header, column, name):
    """`Split` was carried as an extra column and the test rows re-split and trained on; `Text`
    and `IMAGE` emptied every text or image, with an INFO count."""
    photos(tmp_path / "images", ["a.png"])
    table = tmp_path / "table.csv"
    row = "a,images/a.png,x,cat" + (",test" if header.count(",") == 4 else "")
    table.write_text(f"{header}\n{row}\n")
    with pytest.raises(TableFormatError, match=f"{column!r} would be read as other data, not as `{name}`: "
                                               f"rename {column!r} to {name!r}"):
        manifest_from_table(table)
    jsonl = tmp_path / "table.jsonl"
    jsonl.write_text(json.dumps({"id": "a", "text": "x", column: "test"}) + "\n")
    with pytest.raises(TableFormatError, match=f"rename {column!r} to {name!r}"):
        manifest_from_table(jsonl)


def test_a_bar_inside_a_json_list_label_is_refused_naming_the_line(tmp_path):
    """`["romance|action"]` silently became two classes."""
    table = tmp_path / "table.csv"
    pd.DataFrame({"id": ["a", "b", "c"], "text": "t",
                  "labels": ['["drama"]', '["romance|action", "war"]', "a|b"]}).to_csv(table, index=False)
    with pytest.raises(TableFormatError, match=r"1 bad rows.*\n  line 3 \(id b\): labels item 'romance\|action' "
                                               r"holds '\|'.*\[\"romance\", \"action\"\]"):
        manifest_from_table(table)
    jsonl = tmp_path / "table.jsonl"
    jsonl.write_text('{"id": "a", "text": "t", "labels": ["x"]}\n{"id": "b", "text": "t", "labels": ["y|z"]}\n')
    with pytest.raises(TableFormatError, match=r"line 2 \(id b\): labels item 'y\|z' holds '\|'"):
        manifest_from_table(jsonl)


def test_json_lines_end_at_newline_only(tmp_path):
    """Raw U+2028, U+2029 and U+0085 inside JSON strings are valid JSON: `str.splitlines()` cut
    the lines there, refused them and shifted every later line number."""
    rows = [{"id": f"s{k}", "text": f"one{sep}two", "labels": "a"} for k, sep in enumerate("\u2028\u2029\u0085")]
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    assert all(ch in "".join(lines) for ch in "\u2028\u2029\u0085")  # raw, not escaped
    jsonl = tmp_path / "table.jsonl"
    jsonl.write_text("\r\n".join(lines) + "\r\n\r\n", encoding="utf-8")  # CRLF and a blank line: fine too
    m, _ = manifest_from_table(jsonl)
    assert m["id"].tolist() == ["s0", "s1", "s2"] and m["text"].tolist() == ["one two"] * 3
    jsonl.write_text("\n".join(lines + ['{"id": "s3", "text": "x"', '{"id": "s4", "text": "y"}']) + "\n",
                     encoding="utf-8")
    with pytest.raises(TableFormatError) as err:
        manifest_from_table(jsonl)
    assert "1 bad lines" in str(err.value) and "\n  line 4: not JSON" in str(err.value)


def test_an_image_cell_that_cannot_be_a_path_is_a_row_warning(tmp_path, caplog):
    """A caption pasted into the image column (> 255 bytes) crashed with `OSError: File name too
    long`; a NUL (a JSON escape) with `ValueError: embedded null byte`."""
    photos(tmp_path / "images", [f"{k}.png" for k in range(8)])
    caption = "A long caption pasted into the wrong column " * 8
    rows = [{"id": f"s{k}", "image": f"images/{k}.png", "text": "t", "labels": "a"} for k in range(8)]
    rows[1]["image"] = caption
    rows[2]["image"] = "images/a\u0000b.png"
    rows[3]["image"] = "images/" + "x" * 300 + "/1.png"  # a folder name too long
    jsonl = tmp_path / "table.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with caplog.at_level(logging.WARNING, logger="data.table"):
        m, counts = manifest_from_table(jsonl)
    assert m["image"].tolist()[1:4] == ["", "", ""] and m["text"].tolist()[1] == "t"
    assert counts["not_a_path"] == 3
    said = caplog.text
    assert "3 image cells are not file names; each row is kept without an image" in said
    assert "line 2 (id s1): the image cell 'A long caption pasted into the wrong col...' is not a file name " \
           "(a name of 351 bytes, over the 255 a file name may have; a caption pasted into the image column?)" in said
    assert "line 3 (id s2)" in said and "it holds a NUL character" in said
    assert "line 4 (id s3)" in said and "a name of 300 bytes" in said
    with pytest.raises(TableFormatError, match=r"3 bad rows .*\n  line 2 \(id s1\): the image cell"):
        manifest_from_table(jsonl, strict_images=True)
    table = tmp_path / "table.csv"
    pd.DataFrame(rows).drop(index=2).to_csv(table, index=False)  # a CSV cannot hold a NUL
    assert manifest(table) == 0
