"""The paper's Tables 2 (Ads-Parallelity) and 3 (MM-IMDb) from `config/paper/` as DataFrames.

`features` becomes a list of feature labels (empty for prior work); `pool` and `method` stay
strings ('' when the paper gives none); metric columns are floats (NaN where the paper has no
number). See `config/paper/README.md` for what the labels mean.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

PAPER_DIR = Path(__file__).resolve().parents[1] / "config" / "paper"
TABLES = {"ads": "table2_ads.csv", "imdb": "table3_imdb.csv"}
TEXT_COLUMNS = ("method", "modalities", "features", "pool")


def split_features(cell: str) -> list[str]:
    """'WSL(i), RoBERTa(t)' -> ['WSL(i)', 'RoBERTa(t)'] (labels hold no commas)."""
    return [part.strip() for part in str(cell).split(",") if part.strip()]


def load_table(name: str, folder: str | Path = PAPER_DIR) -> pd.DataFrame:
    if name not in TABLES:
        raise ValueError(f"unknown paper table {name!r}; choose one of {', '.join(TABLES)}")
    path = Path(folder) / TABLES[name]
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; the paper's tables live in config/paper/")
    frame = pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS}, keep_default_na=False,
                        na_values={c: [""] for c in _metric_columns(path)})
    frame["features"] = frame["features"].map(split_features)
    return frame


def _metric_columns(path: Path) -> list[str]:
    header = path.read_text(encoding="utf-8").splitlines()[0].split(",")
    return [c for c in header if c not in TEXT_COLUMNS]
