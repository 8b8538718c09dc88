"""Where a dataset's features came from: `python -m report stores --store NAME=STORE.h5 ... --out X.csv`.

One row per feature store, read from its attrs and its ids alone (no feature rows): the feature,
extractor and backend, the exact model that ran (`model`), every weight file with its sha256
(`weights`), what differs from the paper's model (`substitute`, empty when nothing), the width,
the samples stored and those that failed, the device it ran on (its time is in the store's
attrs, not here: the table is the same wherever the stores were made). Written as X.csv, X.md and
X.html (`report.tables.write_csv_md`); `snakemake --report` shows the HTML beside the tables.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import pandas as pd

from extract.store import read_store
from model.options import FeatureSpec
from report.tables import markdown_table, write_csv_md

COLUMNS = ["feature", "extractor", "backend", "model", "weights", "substitute", "dim", "samples", "failed",
           "device", "store"]


def weights_text(attrs: dict) -> str:
    """`file sha256:HEX; ...` of the store's `weights` attr (`none` for random or no weights)."""
    files = json.loads(attrs.get("weights") or "[]")
    return "; ".join(f"{w.get('file', '')} sha256:{w.get('sha256', '')}" for w in files) or "none"


def store_row(name: str, path: str | Path) -> dict:
    store = read_store(path, columns=[])
    attrs = store.attrs
    return {"feature": name, "extractor": attrs.get("extractor", ""), "backend": attrs.get("backend", ""),
            "model": attrs.get("model", ""), "weights": weights_text(attrs),
            "substitute": attrs.get("substitute", ""), "dim": int(attrs.get("dim", 0)),
            "samples": len(store.ids), "failed": len(store.failed), "device": attrs.get("device", ""),
            "store": str(path)}


def to_markdown(frame: pd.DataFrame) -> str:
    header = ["Feature", "Extractor", "Model", "Weights (sha256)", "Substitute", "dim", "samples", "failed"]
    rows = ([r["feature"], f"{r['extractor']} / {r['backend']}", r["model"], r["weights"], r["substitute"] or "—",
             r["dim"], r["samples"], r["failed"]] for _, r in frame.iterrows())
    lines = ["# Feature stores", "",
             "The model and weights behind every feature, and what differs from the paper's model "
             "(`substitute`; empty: nothing).", ""] + markdown_table(header, rows)
    return "\n".join(lines) + "\n"


def write_provenance(specs: Sequence[str], out: str | Path) -> tuple[Path, Path]:
    """X.csv, X.md and X.html of the stores given as NAME=STORE.h5."""
    rows = []
    for text in specs:
        spec = FeatureSpec.parse(text)
        rows.append(store_row(spec.name, spec.path))
    if not rows:
        raise ValueError("give at least one --store NAME=STORE.h5")
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return write_csv_md(out, frame, to_markdown(frame))
