"""Your own dataset (`format: table`): a table of images, texts and labels -> manifest rows.

The file's extension picks the reader: `.csv`, `.tsv`/`.tab`, `.jsonl`/`.ndjson` (one JSON object
per line) or `.parquet` (needs pyarrow). One row per sample:

    id       string, unique, non-empty
    image    path of the image, relative to the table's folder or absolute; may be empty
    text     the sample's text; may be empty (whitespace is collapsed to single spaces)
    labels   class names joined by `|` (`cat|outdoor`; a JSON list also works); empty = no label;
             the column may be left out for an unlabeled table (one to predict on)
    split    optional: `train` / `dev` / `test`, or integer fold numbers for cross-validation

At least one of `image` and `text` must be a column; other columns are carried into the manifest
as they are. Without a `split` column (or with it all empty) a labelled table gets a seeded split
in `ratios` (train, dev, test), iteratively stratified on the labels (`data/stratify.py`) over the
rows sorted by id, so it does not depend on the row order; a table without any label gets no
split (`split` empty; predicting needs none).

Bad rows (empty or repeated id, a split value that is neither train/dev/test nor an integer, or a
mix of the two, an image that exists but is not a readable image) are all reported at once, by
line (row for Parquet), in a `TableFormatError`. An image file that is named but missing keeps the
row with an absent image (empty `image`, as the other adapters do) and is listed in a warning.
"""

from __future__ import annotations

import csv
import json
import logging
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


def _cell(value: object) -> str:
    """A cell as text: None/NaN -> '', a JSON list -> `|`-joined, numbers without a trailing .0."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, (list, tuple, np.ndarray)):
        return "|".join(_cell(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _read_delimited(path: Path, delimiter: str) -> tuple[pd.DataFrame, list[str], dict[int, list[str]]]:
    problems: dict[int, list[str]] = {}
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f, delimiter=delimiter)
            header = [str(c).strip() for c in reader.fieldnames or []]
            reader.fieldnames = header
            rows, where = [], []
            start = reader.line_num + 1  # a quoted field may span lines: report where a row starts
            for record in reader:
                if record.get(None):
                    problems[len(rows)] = [f"{len(record.pop(None))} more fields than the header "
                                           f"(quote fields that hold the delimiter {delimiter!r})"]
                rows.append(record)
                where.append(f"line {start}")
                start = reader.line_num + 1
    except (UnicodeDecodeError, csv.Error) as err:
        raise TableFormatError(f"{path} is not a readable UTF-8 table ({err}); save it as UTF-8 "
                               "with a header row") from err
    return pd.DataFrame(rows, columns=header, dtype=object), where, problems


def _read_jsonl(path: Path) -> tuple[pd.DataFrame, list[str], dict[int, list[str]]]:
    rows, where, bad = [], [], []
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        raise TableFormatError(f"{path} is not UTF-8 ({err}); save it as UTF-8") from err
    for number, line in enumerate(lines, start=1):
        if not line.strip():
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
                               "`pip install pyarrow` (requirements.txt) or save the table as CSV, "
                               "TSV or JSON Lines") from None
    frame = pd.read_parquet(path)
    return frame.astype(object), [f"row {k}" for k in range(1, len(frame) + 1)], {}


def read_table(path: str | Path) -> tuple[pd.DataFrame, list[str], dict[int, list[str]]]:
    """The table's cells as strings, where each row is in the file ('line 3', 'row 2') and the
    rows the reader already found bad (row position -> problems)."""
    path = Path(path)
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise TableFormatError(f"{path}: unknown table type {path.suffix!r}; name the file "
                               f"{', '.join('*' + s for s in READERS)}")
    if not path.is_file():
        raise FileNotFoundError(f"table {path} not found; point the dataset's `table:` (or --table) "
                                "at the file")
    if kind == "jsonl":
        frame, where, problems = _read_jsonl(path)
    elif kind == "parquet":
        frame, where, problems = _read_parquet(path)
    else:
        frame, where, problems = _read_delimited(path, "," if kind == "csv" else "\t")
    frame.columns = [str(c).strip() for c in frame.columns]
    if "id" not in frame.columns or not {"image", "text"} & set(frame.columns):
        raise TableFormatError(f"{path} has the columns {list(frame.columns)}; a table needs `id` and "
                               "at least one of `image` and `text` (and `labels`, optionally `split`)")
    if "labels" not in frame.columns:
        log.warning("%s has no `labels` column: every sample is unlabeled (fine for predicting; "
                    "to train, add `labels` with class names joined by '|')", path)
    for column in ("image", "text", "labels"):
        if column not in frame.columns:
            frame[column] = ""
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


def _image_problem(path: Path) -> str | None:
    """Why an existing image file cannot be read (None when its header reads)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.size  # noqa: B018 (reads the header)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        return f"image {path} is not a readable image ({type(err).__name__}: {err})"
    return None


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


def build_manifest(table: str | Path, ratios=RATIOS, seed: int = 0) -> tuple[pd.DataFrame, Counter]:
    """Manifest rows of a table (in its row order) and counts of what was absent."""
    table = Path(table)
    frame, where, problems = read_table(table)
    if frame.empty:
        raise TableFormatError(f"{table} holds no rows")
    ids = frame["id"].str.strip()
    for k in np.flatnonzero(ids == ""):
        problems.setdefault(k, []).append("id is empty")
    repeated = ids.duplicated(keep="first") & (ids != "")
    first = {sid: k for k, sid in reversed(list(enumerate(ids)))}
    for k in np.flatnonzero(repeated):
        problems.setdefault(k, []).append(f"id {ids.iloc[k]!r} repeats {where[first[ids.iloc[k]]]}")
    has_split = "split" in frame.columns and (frame["split"].str.strip() != "").any()
    if has_split:
        for k, problem in enumerate(_split_problems(frame["split"])):
            if problem:
                problems.setdefault(k, []).append(problem)

    image = frame["image"].str.strip()
    resolved = [Path(p) if Path(p).is_absolute() else table.parent / p for p in image]
    missing = []
    for k, (name, path) in enumerate(zip(image, resolved)):
        if not name:
            continue
        if not path.exists():
            missing.append(k)
        elif (problem := _image_problem(path)) is not None:
            problems.setdefault(k, []).append(problem)
    if problems:
        lines = [f"{where[k]}" + (f" (id {ids.iloc[k]})" if ids.iloc[k] else "") + ": " + "; ".join(p)
                 for k, p in sorted(problems.items())]
        raise TableFormatError(f"{table}: {len(lines)} bad rows (format: data/table.py):\n  "
                               + "\n  ".join(lines))

    counts: Counter = Counter()
    images = np.array([str(p) for p in resolved], dtype=object)
    images[(image == "").to_numpy()] = ""
    if missing:
        images[missing] = ""
        counts["missing_image"] = len(missing)
        log.warning("%s: %d image files named but not found, kept without an image (relative paths "
                    "are taken from %s):\n  %s", table, len(missing), table.parent.resolve(),
                    "\n  ".join(f"{where[k]} (id {ids.iloc[k]}): {resolved[k]}" for k in missing))
    labels = frame["labels"].map(_labels)
    out = pd.DataFrame({"id": ids, "split": "", "image": images, "text": frame["text"].str.split().str.join(" "),
                        "labels": labels})
    if has_split:
        out["split"] = frame["split"].str.strip()
    elif (labels != "").any():
        out["split"] = stratified_split(ids, labels, ratios, seed)
    else:
        log.info("%s: no labels, so no split (every sample is one to predict)", table)
    extra = [c for c in frame.columns if c not in ("id", "split", "image", "text", "labels")]
    for column in extra:
        out[column] = frame[column]
    counts["samples"] = len(out)
    counts["no_image"] += int((image == "").sum())
    counts["no_text"] = int((out["text"] == "").sum())
    counts["no_label"] = int((labels == "").sum())
    for name, n in out.loc[out["split"] != "", "split"].value_counts().items():
        counts[f"split={name}"] = int(n)
    return out, counts
