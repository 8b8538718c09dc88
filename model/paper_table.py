"""Our results beside the paper's Table 2 (Ads-Parallelity) or Table 3 (MM-IMDb).

The table keeps the paper's rows in the paper's order (`source=paper`: its own models and the
prior work it quotes) and puts each of our run groups (`source=dmms`, mean and std over seeds;
Ads folds averaged within a seed first) right after the paper row it matches, with the paper's
number (`paper_<metric>`) and the difference ours - paper (`diff_<metric>`). A group matches a
paper row when its feature labels (feature names mapped through `--label`) form the same set and
the pool is the same; a single-feature group matches the paper's single-feature row whatever the
pool on either side (the paper gives none, or `max`). Groups that match no row (other pools, the
concat baseline, other combinations) follow the last paper row with the same feature set, or come
at the end.

Metric columns use the paper's names; our Ads fractions are converted to percent like the paper.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from data.paper import load_table, split_features
from model.report import read_runs, summarise

# paper column -> our metrics.json key (model/metrics.py; fine classes via `fine_key`)
METRICS: dict[str, dict[str, str]] = {
    "imdb": {"f1_micro": "f1_micro", "f1_macro": "f1_macro", "f1_samples": "f1_samples"},
    "ads": {"accuracy": "accuracy", "auc": "auc",
            "non_parallel": "accuracy_non_parallel",
            "parallel_equiv": "accuracy_parallel_equivalent",
            "parallel_non_equiv": "accuracy_parallel_non_equivalent"},
}
SCALE = {"imdb": 1.0, "ads": 100.0}  # ours * SCALE is in the paper's unit
DIGITS = {"imdb": 4, "ads": 3}  # as the paper prints them
TITLES = {"imdb": "Table 3 (MM-IMDb, test split; F1 as fractions)",
          "ads": "Table 2 (Ads-Parallelity, 5-fold cross-validation; percent)"}
HEADERS = {"f1_micro": "F1-Micro", "f1_macro": "F1-Macro", "f1_samples": "F1-Samples",
           "accuracy": "Accuracy", "auc": "AUC", "non_parallel": "Non-Parallel",
           "parallel_equiv": "Parallel-Equiv", "parallel_non_equiv": "Parallel-Non-Equiv"}
LEAD = ["source", "Method", "Modalities", "Features", "Pool"]


def _nan(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def paper_key(features: Sequence[str], pool: str) -> tuple[frozenset, str]:
    """Matching key: the feature label set, and the pool (None for single-feature rows)."""
    labels = frozenset(features)
    return labels, (None if len(labels) == 1 else str(pool))


def our_rows(run_dirs: Sequence[str | Path], paper: str, labels: dict[str, str] | None = None) -> pd.DataFrame:
    """Our run groups (summarise) with the paper's metric columns in the paper's unit."""
    runs, metric_cols = read_runs(run_dirs, labels)
    for key in METRICS[paper].values():  # metrics our runs do not report stay NaN
        if key not in runs.columns:
            runs[key] = np.nan
    keys = list(METRICS[paper].values())
    table = summarise(runs, keys + [m for m in metric_cols if m not in keys])
    out = table[["Method", "Modalities", "Features", "Pool", "seeds", "runs"]].copy()
    for column, key in METRICS[paper].items():
        out[column] = table[key] * SCALE[paper]
        out[f"{column}_std"] = table[f"{key}_std"] * SCALE[paper]
    return out


def build_table(run_dirs: Sequence[str | Path], paper: str, labels: dict[str, str] | None = None,
                paper_folder: str | Path | None = None) -> pd.DataFrame:
    """Paper rows and ours, interleaved as described in the module docstring."""
    if paper not in METRICS:
        raise ValueError(f"--paper {paper!r}: choose one of {', '.join(METRICS)}")
    reference = load_table(paper) if paper_folder is None else load_table(paper, paper_folder)
    ours = our_rows(run_dirs, paper, labels)
    columns = list(METRICS[paper])

    keys = [paper_key(f, p) if f else None for f, p in zip(reference["features"], reference["pool"])]
    ours_keys = [paper_key(split_features(f), p) for f, p in zip(ours["Features"], ours["Pool"])]
    ours_sets = [k[0] for k in ours_keys]
    placed: set[int] = set()
    rows: list[dict] = []

    def add_ours(k: int, match: int | None) -> None:
        row = ours.iloc[k].to_dict()
        row["source"] = "dmms"
        row["paper_row"] = match
        for c in columns:
            paper_value = reference.iloc[match][c] if match is not None else np.nan
            row[f"paper_{c}"] = paper_value
            row[f"diff_{c}"] = row[c] - paper_value if match is not None else np.nan
        rows.append(row)
        placed.add(k)

    last_with_set = {}  # feature set -> index of the last paper row with it
    for i, key in enumerate(keys):
        if key is not None:
            last_with_set[key[0]] = i
    for i, (_, ref) in enumerate(reference.iterrows()):
        rows.append({"source": "paper", "Method": ref["method"], "Modalities": ref["modalities"],
                     "Features": ", ".join(ref["features"]), "Pool": ref["pool"], "paper_row": i,
                     **{c: ref[c] for c in columns}})
        if keys[i] is None:
            continue
        for k, key in enumerate(ours_keys):
            if key == keys[i]:
                add_ours(k, i)
        if last_with_set[keys[i][0]] == i:  # unmatched groups of the same feature set (concat, ...)
            for k, feature_set in enumerate(ours_sets):
                if k not in placed and feature_set == keys[i][0]:
                    add_ours(k, None)
    for k in range(len(ours)):
        if k not in placed:
            add_ours(k, None)

    table = pd.DataFrame(rows)
    order = LEAD + [x for c in columns for x in (c, f"{c}_std", f"paper_{c}", f"diff_{c}")]
    order += ["seeds", "runs", "paper_row"]
    for column in order:
        if column not in table.columns:
            table[column] = np.nan
    table["paper_row"] = table["paper_row"].astype("Int64")
    table["seeds"] = table["seeds"].astype("Int64")
    table["runs"] = table["runs"].astype("Int64")
    return table[order]


def _number(value: float, digits: int, sign: bool = False) -> str:
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _cell(row: pd.Series, column: str, digits: int) -> str:
    mean = row[column]
    if _nan(mean):
        return "-"
    text = _number(mean, digits)
    if row["source"] == "dmms":
        std = row[f"{column}_std"]
        if not _nan(std):
            text += f" ± {_number(std, digits)}"
        diff = row[f"diff_{column}"]
        if not _nan(diff):
            text += f" (Δ {_number(diff, digits, sign=True)})"
    return text


def to_markdown(table: pd.DataFrame, paper: str) -> str:
    """Paper rows as printed; ours as `mean ± std (Δ ours - paper)`."""
    columns = list(METRICS[paper])
    digits = DIGITS[paper]
    header = ["Source", "Method", "Modalities", "Features", "Pool"] + [HEADERS[c] for c in columns] + ["Seeds"]
    n_ours = int((table["source"] == "dmms").sum())
    n_matched = int(((table["source"] == "dmms") & table["paper_row"].notna()).sum())
    lines = [f"Paper: {TITLES[paper]}. dmms: our runs, mean ± std over seeds"
             + (" (folds averaged within a seed)" if paper == "ads" else "")
             + f"; Δ = ours − paper for the matching paper row ({n_matched} of {n_ours} of our rows match).",
             "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in table.iterrows():
        seeds = "" if pd.isna(row["seeds"]) else str(int(row["seeds"]))
        cells = [str(row["source"]), str(row["Method"]), str(row["Modalities"]) or "-",
                 str(row["Features"]) or "-", str(row["Pool"]) or "-"]
        cells += [_cell(row, c, digits) for c in columns] + [seeds]
        text = [c.replace("|", "\\|") for c in cells]
        if row["source"] == "dmms":
            text[0] = "**dmms**"
        lines.append("| " + " | ".join(text) + " |")
    return "\n".join(lines) + "\n"


def write_paper_table(run_dirs: Sequence[str | Path], paper: str, out: str | Path,
                      labels: dict[str, str] | None = None) -> tuple[Path, Path]:
    """TABLE.csv and TABLE.md next to it."""
    table = build_table(run_dirs, paper, labels)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False, float_format="%.6f")
    md = out.with_suffix(".md")
    md.write_text(to_markdown(table, paper))
    ours = table[table["source"] == "dmms"]
    unmatched = ours[ours["paper_row"].isna()]
    if len(unmatched):
        print(f"note: {len(unmatched)} of our {len(ours)} rows match no paper row (other pools, "
              f"concat, or feature labels not in the paper; map names with --label NAME=LABEL): "
              + "; ".join(f"{r.Features} ({r.Pool})" for r in unmatched.itertuples()), file=sys.stderr)
    return out, md
