"""The results table (`python -m report table`): one row per experiment (Method, Modalities,
Features, Pool; report/runs.py), each metric's mean ± std over seeds (runs of several folds
averaged per seed first), the `lr` and `threshold` columns (the settings and the values the runs
used), the decision thresholds and the classes that cannot be scored under it. `summarise` is
reused by the paper table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from model.options import LR_AUTO, THRESHOLD_DEV
from model.runfiles import PREDICTIONS, read_predictions
from report.runs import KEYS, Run, read_runs, run_frame
from report.tables import cell, markdown_table, over_seeds, write_csv_md

SETTINGS = ["lr", "threshold"]  # text columns: setting and the values used (`settings`)


def settings(runs: pd.DataFrame) -> pd.DataFrame:
    """Per KEYS group, the `lr` and `threshold` columns: the setting and, where chosen on dev,
    the distinct values the runs used (`auto: 0.003, 0.01`; `dev: 0.35`; `0.001`)."""
    def text(setting: str, used: pd.Series, word: str) -> str:
        values = ", ".join(f"{v:g}" for v in sorted(set(used.dropna())))
        return f"{word}: {values}" if setting == word else values

    rows = []
    for key, group in runs.groupby(KEYS, sort=False):
        rows.append({**dict(zip(KEYS, key)),
                     "lr": text(group["lr_setting"].iloc[0], group["lr_used"], LR_AUTO),
                     "threshold": text(group["threshold_setting"].iloc[0], group["threshold_used"], THRESHOLD_DEV)})
    return pd.DataFrame(rows, columns=KEYS + SETTINGS)


def summarise(runs: pd.DataFrame, metric_cols: Sequence[str]) -> pd.DataFrame:
    """Mean and `<metric>_std` over seeds per KEYS group (report/tables.py `over_seeds`), `seeds`
    and `runs` counts, the `lr` and `threshold` columns; sorted by number of modalities, then the
    first metric (best first)."""
    table = over_seeds(runs, KEYS, metric_cols)
    if "lr_setting" in runs.columns:
        table = table.merge(settings(runs), on=KEYS, how="left", validate="one_to_one")
    table["_n"] = table["Modalities"].str.count(r"\+") + 1
    by = ["_n"] + ([metric_cols[0]] if metric_cols else [])
    table = table.sort_values(by, ascending=[True] + [False] * (len(by) - 1), kind="stable")
    return table.drop(columns="_n").reset_index(drop=True)


def to_markdown(table: pd.DataFrame, metric_cols: Sequence[str]) -> str:
    """Markdown table with `mean ± std` cells, the lr column, and the decision thresholds under it
    (`threshold_note`)."""
    rows = ([*(row[k] for k in KEYS), *(cell(row[m], row[f"{m}_std"]) for m in metric_cols), row["lr"],
             int(row["seeds"])] for _, row in table.iterrows())
    lines = markdown_table(KEYS + list(metric_cols) + ["lr", "seeds"], rows)
    return "\n".join(lines + [""] + threshold_note(table)) + "\n"


def threshold_note(table: pd.DataFrame) -> list[str]:
    """The lines under a table giving each row's decision threshold (one line when all agree)."""
    lead = ("Decision threshold on the predicted probabilities (dev: chosen per run on its dev split, one "
            "value for all classes; the values used)")
    if table["threshold"].nunique() == 1:
        return [f"{lead}: {table['threshold'].iloc[0]} for every row."]
    return [f"{lead}:", ""] + [f"- {r['Features']} ({r['Pool']}, {r['Method']}): {r['threshold']}"
                               for _, r in table.iterrows()]


def class_note(runs: Sequence[Run]) -> list[str]:
    """Lines for under a table: the classes of multi-label runs that cannot be scored (no positive
    among a run's test samples, from its predictions; seen once in its manifest), each an F1 of 0
    in `f1_macro`. [] when every class can be scored."""
    from core.manifest import read_manifest
    from data.classes import unscorable

    found: dict[str, set[str]] = {}
    manifests: set[str] = set()
    for run in runs:
        if "f1_macro" not in run.metrics.get("metric_names", []) or not (Path(run.dir) / PREDICTIONS).exists():
            continue  # a binary task, or a run folder made without predictions (tests)
        _, _, targets, classes, _ = read_predictions(run.dir)
        where = "the test split" if run.fold is None else f"fold {run.fold}"
        for c in np.flatnonzero(targets.sum(0) == 0):
            found.setdefault(classes[c], set()).add(f"no positive in {where}")
        manifests.add(str(run.metrics.get("manifest", "")))
    for path in sorted(m for m in manifests if m and Path(m).is_file()):
        for name, _, why in unscorable(read_manifest(path)):
            if why == "seen once":
                found.setdefault(name, set()).add(why)
    if not found:
        return []
    return ["Classes that cannot be scored (each counts as F1 = 0 in the macro averages; the manifest "
            "log lists their samples per split):", ""] + [f"- {name}: {'; '.join(sorted(why))}"
                                                        for name, why in sorted(found.items())]


def write_table(run_dirs: Sequence[str | Path], out: str | Path,
                labels: dict[str, str] | None = None) -> tuple[Path, Path]:
    """TABLE.csv and TABLE.md next to it (with `class_note` under the table)."""
    runs = read_runs(run_dirs, labels)
    frame, metric_cols = run_frame(runs)
    table = summarise(frame, metric_cols)
    note = class_note(runs)
    return write_csv_md(out, table, to_markdown(table, metric_cols) + ("\n" + "\n".join(note) + "\n" if note else ""))
