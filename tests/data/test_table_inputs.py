"""Bad own-data tables that used to give wrong results with exit 0 (issue 14, items 1, 4-7):
each is now an error naming the line, a recorded and warned row, or a warning."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from data.__main__ import main as data_main
from data.classes import unscorable
from core.manifest import read_manifest
from data.table import TableFormatError, manifest_from_table

from tests.data.test_table import make_table


def write_rows(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def plain_rows(n: int) -> list[str]:
    return [f"s{k:02d},,text of sample {k},{'cat' if k % 2 else 'dog'}" for k in range(n)]


# --- item 1: strict CSV -------------------------------------------------------------------
def test_a_stray_quote_is_an_error_naming_its_line(tmp_path):
    """68 rows, an unterminated quote in the row on line 28: today 27 samples and exit 0."""
    rows = plain_rows(68)
    rows[26] = 's26,,"he said hello,cat'  # line 28 (the header is line 1)
    path = write_rows(tmp_path / "t.csv", "id,image,text,labels", rows)
    with pytest.raises(TableFormatError, match=r"t\.csv line 28: .*unexpected end of data.*up to line 69"):
        manifest_from_table(path)
    assert data_main(["manifest", "--format", "table", "--table", str(path), "--out", str(tmp_path / "m.csv")]) == 1
    assert not (tmp_path / "m.csv").exists()


def test_a_stray_quote_closed_by_a_later_one_is_an_error(tmp_path):
    rows = plain_rows(20)
    rows[4] = 's04,,"stray,cat'  # line 6; the quote closes at line 12's quoted field
    rows[10] = 's10,,"a, quoted text",dog'
    path = write_rows(tmp_path / "t.csv", "id,image,text,labels", rows)
    with pytest.raises(TableFormatError, match=r"line 6: .*expected after"):
        manifest_from_table(path)
    rows[10] = 's10,,stray",dog'  # closes so that the field count happens to fit: the spanned lines
    path = write_rows(tmp_path / "t.csv", "id,image,text,labels", rows)  # look like rows -> refused
    with pytest.raises(TableFormatError, match=r"line 6 \(id s04\): .*quoted field runs over 7 lines"):
        manifest_from_table(path)


def test_wrong_field_counts_are_errors_and_quoted_newlines_are_fine(tmp_path):
    rows = plain_rows(6)
    rows[1] = "s01,,too few"  # line 3: labels used to become empty silently
    rows[3] = "s03,,one,two,cat"  # line 5: one more field
    rows[4] = 's04,,"a text\nover two lines, with a comma",cat'  # lines 6-7: valid
    path = write_rows(tmp_path / "t.csv", "id,image,text,labels", rows)
    with pytest.raises(TableFormatError) as err:
        manifest_from_table(path)
    text = str(err.value)
    assert "2 bad rows" in text
    assert "line 3 (id s01): 3 fields, the header has 4" in text
    assert "line 5 (id s03): 5 fields, the header has 4" in text
    rows[1], rows[3] = "s01,,three fields,cat", "s03,,two,cat"
    write_rows(path, "id,image,text,labels", rows)
    m, _ = manifest_from_table(path, allow_missing_images=True)  # no row has an image: allowed here
    assert m.set_index("id").loc["s04", "text"] == "a text over two lines, with a comma"
    assert len(m) == 6


# --- item 5: labels -----------------------------------------------------------------------
def test_label_look_alikes_and_case_variants_warn(tmp_path, caplog):
    rows = plain_rows(8)
    rows[0] = 's00,,t,person;space'
    rows[1] = 's01,,t,"object, food"'
    rows[2] = 's02,,t,Animal|cat'
    rows[3] = 's03,,t,animal'
    path = write_rows(tmp_path / "t.csv", "id,image,text,labels", rows)
    with caplog.at_level(logging.WARNING, logger="data.table"):
        m, _ = manifest_from_table(path, allow_missing_images=True)
    assert "class 'person;space' (1 rows, first line 2) holds ';'" in caplog.text
    assert "(person|space)" in caplog.text
    assert "class 'object, food' (1 rows, first line 3) holds ','" in caplog.text
    assert "classes 'Animal' (1 rows, first line 4), 'animal' (1 rows, first line 5) differ only in case" in caplog.text
    assert m["labels"].iloc[0] == "person;space"  # warned, not changed


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_a_json_list_in_a_delimited_cell(tmp_path, suffix):
    frame = pd.DataFrame({"id": ["a", "b", "c"], "text": ["x", "y", "z"],
                          "labels": ['["cat", "dog"]', "cat", "[]"]})
    path = tmp_path / f"t{suffix}"
    frame.to_csv(path, index=False, sep="," if suffix == ".csv" else "\t")
    m, _ = manifest_from_table(path)
    assert m["labels"].tolist() == ["cat|dog", "cat", ""]
    frame.loc[1, "labels"] = "[cat, dog]"  # not JSON: refused, not a class named '[cat'
    frame.to_csv(path, index=False, sep="," if suffix == ".csv" else "\t")
    with pytest.raises(TableFormatError, match=r"line 3 \(id b\): labels '\[cat, dog\]' starts with '\[' but is not"):
        manifest_from_table(path)


# --- item 7: messages ---------------------------------------------------------------------
@pytest.mark.parametrize("sep,name", [(";", "semicolon"), ("\t", "tab")])
def test_another_separator_in_a_csv_is_named(tmp_path, sep, name):
    path = tmp_path / "t.csv"
    pd.DataFrame({"id": ["a"], "image": [""], "text": ["x"], "labels": ["cat"]}).to_csv(path, index=False, sep=sep)
    with pytest.raises(TableFormatError, match=f"line 1: the header .* holds {name}s: the file looks {name}-separated"):
        manifest_from_table(path)
    if sep == ";":
        m, _ = manifest_from_table(path, sep=";", allow_missing_images=True)
        assert m["text"].tolist() == ["x"]
        out = tmp_path / "m.csv"
        assert data_main(["manifest", "--format", "table", "--table", str(path), "--sep", ";", "--out", str(out),
                          "--allow-missing-images"]) == 0


def test_non_utf8_names_the_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("id,text,labels\na,caf\u00e9,cat\nb,na\u00efve,dog\n".encode("utf-8")
                     + "c,r\u00e9sum\u00e9,cat\n".encode("latin-1"))
    with pytest.raises(TableFormatError, match=r"t\.csv line 4, column 4: byte 0xe9 is not UTF-8.*save it as UTF-8"):
        manifest_from_table(path)
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_bytes(b'{"id": "a", "text": "x"}\n{"id": "b", "text": "\xe9"}\n')
    with pytest.raises(TableFormatError, match=r"line 2, column 22: byte 0xe9"):
        manifest_from_table(jsonl)


def test_missing_table_is_one_line(tmp_path, caplog, capsys):
    with caplog.at_level(logging.ERROR, logger="data"):
        rc = data_main(["manifest", "--format", "table", "--table", str(tmp_path / "nope.csv"),
                        "--out", str(tmp_path / "m.csv")])
    assert rc == 1
    assert f"table {tmp_path / 'nope.csv'} not found; point the dataset's `table:`" in caplog.text
    assert "Traceback" not in capsys.readouterr().err


def test_json_objects_in_cells_are_refused(tmp_path):
    path = tmp_path / "t.jsonl"
    records = [{"id": "a", "text": "x", "labels": "cat", "meta": {"a": 1}},
               {"id": "b", "text": ["two", "sentences"], "labels": ["cat", "dog"]},
               {"id": ["c"], "text": "z", "labels": [["cat"]]}]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    with pytest.raises(TableFormatError) as err:
        manifest_from_table(path)
    text = str(err.value)
    assert "2 bad rows" in text
    assert "line 1 (id a): column 'meta' holds a JSON object {\"a\": 1}; write a string" in text
    assert "line 3: column 'id' holds a list; write one value; column 'labels' holds a nested list" in text
    path.write_text(json.dumps(records[1]) + "\n")
    m, _ = manifest_from_table(path)  # a list of sentences is one text; a list of labels is `|`-joined
    assert m["text"].tolist() == ["two sentences"] and m["labels"].tolist() == ["cat|dog"]


# --- item 6: bad images -------------------------------------------------------------------
def test_bad_images_are_kept_as_recorded_failures_or_stop_when_strict(tmp_path, caplog):
    frame = make_table(tmp_path, n=10)
    (tmp_path / "images" / "empty.png").write_bytes(b"")
    good = (tmp_path / "images" / "0.png").read_bytes()
    big = tmp_path / "images" / "big.png"
    Image.effect_noise((64, 64), 50).convert("RGB").save(big)
    (tmp_path / "images" / "cut.png").write_bytes(big.read_bytes()[:200])  # header reads, pixels do not
    frame.loc[1, "image"] = "images/empty.png"
    frame.loc[2, "image"] = "images/cut.png"
    frame.loc[3, "image"] = "images/gone.png"
    frame["text"] = "one line"
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    with caplog.at_level(logging.WARNING, logger="data.table"):
        m, counts = manifest_from_table(path)
    row = m.set_index("id")
    assert row.loc["x001", "image"].endswith("empty.png") and row.loc["x001", "text"] == "one line"
    assert "line 3 (id x001): image" in caplog.text and "is empty (0 bytes)" in caplog.text
    assert counts["bad_image"] == 1 and counts["missing_image"] == 1 and row.loc["x003", "image"] == ""
    assert row.loc["x002", "image"].endswith("cut.png")  # extraction records it, as the empty one:
    from extract.base import BadInput
    from extract.image_files import load_rgb

    for sid in ("x001", "x002"):
        with pytest.raises(BadInput):
            load_rgb(row.loc[sid, "image"])
    assert len(good) > 0
    with pytest.raises(TableFormatError) as err:
        manifest_from_table(path, strict_images=True)
    text = str(err.value)
    assert "3 bad rows" in text and "strict_images: true refuses" in text
    assert "line 3 (id x001): image" in text and "empty (0 bytes)" in text
    assert "line 4 (id x002): image" in text and "not a readable image" in text
    assert "line 5 (id x003): image" in text and "gone.png not found" in text


# --- item 4: classes that cannot be scored ------------------------------------------------
def test_unscorable_classes_are_warned_when_the_manifest_is_written(tmp_path, caplog):
    frame = pd.DataFrame({"id": [f"s{k}" for k in range(8)], "text": "x",
                          "labels": ["cat", "cat|rare", "dog|owl", "dog", "cat", "dog|owl", "cat", "dog"],
                          "split": ["train", "train", "train", "dev", "test", "dev", "test", "test"]})
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "m.csv"
    with caplog.at_level(logging.WARNING, logger="data"):
        assert data_main(["manifest", "--format", "table", "--table", str(path), "--out", str(out)]) == 0
    assert "2 classes cannot be scored; each counts as F1 = 0 in macro averages" in caplog.text
    assert "'rare': seen once (train 1, dev 0, test 0)" in caplog.text
    assert "'owl': no positive in the test split (train 1, dev 1, test 0)" in caplog.text
    found = unscorable(read_manifest(out).assign(split=list("00011011")))
    assert [(name, why) for name, _, why in found] == [("owl", "no positive in fold 1"), ("rare", "seen once")]


# --- more bad inputs, beyond the list ---------------------------------------------
@pytest.mark.parametrize("name,content,message", [
    ("dup.csv", "id,text,text,labels\na,x,y,cat\n", r"line 1: the header names \['text'\] more than once"),
    ("nul.csv", "id,text,labels\na,x\x00y,cat\n", r"line 2: a NUL byte; the file is binary or UTF-16"),
    ("cased.csv", "ID,Text,Labels\na,x,cat\n", r"column names are matched exactly .* rename 'ID' to 'id', 'Text' to 'text', "
                                               r"'Labels' to 'labels'"),
    ("url.csv", "id,image,text\na,https://example.com/a.jpg,x\n", r"line 2 \(id a\): image 'https://example.com/a.jpg' is a URL"),
    ("bool.jsonl", '{"id": "a", "text": true}\n', r"line 1 \(id a\): column 'text' holds the JSON boolean true"),
    ("ids.jsonl", '{"id": 1, "text": "x"}\n{"id": 1.0, "text": "y"}\n', r"line 2 \(id 1\): id '1' repeats line 1"),
    ("commas.tsv", "id,text,labels\na,x,cat\n", r"holds commas: the file looks comma-separated; name the file .csv"),
    ("empty.csv", "", r"empty.csv is empty; write a header row"),
    ("sep.jsonl", '{"id": "a", "text": "x"}\n', r"`sep` applies to CSV/TSV tables"),
])
def test_more_bad_inputs_are_refused_with_the_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(TableFormatError, match=message):
        manifest_from_table(path, sep=";" if name == "sep.jsonl" else "")


def test_a_long_quoted_text_is_not_a_csv_error(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text('id,text,labels\na,"' + "word " * 60_000 + '",cat\n')  # past csv's 131,072 default
    m, _ = manifest_from_table(path)
    assert len(m["text"].iloc[0]) == len("word " * 60_000) - 1
