"""Writing and reading the manifest (docs/DESIGN.md, "Manifest")."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from core.atomic import atomic_write

COLUMNS = ("id", "split", "image", "text", "labels")
ADS_FOLDS = 5  # Ads-Parallelity has no split of its own: the paper's 5-fold cross-validation (Sec. 4.1)


def write_manifest(frame: pd.DataFrame, out: str | Path) -> Path:
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"manifest lacks columns {missing}")
    if frame["id"].duplicated().any():
        dup = frame.loc[frame["id"].duplicated(), "id"].tolist()[:5]
        raise ValueError(f"manifest has duplicate ids, e.g. {dup}")
    extra = [c for c in frame.columns if c not in COLUMNS]
    with atomic_write(out) as tmp:
        frame[list(COLUMNS) + extra].to_csv(tmp, index=False)
    return Path(out)


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Ids stay strings (MM-IMDb's are zero-padded); empty cells stay ''."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"manifest {path} does not exist; run the dataset's manifest rule first")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"manifest {path} lacks columns {missing}; "
                         "see docs/DESIGN.md, 'Manifest', for the columns it must have")
    if frame["id"].duplicated().any():
        dup = frame.loc[frame["id"].duplicated(), "id"].iloc[0]
        raise ValueError(f"manifest {path} lists id {dup!r} more than once; ids must be unique")
    return frame
