"""Our results beside the paper's Table 2 (Ads-Parallelity) or Table 3 (MM-IMDb).

The table keeps the paper's rows in the paper's order (`source=paper`: its own models and the
prior work it quotes) and puts each of our run groups (`source=dmms`, mean and std over seeds;
Ads folds averaged within a seed first) right after the paper row it matches, with the paper's
number (`paper_<metric>`) and the difference ours - paper (`diff_<metric>`). A group matches a
paper row when its feature labels (feature names mapped through `--label`) form the same set and
the pool is the same, and only `set` groups (the paper's model) match; a single-feature group
matches the paper's single-feature row whatever the pool on either side (the paper gives none, or
`max`). Groups that match no row (other pools, `set per modality`, the concat baselines, which
the paper reports no numbers for, other combinations) follow the last paper row with the same
feature set, or come at the end.

Metric columns use the paper's names; our Ads fractions are converted to percent like the paper.

Cross-validated runs (Ads) also get pooled out-of-fold figures: per (combination, pool, seed) the
folds' test predictions (`predictions.h5`) are concatenated, so every ad is scored once by the run
that did not train on it, and accuracy and AUC are computed over all of them (`oof_accuracy`,
`oof_auc`, `oof_samples`); mean and std are then taken over seeds. The fold mean weights every
fold alike; the pooled figures weight every ad alike and give one AUC over the whole dataset.

Substitutions: every feature whose store records a backend or weights other than the paper's
(store attr `substitute`, written by the extractors; `extract/substitutes.py`) is listed under
the markdown table, and each of our CSV rows names those of its features in `substitutes`. A store
that records no `substitute` (not written by `python -m extract`) reads NO_RECORD.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from data.paper import load_table, split_features
from extract.store import read_attrs
from model.metrics import binary_metrics
from model.options import FeatureSpec
from model.runfiles import read_predictions, run_threshold
from report.results import class_note, summarise
from report.runs import KEYS, Row, Run, group_rows, read_runs, run_frame
from report.tables import cell, markdown_table, write_csv_md

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
OOF = ("oof_accuracy", "oof_auc")  # pooled out-of-fold figures of cross-validated runs
OOF_HEADERS = {"oof_accuracy": "OOF Accuracy", "oof_auc": "OOF AUC"}
NO_RECORD = "unknown (the store records no substitution)"  # a store not written by `python -m extract`


def paper_key(features: Sequence[str], pool: str) -> tuple[frozenset, str]:
    """Matching key: the feature label set, and the pool (None for single-feature rows)."""
    labels = frozenset(features)
    return labels, (None if len(labels) == 1 else str(pool))


def our_rows(runs: Sequence[Run], paper: str, labels: dict[str, str] | None = None) -> pd.DataFrame:
    """Our rows (summarise) with the paper's metric columns in the paper's unit."""
    frame, metric_cols = run_frame(runs)
    for key in METRICS[paper].values():  # metrics our runs do not report stay NaN
        if key not in frame.columns:
            frame[key] = np.nan
    keys = list(METRICS[paper].values())
    table = summarise(frame, keys + [m for m in metric_cols if m not in keys])
    out = table[["Method", "Modalities", "Features", "Pool", "seeds", "runs"]].copy()
    for column, key in METRICS[paper].items():
        out[column] = table[key] * SCALE[paper]
        out[f"{column}_std"] = table[f"{key}_std"] * SCALE[paper]
    extras = run_extras(group_rows(runs), labels or {})
    for column in OOF:
        if column not in extras.columns:
            extras[column] = extras[f"{column}_std"] = np.nan
        for name in (column, f"{column}_std"):
            extras[name] = extras[name] * SCALE[paper]
    if "oof_samples" not in extras.columns:
        extras["oof_samples"] = np.nan
    out = out.merge(extras, on=KEYS, how="left", validate="one_to_one")
    return out


def store_substitute(name: str, value: str) -> str:
    """What feature `name`'s store (metrics.json `feature_stores`: `STORE.h5[:COLUMN]`) records as
    differing from the paper ("" for the paper's model); reads attrs only."""
    path = FeatureSpec.parse(f"{name}={value}").path
    if not path.exists():
        return f"unknown (store {path} not found)"
    attrs = read_attrs(path)
    if "substitute" not in attrs:
        return NO_RECORD
    substitute = str(attrs["substitute"])
    model = str(attrs.get("model", ""))
    return f"{substitute} (ran {model})" if substitute and model else substitute


def run_substitutes(metrics: dict, labels: dict[str, str]) -> dict[str, str]:
    """Feature label -> substitution for each feature of a run that does not run the paper's model."""
    out = {}
    for name, value in metrics["feature_stores"].items():
        substitute = store_substitute(name, str(value))
        if substitute:
            out[labels.get(name, name)] = substitute
    return out


def pooled_oof(runs: Sequence[Run]) -> dict[str, float]:
    """Accuracy and AUC over the concatenated test predictions of one seed's folds (binary task),
    each fold's predictions at its run's threshold."""
    ids, probs, targets, cuts = [], [], [], []
    for run in runs:
        run_ids, run_probs, run_targets, _, task = read_predictions(run.dir)
        if task != "binary":
            raise ValueError(f"{run.dir}: pooled out-of-fold figures need binary runs, found task {task!r}")
        ids += run_ids
        probs.append(run_probs.reshape(-1))
        targets.append(run_targets.reshape(-1))
        cuts.append(np.full(len(run_ids), run_threshold(run.metrics)))  # each fold at its own
    repeated = pd.Index(ids).duplicated()
    if repeated.any():
        raise ValueError(f"runs {', '.join(run.dir for run in runs)} test sample {ids[int(np.argmax(repeated))]!r} "
                         "twice: give each fold of a seed once (one run folder per fold)")
    scores = binary_metrics(np.concatenate(targets), np.concatenate(probs), np.concatenate(cuts))
    return {"oof_accuracy": scores["accuracy"], "oof_auc": scores["auc"], "oof_samples": len(ids)}


def run_extras(rows: Sequence[Row], labels: dict[str, str]) -> pd.DataFrame:
    """Per row: `substitutes` of its features and, for cross-validated runs, pooled out-of-fold
    figures (fractions) as mean and `_std` over seeds, and `oof_samples`."""
    out = []
    for row in rows:
        substitutes: dict[str, set[str]] = {}
        for run in row.runs:
            for label, text in run_substitutes(run.metrics, labels).items():
                substitutes.setdefault(label, set()).add(text)
        extra: dict[str, object] = row.labels
        extra["substitutes"] = "; ".join(f"{label}: {' / '.join(sorted(texts))}"
                                         for label, texts in substitutes.items())
        extra["_substitutes"] = substitutes
        folded = Row(row.key, [run for run in row.runs if run.fold is not None]).seeds()
        if folded:
            per_seed = pd.DataFrame([pooled_oof(folded[seed]) for seed in sorted(folded, key=lambda s: (s is None, s))])
            for column in OOF:
                extra[column] = per_seed[column].mean()
                extra[f"{column}_std"] = per_seed[column].std(ddof=1)
            extra["oof_samples"] = int(per_seed["oof_samples"].max())
        out.append(extra)
    return pd.DataFrame(out)


def build_table(run_dirs: Sequence[str | Path], paper: str, labels: dict[str, str] | None = None,
                paper_folder: str | Path | None = None) -> pd.DataFrame:
    """Paper rows and ours, interleaved as described in the module docstring."""
    if paper not in METRICS:
        raise ValueError(f"--paper {paper!r}: choose one of {', '.join(METRICS)}")
    reference = load_table(paper) if paper_folder is None else load_table(paper, paper_folder)
    runs = read_runs(run_dirs, labels)
    ours = our_rows(runs, paper, labels)
    columns = list(METRICS[paper])

    keys = [paper_key(f, p) if f else None for f, p in zip(reference["features"], reference["pool"])]
    # only `set` rows are the paper's model; other methods match no paper row (placed by feature set)
    ours_keys = [paper_key(split_features(f), p) if m == "set" else (frozenset(split_features(f)), m)
                 for f, p, m in zip(ours["Features"], ours["Pool"], ours["Method"])]
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
        if last_with_set[keys[i][0]] == i:  # unmatched groups of the same feature set (baselines, ...)
            for k, feature_set in enumerate(ours_sets):
                if k not in placed and feature_set == keys[i][0]:
                    add_ours(k, None)
    for k in range(len(ours)):
        if k not in placed:
            add_ours(k, None)

    table = pd.DataFrame(rows)
    order = LEAD + [x for c in columns for x in (c, f"{c}_std", f"paper_{c}", f"diff_{c}")]
    if paper == "ads":
        order += [x for c in OOF for x in (c, f"{c}_std")] + ["oof_samples"]
    order += ["seeds", "runs", "paper_row", "substitutes"]
    for column in order:
        if column not in table.columns:
            table[column] = np.nan
    table["paper_row"] = table["paper_row"].astype("Int64")
    table["seeds"] = table["seeds"].astype("Int64")
    table["runs"] = table["runs"].astype("Int64")
    if "oof_samples" in table.columns:
        table["oof_samples"] = table["oof_samples"].astype("Int64")
    table["substitutes"] = table["substitutes"].fillna("")
    table = table[order].copy()
    table.attrs["substitutes"] = _all_substitutes(ours)  # for the note under the markdown table
    table.attrs["notes"] = reading_note(runs, labels or {}) + class_note(runs)
    return table


def reading_note(runs: Sequence[Run], labels: dict[str, str]) -> list[str]:
    """Where our runs read the paper one way of several: IE(...) features with several indices per
    sample are a mean bag of embeddings, not the [13] CNN (docs/PAPER.md, 'CNN-text(objs) and
    reference [13]')."""
    bags = set()
    for run in runs:
        encoders = (run.metrics.get("config") or {}).get("encoders") or {}
        for name, kind in (run.metrics.get("feature_kinds") or {}).items():
            if kind == "index" and encoders.get(name, "bag") == "bag":
                bags.add(labels.get(name, name))
    if not bags:
        return []
    return [f"Reading of the paper: {', '.join(sorted(bags))} encode a sample's several indices as ONE "
            "element, the mean of their learned embeddings (bag of embeddings), not with the "
            "architecture of the paper's [13]: Table 2 lists CNN-text(objs) beside IE(objs), so dmms "
            "takes [13]'s CNN to be CNN-text(objs) only (docs/PAPER.md).", ""]


def _all_substitutes(ours: pd.DataFrame) -> dict[str, list[str]]:
    """Feature label -> every substitution our runs of it record (sorted)."""
    merged: dict[str, set[str]] = {}
    for found in ours["_substitutes"]:
        for label, texts in found.items():
            merged.setdefault(label, set()).update(texts)
    return {label: sorted(texts) for label, texts in sorted(merged.items())}


def _cell(row: pd.Series, column: str, digits: int) -> str:
    """A paper row's number as printed; ours `mean ± std (Δ ours - paper)`; `-` without a number."""
    ours = row["source"] == "dmms"
    text = cell(row[column], row[f"{column}_std"] if ours else None, digits, empty="-")
    diff = row.get(f"diff_{column}")
    if ours and text != "-" and not pd.isna(diff):
        text += f" (Δ {diff:+.{digits}f})"
    return text


def substitution_note(substitutes: dict[str, list[str]]) -> list[str]:
    """The lines under a table: every feature that did not run the paper's model, and what ran."""
    if not substitutes:
        return ["Substitutions: none; every feature's store records the paper's model."]
    lines = ["Substitutions (features whose backend or weights differ from the paper's; "
             "store attr `substitute`):", ""]
    for label, texts in substitutes.items():
        lines += [f"- {label}: {text}" for text in texts]
    return lines


def to_markdown(table: pd.DataFrame, paper: str) -> str:
    """Paper rows as printed; ours as `mean ± std (Δ ours - paper)`; pooled out-of-fold figures
    (Ads); the substitutions under the table."""
    columns = list(METRICS[paper])
    oof = [c for c in OOF if c in table.columns]
    digits = DIGITS[paper]
    header = (["Source", "Method", "Modalities", "Features", "Pool"] + [HEADERS[c] for c in columns]
              + [OOF_HEADERS[c] for c in oof] + ["Seeds"])
    n_ours = int((table["source"] == "dmms").sum())
    n_matched = int(((table["source"] == "dmms") & table["paper_row"].notna()).sum())
    lines = [f"Paper: {TITLES[paper]}. dmms: our runs, mean ± std over seeds"
             + (" (folds averaged within a seed)" if paper == "ads" else "")
             + f"; Δ = ours − paper for the matching paper row ({n_matched} of {n_ours} of our rows match)."
             + (" OOF: pooled out-of-fold accuracy and AUC (every fold's test predictions of a seed "
                "scored together), mean ± std over seeds." if oof else ""),
             ""]
    rows = ([("**dmms**" if row["source"] == "dmms" else str(row["source"])), str(row["Method"]),
             str(row["Modalities"]) or "-", str(row["Features"]) or "-", str(row["Pool"]) or "-",
             *(_cell(row, c, digits) for c in columns + oof), "" if pd.isna(row["seeds"]) else int(row["seeds"])]
            for _, row in table.iterrows())
    lines += markdown_table(header, rows)
    lines += [""] + substitution_note(table.attrs.get("substitutes", {}))
    notes = table.attrs.get("notes", [])
    lines += [""] + notes if notes else []
    return "\n".join(lines) + "\n"


def write_paper_table(run_dirs: Sequence[str | Path], paper: str, out: str | Path,
                      labels: dict[str, str] | None = None) -> tuple[Path, Path]:
    """TABLE.csv and TABLE.md next to it."""
    table = build_table(run_dirs, paper, labels)
    out, md = write_csv_md(out, table, to_markdown(table, paper))
    ours = table[table["source"] == "dmms"]
    unmatched = ours[ours["paper_row"].isna()]
    if len(unmatched):
        print(f"note: {len(unmatched)} of our {len(ours)} rows match no paper row (other pools, "
              f"other methods, or feature labels not in the paper; map names with --label NAME=LABEL): "
              + "; ".join(f"{r.Features} ({r.Pool})" for r in unmatched.itertuples()), file=sys.stderr)
    return out, md
