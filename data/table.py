"""Your own dataset (`format: table`): a table of images, texts and labels -> manifest rows.

The file's extension picks the reader: `.csv`, `.tsv`/`.tab` (`sep` sets another separator),
`.jsonl`/`.ndjson` (one JSON object per line) or `.parquet` (pyarrow). UTF-8. One row per sample:

    id       string, unique, non-empty
    image    path of the image, relative to the table's folder or absolute; may be empty
    text     the sample's text; may be empty (whitespace is collapsed to single spaces; a JSON
             list of strings is joined with spaces)
    labels   class names joined by `|` (`cat|outdoor`), or a JSON list (`["cat", "outdoor"]`, also
             as the text of a CSV/TSV cell); empty = no label; the column may be left out for an
             unlabeled table (one to predict on)
    split    optional: `train` / `dev` / `test`, or integer fold numbers for cross-validation

At least one of `image` and `text` must be a column; other columns are carried into the manifest
as they are. Names are matched exactly: a near miss of these five (`Split`, ` text`, `IMAGE`) is
refused, naming the rename, rather than carried as another column while the real one reads empty.
Without a `split` column (or with it all empty) a labelled table gets a seeded split in `ratios`
(train, dev, test), iteratively stratified on the labels (`data/stratify.py`) over the rows sorted
by id, so it does not depend on the row order; a table without any label gets no split (`split`
empty; predicting needs none).

Normalised, not refused (all else is taken as written): ids, labels, image paths and split values
lose surrounding whitespace; `a||b` and ` a | b ` give `a|b` (empty names dropped, a name repeated
in a row kept once); text whitespace collapses to single spaces; a whole JSON number as an id or
label is written as an integer (`1` and `1.0` are id `1`, so they repeat); the suffix picks the
reader in any case (`.CSV`); blank lines are skipped. JSON Lines end at a line feed only (a
carriage return before it is JSON whitespace): U+2028, U+2029 and U+0085 are valid inside JSON
strings and are kept (`str.splitlines` would cut lines there).

CSV/TSV are parsed strictly: a quote left open, a row with another number of fields than the
header, or a quoted field running over lines that look like rows is an error naming the line
where the row starts (a quoted field holding a newline is fine). Bad rows (those, an empty or
repeated id, a split value that is neither train/dev/test nor an integer, or a mix of the two, a
JSON object or nested list in a cell) are all reported at once, by line (row for Parquet), in a
`TableFormatError`. A named image that is missing keeps the row with an absent image (empty
`image`, as the other adapters do); one that exists but is unreadable (0 bytes, a folder, not an
image) keeps its path, so extraction records the failure for that row's image features; both are
listed in a warning; so is an image cell that cannot be a path (a caption pasted there: a NUL, a
name over 255 bytes), kept as a row without an image. `N of M rows have no image` is warned with
three examples and the file found under another case or suffix (`ABC.png` named, `abc.png` found;
for an empty cell, a file named like the id in the folders the table's images are in, the table's
folder or its images/): paths are taken as written, never guessed. At MISSING_STOP of the rows or
more the table is refused unless `allow_missing_images=True`. `strict_images=True` makes
every missing, unreadable or truncated image a bad row. A `|` inside a list label is a bad row.
Class names that look like slips (a separator look-alike, names differing only in case or
spaces) are warned about (`label_warnings`).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from data.stratify import iterative_split

log = logging.getLogger("data.table")

NAMED_SPLITS = ("train", "dev", "test")
RATIOS = (0.6, 0.1, 0.3)
READERS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
           ".parquet": "parquet"}


class TableFormatError(ValueError):
    """The table does not follow the format in data/table.py's docstring."""


SEPARATORS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
COLUMNS = ("id", "image", "text", "labels", "split")  # matched exactly: lower case, no spaces around
JSON_SPACE = " \t\r\n"  # whitespace in JSON (RFC 8259); a line of only these is blank
MISSING_STOP = 0.5  # this share of rows without an image stops the manifest (allow_missing_images)
LOOK_ALIKES = (";", ",", "/", "\\", "¦", "｜", "\t")  # probably meant as the `|` between labels


def _cell(value: object) -> str:
    """A cell as text: None/NaN -> '', a list -> `|`-joined, numbers without a trailing .0."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, (list, tuple, np.ndarray)):
        return "|".join(_cell(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _cell_problem(column: str, value: object) -> str | None:
    """Why a parsed cell cannot be a manifest cell (a JSON object, a nested or misplaced list)."""
    if isinstance(value, dict):
        return f"column {column!r} holds a JSON object {json.dumps(value)[:60]}; write a string"
    if isinstance(value, (bool, np.bool_)) and column in ("id", "image", "text", "labels", "split"):
        return f"column {column!r} holds the JSON boolean {json.dumps(bool(value))}; write a string"
    if isinstance(value, (list, tuple, np.ndarray)):
        if column in ("id", "image", "split"):
            return f"column {column!r} holds a list; write one value"
        if any(isinstance(v, (dict, list, tuple, np.ndarray)) for v in value):
            return f"column {column!r} holds a nested list or object; write a flat list of strings"
    return None


def _decode(path: Path) -> str:
    """The file as text; a non-UTF-8 byte is an error naming its line, column and value."""
    data = path.read_bytes()
    if (nul := data.find(b"\0")) >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise TableFormatError(f"{path} line {line}: a NUL byte; the file is binary or "
                               "UTF-16, not a UTF-8 text table: save it as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        byte = data[err.start:err.start + 1].hex()
        raise TableFormatError(f"{path} line {line}, column {column}: byte 0x{byte} is not UTF-8 ({err.reason}); "
                               "the file is in another encoding (Latin-1 or Windows-1252?): save it as "
                               "UTF-8") from None


def _looks_like_rows(field: str, delimiter: str, columns: int) -> bool:
    """A multi-line field some of whose lines hold a whole row's worth of delimiters."""
    lines = field.split("\n")
    return columns > 2 and len(lines) > 1 and any(l.count(delimiter) >= columns - 1 for l in lines[1:])


def _header_problem(path: Path, header: list[str], delimiter: str) -> str | None:
    """A one-column header that holds another separator: say which, and how to read the file."""
    if len(header) != 1:
        return None
    for name, c in (("semicolon", ";"), ("tab", "\t"), ("comma", ","), ("pipe", "|")):
        if c != delimiter and c in header[0]:
            fix = {"\t": "name the file .tsv", ",": "name the file .csv"}.get(c, f"set the dataset's "
                                                                             f"`sep: {c!r}` (--sep {c!r})")
            return (f"{path} line 1: the header {header[0]!r} is one column when split at {delimiter!r}, "
                    f"but holds {name}s: the file looks {name}-separated; {fix}, or save it comma-separated")
    return None


def _read_delimited(path: Path, delimiter: str) -> tuple[pd.DataFrame, list[str], dict[int, list[str]]]:
    """Strict CSV: a quote left open, or a row whose field count differs from the header's, is an
    error naming the line where the row starts; a quoted field may hold newlines."""
    text = _decode(path)
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))  # any long text; open quotes: strict
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    problems: dict[int, list[str]] = {}
    rows: list[list[str]] = []
    where: list[str] = []
    header: list[str] | None = None
    start = 1
    try:
        for record in reader:
            if not record:  # a blank line
                start = reader.line_num + 1
                continue
            if header is None:
                header = record
                repeated = sorted({c for c in header if header.count(c) > 1})
                if repeated:
                    raise TableFormatError(f"{path} line 1: the header names {repeated} more than once; "
                                           "give every column its own name")
                if (problem := _header_problem(path, header, delimiter)) is not None:
                    raise TableFormatError(problem)
                start = reader.line_num + 1
                continue
            found = []
            if len(record) != len(header):
                found.append(f"{len(record)} fields, the header has {len(header)} (quote a field that holds "
                             f"the separator {delimiter!r}; a stray double quote makes one field swallow the "
                             "next lines)")
            spans = reader.line_num - start
            if spans and any(_looks_like_rows(f, delimiter, len(header)) for f in record):
                found.append(f"a quoted field runs over {spans + 1} lines (to line {reader.line_num}) that look "
                             "like rows of their own: a stray double quote? Double a quote inside a "
                             'quoted field ("")')
            if found:
                problems[len(rows)] = found
            rows.append(record + [""] * (len(header) - len(record)))
            where.append(f"line {start}")
            start = reader.line_num + 1
    except csv.Error as err:
        raise TableFormatError(f"{path} line {start}: {err} (the row starting there is not valid CSV up to "
                               f"line {reader.line_num}); a field that starts with a double quote must end "
                               'with one, and a quote inside it is written twice ("")') from None
    if header is None:
        raise TableFormatError(f"{path} is empty; write a header row (id,image,text,labels)")
    frame = pd.DataFrame([r[:len(header)] for r in rows], columns=header, dtype=object)
    return frame, where, problems


def _read_jsonl(path: Path) -> tuple[pd.DataFrame, list[str], dict[int, list[str]]]:
    """One JSON object per line. Lines end at `\n` only (a `\r` before it is JSON whitespace):
    U+2028, U+2029, U+0085 and other characters `str.splitlines` breaks at are valid inside JSON
    strings."""
    rows, where, bad = [], [], []
    lines = _decode(path).split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip(JSON_SPACE):
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            bad.append(f"line {number}: not JSON ({err.msg})")
            continue
        if not isinstance(record, dict):
            bad.append(f"line {number}: a JSON {type(record).__name__}, expected an object")
            continue
        rows.append(record)
        where.append(f"line {number}")
    if bad:
        raise TableFormatError(f"{path}: {len(bad)} bad lines (one JSON object per line):\n  "
                               + "\n  ".join(bad))
    return pd.DataFrame(rows, dtype=object), where, {}


def _read_parquet(path: Path) -> tuple[pd.DataFrame, list[str], dict[int, list[str]]]:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise TableFormatError(f"{path}: reading Parquet needs pyarrow, which is not installed; "
                               "`pip install -r requirements.txt` (it pins pyarrow) or save the table as CSV, "
                               "TSV or JSON Lines") from None
    frame = pd.read_parquet(path)
    return frame.astype(object), [f"row {k}" for k in range(1, len(frame) + 1)], {}


def _labels_cell(value: object) -> tuple[object, str | None]:
    """A labels cell as parsed, with a string that holds a JSON list (`["a", "b"]`) read as one."""
    if not isinstance(value, str) or not value.strip().startswith("["):
        return value, None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, list) or any(isinstance(v, (dict, list)) for v in parsed):
        return value, (f"labels {value.strip()[:40]!r} starts with '[' but is not a JSON list of names; write "
                       '["a", "b"] (double quotes) or a|b')
    return parsed, None


def read_table(path: str | Path, sep: str = "") -> tuple[pd.DataFrame, list[str], dict[int, list[str]]]:
    """The table's cells as strings, where each row is in the file ('line 3', 'row 2') and the
    rows already found bad (row position -> problems). `sep`: the field separator of a CSV/TSV
    table ("" = by suffix: `,` for .csv, tab for .tsv/.tab)."""
    path = Path(path)
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise TableFormatError(f"{path}: unknown table type {path.suffix!r}; name the file "
                               f"{', '.join('*' + s for s in READERS)}")
    if not path.is_file():
        raise TableFormatError(f"table {path} not found; point the dataset's `table:` (or --table) at the file")
    if sep and kind not in ("csv", "tsv"):
        raise TableFormatError(f"{path}: `sep` applies to CSV/TSV tables, not {path.suffix}; drop it")
    if len(sep) > 1:
        raise TableFormatError(f"sep {sep!r}: one character (e.g. ';'; a tab is \"\\t\" in YAML)")
    if kind == "jsonl":
        frame, where, problems = _read_jsonl(path)
    elif kind == "parquet":
        frame, where, problems = _read_parquet(path)
    else:
        frame, where, problems = _read_delimited(path, sep or SEPARATORS[path.suffix.lower()])
    frame.columns = [str(c) for c in frame.columns]
    near = {c: c.strip().casefold() for c in frame.columns
            if c not in COLUMNS and c.strip().casefold() in COLUMNS}
    if near:
        renames = ", ".join(f"{c!r} to {name!r}" for c, name in near.items())
        raise TableFormatError(f"{path}: column names are matched exactly (lower case, no spaces around them), so "
                               f"{', '.join(map(repr, near))} would be read as other data, not as "
                               f"{', '.join(f'`{n}`' for n in near.values())}: rename {renames}")
    if "id" not in frame.columns or not {"image", "text"} & set(frame.columns):
        raise TableFormatError(f"{path} has the columns {list(frame.columns)}; a table needs `id` and "
                               "at least one of `image` and `text` (and `labels`, optionally `split`)")
    if "labels" not in frame.columns:
        log.warning("%s has no `labels` column: every sample is unlabeled (fine for predicting; "
                    "to train, add `labels` with class names joined by '|')", path)
    if "labels" not in frame.columns:
        frame["labels"] = ""
    frame = frame.reset_index(drop=True)
    labels = []
    for k, value in enumerate(frame["labels"]):
        parsed, problem = _labels_cell(value)
        labels.append(parsed)
        if problem:
            problems.setdefault(k, []).append(problem)
        elif isinstance(parsed, (list, tuple, np.ndarray)) and (joined := [v for v in parsed if "|" in str(v)]):
            problems.setdefault(k, []).append(
                f"labels item {str(joined[0])!r} holds '|', which joins class names: write each class as its own "
                f"item ({json.dumps([n.strip() for n in str(joined[0]).split('|')])}) or a name without '|'")
    frame["labels"] = pd.Series(labels, dtype=object)
    for column in frame.columns:
        cells = list(frame[column])
        for k, value in enumerate(cells):
            if (problem := _cell_problem(column, value)) is not None:
                problems.setdefault(k, []).append(problem)
                cells[k] = ""
            elif column == "text" and isinstance(value, (list, tuple, np.ndarray)):
                cells[k] = " ".join(_cell(v) for v in value)  # sentences as one text (MM-IMDb's plots)
        frame[column] = pd.Series(cells, dtype=object)
    return frame.map(_cell), where, problems


def _split_problems(split: pd.Series) -> list[str | None]:
    """Per row: what is wrong with its split value (None when fine)."""
    values = split.str.strip()
    named = values.isin(NAMED_SPLITS)
    fold = values.str.fullmatch(r"\d+")
    problems: list[str | None] = [None] * len(values)
    mixed = named.any() and fold.any()
    for k in np.flatnonzero(~(named | fold) | (mixed & fold)):
        v = values.iloc[k]
        if not v:
            problems[k] = "split is empty (give every row a split, or drop the column to get one)"
        elif mixed and fold.iloc[k]:
            problems[k] = f"split {v!r} is a fold number, but other rows use train/dev/test"
        else:
            problems[k] = f"split {v!r} is neither train, dev, test nor a fold number"
    return problems


def _image_problem(path: Path, full: bool = False) -> str | None:
    """Why an existing image file cannot be read (None when it reads): a folder, 0 bytes, a header
    PIL cannot read, or with `full`, pixel data that does not decode (a truncated file)."""
    from PIL import Image, UnidentifiedImageError

    if path.is_dir():
        return f"image {path} is a folder, not an image file"
    if path.stat().st_size == 0:
        return f"image {path} is empty (0 bytes)"
    try:
        with Image.open(path) as image:
            image.load() if full else image.size  # noqa: B018 (reads the header)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        return f"image {path} is not a readable image ({type(err).__name__}: {err})"
    return None


def label_warnings(labels: pd.Series, where: list[str]) -> list[str]:
    """Class names that are probably typing slips: one holding a separator look-alike (`a;b`,
    `a, b`: meant `a|b`?) and names that differ only in case, spaces, `-` or `_` (`Animal`, `animal`)."""
    rows: dict[str, list[int]] = {}
    for k, value in enumerate(labels):
        for name in filter(None, value.split("|")):
            rows.setdefault(name, []).append(k)
    out = []
    for name, found in rows.items():
        seps = [c for c in LOOK_ALIKES if c in name]
        if seps:
            out.append(f"class {name!r} ({len(found)} rows, first {where[found[0]]}) holds {seps[0]!r}: "
                       f"if it is two classes, join them with '|' ({'|'.join(p.strip() for p in name.split(seps[0]))})")
    groups: dict[str, list[str]] = {}
    for name in rows:
        groups.setdefault(re.sub(r"[\s_-]+", "", name.casefold()), []).append(name)
    for names in groups.values():
        if len(names) > 1:
            listed = ", ".join(f"{n!r} ({len(rows[n])} rows, first {where[rows[n][0]]})" for n in names)
            out.append(f"classes {listed} differ only in case, spaces, '-' or '_': they are "
                       "different classes; write one name if they are one")
    return out


def _labels(value: str) -> str:
    names = [n.strip() for n in value.split("|") if n.strip()]
    return "|".join(dict.fromkeys(names))


def parse_ratios(text: str | list | tuple) -> np.ndarray:
    """'0.6,0.1,0.3' or a list -> (3,) train/dev/test shares that sum to 1."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    try:
        ratios = np.array([float(p) for p in parts], dtype=np.float64)
    except ValueError:
        raise ValueError(f"split ratios {text!r}: write three numbers, train,dev,test (0.6,0.1,0.3)") from None
    if ratios.shape != (3,) or (ratios < 0).any() or ratios[0] <= 0 or abs(ratios.sum() - 1) > 1e-6:
        raise ValueError(f"split ratios {text!r}: three non-negative shares train,dev,test summing "
                         "to 1, train above 0 (e.g. 0.6,0.1,0.3)")
    return ratios / ratios.sum()


def stratified_split(ids: pd.Series, labels: pd.Series, ratios=RATIOS, seed: int = 0) -> np.ndarray:
    """train/dev/test per row (N,) object: iterative stratification over rows sorted by id."""
    ratios = parse_ratios(ratios)
    names = [n.split("|") if n else [] for n in labels]
    classes = sorted({c for row in names for c in row})
    column = {c: j for j, c in enumerate(classes)}
    targets = np.zeros((len(names), len(classes)), dtype=bool)
    rows = np.repeat(np.arange(len(names)), [len(row) for row in names])
    targets[rows, [column[c] for row in names for c in row]] = True
    order = np.argsort(ids.to_numpy(dtype=str), kind="stable")
    part = np.empty(len(ids), dtype=np.int64)
    part[order] = iterative_split(targets[order], ratios, np.random.default_rng(seed))
    return np.array(NAMED_SPLITS, dtype=object)[part]


def _not_a_path(name: str) -> str | None:
    """Why an image cell cannot name a file (None when it can): a caption pasted into the column."""
    if "\0" in name:
        return "it holds a NUL character"
    try:
        encoded = os.fsencode(name)
    except UnicodeEncodeError:
        return "it holds characters no file name can have"
    longest = max(len(part) for part in encoded.split(b"/"))
    if longest > 255:
        return f"a name of {longest} bytes, over the 255 a file name may have"
    if len(encoded) >= 4096:
        return f"{len(encoded)} bytes, over the 4,095 a path may have"
    return None


class _Spellings:
    """Files of a folder by their name without regard to case and suffix: where a name that is
    not found exists under another spelling (`ABC.png` vs `abc.png`, `x.jpg` vs `x.JPG`, `x.jpeg`)."""

    def __init__(self):
        self.folders: dict[Path, dict[str, Path]] = {}

    def _index(self, folder: Path) -> dict[str, Path]:
        if folder not in self.folders:
            index: dict[str, Path] = {}
            try:
                names = sorted(e.name for e in os.scandir(folder) if e.is_file())
            except OSError:
                names = []
            for name in names:
                index.setdefault(name.casefold(), folder / name)
                index.setdefault(Path(name).stem.casefold(), folder / name)
            self.folders[folder] = index
        return self.folders[folder]

    def of_path(self, path: Path) -> Path | None:
        index = self._index(path.parent)
        return index.get(path.name.casefold()) or index.get(path.stem.casefold())

    def of_id(self, sid: str, folders: list[Path]) -> Path | None:
        key = sid.casefold()
        return next((hit for folder in folders if (hit := self._index(folder).get(key))), None)


EMPTY, NOT_FOUND, NOT_A_PATH = "with an empty image cell", "naming a file not found", "whose cell is not a file name"


def _no_image_report(table: Path, rows: dict[int, tuple[str, str]], hints: dict[int, Path], total: int,
                     where: list[str], ids: pd.Series) -> str:
    """`N of M rows have no image (...)`, three examples and the other-spelling hint."""
    kinds = Counter(kind for kind, _ in rows.values())
    parts = ", ".join(f"{n} {kind}" for kind, n in kinds.items())
    examples = [f"{where[k]} (id {ids.iloc[k]}): {why}" + (f"; {hints[k]} exists" if k in hints else "")
                for k, (_, why) in list(rows.items())[:3]]
    text = (f"{table}: {len(rows)} of {total} rows have no image ({parts}): they train and predict without "
            "their image features; e.g.\n  " + "\n  ".join(examples))
    if hints:
        k = next(iter(hints))
        text += (f"\n  {len(hints)} of them have a file under another case or suffix (e.g. id {ids.iloc[k]}: "
                 f"{hints[k]}): image paths are taken as written (file names are case-sensitive); write each "
                 "file's exact name in the `image` column (README, 'Your own data', builds such a table)")
    return text


def manifest_from_table(table: str | Path, ratios=RATIOS, seed: int = 0, sep: str = "",
                        strict_images: bool = False, allow_missing_images: bool = False,
                        predict: bool = False) -> tuple[pd.DataFrame, Counter]:
    """Manifest rows of a table (in its row order) and counts of what was absent or unreadable.
    `strict_images`: a missing, empty, unreadable or truncated image is a bad row (every image is
    decoded in full); otherwise such rows are kept (see the module docstring), and when half the
    rows or more have no image the table is refused unless `allow_missing_images`. `predict`: a
    table to predict on: no split and no class warnings."""
    table = Path(table)
    frame, where, problems = read_table(table, sep)
    if frame.empty:
        raise TableFormatError(f"{table} holds no rows")
    has_images = "image" in frame.columns
    for column in ("image", "text"):
        if column not in frame.columns:
            frame[column] = ""
    ids = frame["id"].str.strip()
    for k in np.flatnonzero(ids == ""):
        problems.setdefault(k, []).append("id is empty")
    repeated = ids.duplicated(keep="first") & (ids != "")
    first = {sid: k for k, sid in reversed(list(enumerate(ids)))}
    for k in np.flatnonzero(repeated):
        problems.setdefault(k, []).append(f"id {ids.iloc[k]!r} repeats {where[first[ids.iloc[k]]]}")
    has_split = not predict and "split" in frame.columns and (frame["split"].str.strip() != "").any()
    if has_split:
        for k, problem in enumerate(_split_problems(frame["split"])):
            if problem:
                problems.setdefault(k, []).append(problem)

    image = frame["image"].str.strip()
    resolved = [Path(p) if Path(p).is_absolute() else table.parent / p for p in image]
    no_image: dict[int, tuple[str, str]] = {}  # row -> (kind, why) it has no image, in row order
    not_path: dict[int, str] = {}
    unreadable: dict[int, str] = {}
    for k, (name, path) in enumerate(zip(image, resolved)):
        if not name:
            if has_images:
                no_image[k] = EMPTY, "empty image cell"
            continue
        if "://" in name:
            problems.setdefault(k, []).append(f"image {name!r} is a URL; download the images and name "
                                              "their files (relative to the table's folder)")
            continue
        why = _not_a_path(name)
        if why is None:
            try:
                found = path.exists()
                problem = _image_problem(path, full=strict_images) if found else None
            except (OSError, ValueError) as err:
                why = f"it cannot be looked up ({type(err).__name__}: {err})"
        if why is not None:
            not_path[k] = (f"the image cell {name[:40] + '...' if len(name) > 40 else name!r} is not a file name "
                           f"({why}; a caption pasted into the image column?)")
            no_image[k] = NOT_A_PATH, not_path[k]
        elif not found:
            no_image[k] = NOT_FOUND, f"image {path} not found"
        elif problem is not None:
            unreadable[k] = problem
    if strict_images:
        for k, (kind, why) in no_image.items():
            if kind != EMPTY:
                problems.setdefault(k, []).append(why)
        for k, problem in unreadable.items():
            problems.setdefault(k, []).append(problem)
    if problems:
        lines = [f"{where[k]}" + (f" (id {ids.iloc[k]})" if ids.iloc[k] else "") + ": " + "; ".join(p)
                 for k, p in sorted(problems.items())]
        fix = ("; strict_images: true refuses any missing or unreadable image (set it false to keep "
               "such rows without their image features)") if strict_images and (no_image or unreadable) else ""
        raise TableFormatError(f"{table}: {len(lines)} bad rows (format: data/table.py{fix}):\n  "
                               + "\n  ".join(lines))

    counts: Counter = Counter()
    images = np.array([str(p) for p in resolved], dtype=object)
    images[(image == "").to_numpy()] = ""
    images[list(no_image)] = ""
    counts["missing_image"] = sum(kind == NOT_FOUND for kind, _ in no_image.values())
    counts["not_a_path"] = len(not_path)
    if not_path:
        log.warning("%s: %d image cells are not file names; each row is kept without an image (strict_images: "
                    "true stops instead):\n  %s", table, len(not_path),
                    "\n  ".join(f"{where[k]} (id {ids.iloc[k]}): {why}" for k, why in not_path.items()))
    if no_image:
        spellings = _Spellings()
        folders = list(dict.fromkeys([resolved[k].parent for k in range(len(image)) if image.iloc[k] and
                                      k not in not_path] + [table.parent, table.parent / "images"]))
        hints = {k: hit for k in no_image if k not in not_path and (hit := (
            spellings.of_id(ids.iloc[k], folders) if not image.iloc[k] else spellings.of_path(resolved[k])))}
        report = _no_image_report(table, no_image, hints, len(frame), where, ids)
        if len(no_image) >= MISSING_STOP * len(frame) and not allow_missing_images:
            raise TableFormatError(f"{report}\nAt {MISSING_STOP:.0%} or more rows without an image the manifest "
                                   "stops: fix the image paths, drop the `image` column for a text-only table, or "
                                   "set `allow_missing_images: true` (--allow-missing-images) to go on without them")
        log.warning("%s", report)
    if unreadable:
        counts["bad_image"] = len(unreadable)
        log.warning("%s: %d image files cannot be read; each row is kept with its text, and extraction "
                    "records a failure for its image features (strict_images: true stops instead):\n  %s",
                    table, len(unreadable), "\n  ".join(f"{where[k]} (id {ids.iloc[k]}): {p}"
                                                       for k, p in unreadable.items()))
    labels = frame["labels"].map(_labels)
    if not predict:
        for warning in label_warnings(labels, where):
            log.warning("%s: %s", table, warning)
    out = pd.DataFrame({"id": ids, "split": "", "image": images, "text": frame["text"].str.split().str.join(" "),
                        "labels": labels})
    if has_split:
        out["split"] = frame["split"].str.strip()
    elif predict:
        log.info("%s: a table to predict on: no split", table)
    elif (labels != "").any():
        out["split"] = stratified_split(ids, labels, ratios, seed)
    else:
        log.info("%s: no labels, so no split (every sample is one to predict)", table)
    extra = [c for c in frame.columns if c not in COLUMNS]
    for column in extra:
        out[column] = frame[column]
    counts["samples"] = len(out)
    counts["no_image"] = len(no_image) if has_images else len(out)
    counts["no_text"] = int((out["text"] == "").sum())
    counts["no_label"] = int((labels == "").sum())
    for name, n in out.loc[out["split"] != "", "split"].value_counts().items():
        counts[f"split={name}"] = int(n)
    return out, counts
