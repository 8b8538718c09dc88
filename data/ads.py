"""Ads-Parallelity adapter: an annotation CSV -> manifest rows with seeded, stratified folds.

The dataset (Zhang et al. 2018, 327 ads after removing duplicated images) has no fixed public
file format, so this project defines one (full description: `data/ADS_FORMAT.md`). One row per
ad, comma-separated with a header, UTF-8:

    id            string, unique, non-empty
    image         path of the ad image, relative to the CSV's folder or absolute; may be empty
    slogan        the ad's slogan text; may be empty
    parallel      `parallel` | `non-parallel` (or 1 | 0)
    fine          `non-parallel` | `parallel-equivalent` | `parallel-non-equivalent`
    naturalness   image naturalness class indices, `|`-joined non-negative integers (`3|7`); may be empty
    concreteness  text concreteness class indices, same form; may be empty

`fine` must agree with `parallel`. Images that are named but missing are kept as an absent
modality (empty `image`) and counted. Everything else that is wrong is collected and reported at
once, by CSV line number, in an `AdsFormatError`.

Manifest: `split` holds the fold number 0..folds-1 of a `StratifiedKFold` over `fine` (shuffled
with `seed`, over the rows sorted by id, so the folds do not depend on the CSV's row order). The
trainer takes test = fold k and trains on the other folds less a stratified dev carve
(`model.inputs.select_splits`, `dev_fraction`; data/ADS_FORMAT.md). `labels` is `parallel`
for parallel ads and empty otherwise (one binary class); `text` = the slogan; `fine`,
`naturalness` and `concreteness` are extra columns (index lists stay `|`-joined).
"""

from __future__ import annotations

import csv
import logging
import re
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from core.manifest import ADS_FOLDS

log = logging.getLogger("data.ads")

COLUMNS = ("id", "image", "slogan", "parallel", "fine", "naturalness", "concreteness")
FINE = ("non-parallel", "parallel-equivalent", "parallel-non-equivalent")
FINE_ALIASES = {"parallel-equiv": "parallel-equivalent", "parallel-non-equiv": "parallel-non-equivalent",
                "nonparallel": "non-parallel"}
PARALLEL = {"parallel": True, "1": True, "non-parallel": False, "nonparallel": False, "0": False}
LABEL = "parallel"
INDEX_LIST = re.compile(r"^\d+(\|\d+)*$")
MAX_REPORTED = 25


class AdsFormatError(ValueError):
    """The annotation CSV does not follow the format in data/ADS_FORMAT.md."""


def _token(value: str) -> str:
    return "-".join(value.strip().lower().replace("_", " ").split())


def _index_list(value: str) -> str | None:
    """'3| 7 |12' -> '3|7|12'; '' -> ''; anything else -> None."""
    compact = "".join(value.split())
    return compact if compact == "" or INDEX_LIST.match(compact) else None


def _read_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """(line number, record) per data row; the line is where the record ends in the file."""
    if not path.is_file():
        raise FileNotFoundError(f"Ads annotation file {path} not found; see data/ADS_FORMAT.md for "
                                "what it holds")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [str(c).strip() for c in reader.fieldnames or []]
            missing = [c for c in COLUMNS if c not in header]
            if missing:
                raise AdsFormatError(f"{path} lacks the columns {missing} (found {header}); an Ads "
                                     f"annotation CSV needs {', '.join(COLUMNS)} (data/ADS_FORMAT.md)")
            reader.fieldnames = header
            rows = [(reader.line_num, record) for record in reader]
    except (UnicodeDecodeError, csv.Error) as err:
        raise AdsFormatError(f"{path} is not a readable UTF-8 CSV ({err}); see data/ADS_FORMAT.md") from err
    extra = [c for c in header if c not in COLUMNS]
    if extra:
        log.info("%s: ignoring extra columns %s", path, extra)
    return rows


def read_annotations(path: str | Path) -> tuple[pd.DataFrame, Counter]:
    """Validated rows (id, image, text, parallel, fine, naturalness, concreteness, line) + counts."""
    path = Path(path)
    rows = _read_rows(path)
    problems: list[str] = []
    seen: dict[str, int] = {}
    counts: Counter = Counter()
    missing_images: list[str] = []
    out = []
    for line, record in rows:
        raw = {c: record.get(c) or "" for c in COLUMNS}
        sid = raw["id"].strip()
        where = f"line {line}" + (f" (id {sid})" if sid else "")
        bad = [f"{len(record[None])} more fields than the header"] if record.get(None) else []
        if not sid:
            bad.append("id is empty")
        elif sid in seen:
            bad.append(f"id {sid!r} repeats line {seen[sid]}")
        else:
            seen[sid] = line
        parallel = PARALLEL.get(_token(raw["parallel"]))
        if parallel is None:
            bad.append(f"parallel is {raw['parallel']!r}, expected parallel, non-parallel, 1 or 0")
        fine = FINE_ALIASES.get(_token(raw["fine"]), _token(raw["fine"]))
        if fine not in FINE:
            bad.append(f"fine is {raw['fine']!r}, expected one of {', '.join(FINE)}")
        elif parallel is not None and parallel != fine.startswith("parallel-"):
            bad.append(f"fine {fine!r} contradicts parallel {raw['parallel']!r}")
        lists = {}
        for column in ("naturalness", "concreteness"):
            lists[column] = _index_list(raw[column])
            if lists[column] is None:
                bad.append(f"{column} is {raw[column]!r}, expected integers joined by '|' "
                           "(e.g. 3|7) or empty")
        if bad:
            problems.append(f"{where}: " + "; ".join(bad))
            continue
        image = raw["image"].strip()
        if image:
            resolved = Path(image) if Path(image).is_absolute() else path.parent / image
            if resolved.is_file():
                image = str(resolved)
            else:
                missing_images.append(f"line {line} (id {sid}): {resolved}")
                image = ""
        else:
            counts["no_image"] += 1
        text = " ".join(raw["slogan"].split())
        counts["no_text"] += not text
        out.append({"id": sid, "image": image, "text": text, "parallel": parallel, "fine": fine,
                    "naturalness": lists["naturalness"], "concreteness": lists["concreteness"],
                    "line": line})
    if problems:
        shown = problems[:MAX_REPORTED]
        more = f"\n  ... and {len(problems) - len(shown)} more rows" if len(problems) > len(shown) else ""
        raise AdsFormatError(f"{path}: {len(problems)} bad rows (format: data/ADS_FORMAT.md):\n  "
                             + "\n  ".join(shown) + more)
    if missing_images:
        counts["missing_image"] = len(missing_images)
        log.warning("%s: %d image files named but not found, kept without an image (relative paths "
                    "are taken from %s): %s%s", path, len(missing_images), path.parent.resolve(),
                    "; ".join(missing_images[:10]), " ..." if len(missing_images) > 10 else "")
    return pd.DataFrame(out, columns=["id", "image", "text", "parallel", "fine", "naturalness",
                                      "concreteness", "line"]), counts


def assign_folds(ids: pd.Series, fine: pd.Series, folds: int = ADS_FOLDS, seed: int = 0) -> np.ndarray:
    """Fold number per row: StratifiedKFold on `fine`, shuffled with `seed`, over rows sorted by id."""
    from sklearn.model_selection import StratifiedKFold

    if folds < 2:
        raise ValueError(f"--folds must be at least 2, got {folds}")
    if len(ids) < folds:
        raise AdsFormatError(f"{len(ids)} ads cannot be split into {folds} folds; lower --folds")
    smallest = fine.value_counts()
    if smallest.min() < folds:
        log.warning("fine class %r has only %d ads, fewer than %d folds: some folds lack it",
                    smallest.idxmin(), smallest.min(), folds)
    order = np.argsort(ids.to_numpy(dtype=str), kind="stable")
    labels = fine.to_numpy()[order]
    result = np.empty(len(ids), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        for k, (_, test) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
            result[order[test]] = k
    return result


def manifest_from_ads(annotations: str | Path, folds: int = ADS_FOLDS, seed: int = 0) -> tuple[pd.DataFrame, Counter]:
    """Manifest rows of an Ads annotation CSV (in its row order) and counts of what was absent."""
    rows, counts = read_annotations(annotations)
    if rows.empty:
        raise AdsFormatError(f"{annotations} holds no ads")
    fold = assign_folds(rows["id"], rows["fine"], folds, seed)
    frame = pd.DataFrame({
        "id": rows["id"], "split": fold.astype(str), "image": rows["image"], "text": rows["text"],
        "labels": np.where(rows["parallel"].to_numpy(dtype=bool), LABEL, ""),
        "fine": rows["fine"], "naturalness": rows["naturalness"], "concreteness": rows["concreteness"],
    })
    counts["samples"] = len(frame)
    counts["parallel"] = int(rows["parallel"].sum())
    counts["no_naturalness"] = int((rows["naturalness"] == "").sum())
    counts["no_concreteness"] = int((rows["concreteness"] == "").sum())
    for name, n in rows["fine"].value_counts().items():
        counts[f"fine={name}"] = int(n)
    log.info("fold sizes: %s", dict(sorted(Counter(fold.tolist()).items())))
    return frame, counts

