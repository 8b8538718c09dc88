"""Tables (csv + md) and importance figures from run folders.

`read_runs` gives one row per run and `summarise` one row per (Method, Modalities, Features,
Pool) with mean and std over seeds (runs of several folds are averaged per seed first), so other
tables (e.g. with the paper's reference rows) can reuse them.

One row is one experiment: `check_experiments` (called by `read_runs`, and by every other reader
that groups runs by `run_key`) refuses runs of one row that differ in anything defining the
experiment (`experiment`: the training options but `RUNTIME_OPTIONS`, and each feature store's
extractor, backend, dim, model, input, precision and extractor options but `RUNTIME_EXTRACT`), or
that repeat a seed and fold. The `lr` and `threshold` columns give the settings and the values
the runs used.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from model.options import COLLAPSE, LR_AUTO, THRESHOLD_DEV, pool_label, pool_method, pool_reduction
from model.runfiles import (PREDICTIONS, read_importance, read_metrics, read_predictions, run_threshold,
                            write_csv_md)

KEYS = ["Method", "Modalities", "Features", "Pool"]
SETTINGS = ["lr", "threshold"]  # text columns: setting and the values used (`settings`)
RUNTIME_OPTIONS = ("fold", "feature_device", "eval_batch_size")  # training options that do not change the experiment
RUNTIME_EXTRACT = ("batch_size", "cuda_batch_size", "workers")  # extractor options alike
STORE_KEYS = ("extractor", "backend", "dim", "model", "input", "precision", "config")  # store attrs compared


def parse_labels(pairs: Sequence[str]) -> dict[str, str]:
    """`NAME=LABEL` pairs -> {name: label}."""
    labels = {}
    for pair in pairs:
        name, sep, label = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--label {pair!r}: write NAME=LABEL, e.g. image=WSL(i)")
        labels[name.strip()] = label.strip()
    return labels


def feature_keys(metrics: dict) -> list[str]:
    """Each feature of a run as NAME, NAME:ENCODER when it ran a non-default encoder (so that
    `objects:cnn` (CNN-text(objs)) and `objects` (IE(objs)) are different rows and labels), or
    NAME:mean when its sets were collapsed to their mean row (`collapse.NAME=mean`)."""
    config = metrics.get("config") or {}
    encoders, collapse = config.get("encoders") or {}, config.get("collapse") or {}
    return [f"{n}:{collapse[n]}" if collapse.get(n) else
            f"{n}:{encoders[n]}" if encoders.get(n, "bag") != "bag" else n for n in metrics["features"]]


def feature_labels(metrics: dict, labels: dict[str, str]) -> list[str]:
    """Each feature's label in run order: the label of NAME:ENCODER, else of NAME, else the key;
    a collapsed feature without its own label reads `LABEL mean`."""
    out = []
    for key in feature_keys(metrics):
        name, _, suffix = key.partition(":")
        if suffix in COLLAPSE:
            out.append(labels.get(key, f"{labels.get(name, name)} mean"))
        else:
            out.append(labels.get(key, labels.get(name, key)))
    return out


def run_key(metrics: dict, labels: dict[str, str]) -> dict[str, str]:
    """The run's table row: Method and Pool from its pool name (model/options.py; a run of the
    renamed `concat` pool is refused with its new names)."""
    return {"Method": pool_method(metrics["pool"]),
            "Modalities": "+".join(feature_keys(metrics)),
            "Features": ", ".join(feature_labels(metrics, labels)),
            "Pool": pool_reduction(metrics["pool"])}


def experiment(metrics: dict) -> dict[str, object]:
    """What defines a run's experiment beyond its `run_key`, flattened to `train.KEY` and
    `store.FEATURE.KEY`: its training options as given (lr `auto`, not the lr it chose;
    `lr_candidates` only under auto) but RUNTIME_OPTIONS, and its stores' STORE_KEYS (extractor
    options but RUNTIME_EXTRACT)."""
    config = dict(metrics.get("config") or {})
    if config.get("lr") != LR_AUTO:
        config.pop("lr_candidates", None)
    out: dict[str, object] = {f"train.{k}": v for k, v in config.items() if k not in RUNTIME_OPTIONS}
    for name, store in (metrics.get("stores") or {}).items():
        for key in STORE_KEYS:
            if key not in store:
                continue
            value = store[key]
            if key == "config":
                options = json.loads(value) if isinstance(value, str) else dict(value)
                value = {k: v for k, v in options.items() if k not in RUNTIME_EXTRACT}
            out[f"store.{name}.{key}"] = value
    return out


def check_experiments(runs: Sequence[tuple[str, dict]], labels: dict[str, str] | None = None) -> None:
    """Refuse (ValueError naming the row, what differs and the fix) runs (run folder, metrics) of
    one `run_key` row that differ in `experiment` (a key missing on either side is not compared),
    or that repeat a (seed, fold)."""
    rows: dict[tuple, list[tuple[str, dict, dict]]] = {}
    for run_dir, metrics in runs:
        key = tuple(run_key(metrics, labels or {}).values())
        rows.setdefault(key, []).append((str(run_dir), metrics, experiment(metrics)))
    for key, members in rows.items():
        name = f"{key[2]} ({key[3]}, {key[0]})"
        first_dir, _, first = members[0]
        for run_dir, _, other in members[1:]:
            differ = sorted(k for k in first.keys() & other.keys() if first[k] != other[k])
            if differ:
                shown = "; ".join(f"{k}: {first[k]!r} vs {other[k]!r}" for k in differ[:4])
                raise ValueError(f"table row {name} would average different experiments: {first_dir} and "
                                 f"{run_dir} differ in {shown}. A row is one experiment over seeds: "
                                 "pass the runs of one setting (one table per setting)")
        seen: dict[tuple, str] = {}
        for run_dir, metrics, _ in members:
            at = (metrics.get("seed"), metrics.get("fold"))
            if at in seen:
                raise ValueError(f"table row {name}: runs {seen[at]} and {run_dir} are both seed {at[0]}"
                                 + (f" fold {at[1]}" if at[1] is not None else "")
                                 + "; pass each run once (one run folder per seed and fold)")
            seen[at] = run_dir


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


def read_runs(run_dirs: Sequence[str | Path], labels: dict[str, str] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """One row per run (KEYS, seed, fold, run, the lr and threshold as set and as used, metrics)
    and the metric columns in order; runs of one row must be one experiment (`check_experiments`)."""
    labels = labels or {}
    rows, metric_cols, found = [], [], []
    for run_dir in run_dirs:
        metrics = read_metrics(run_dir)
        found.append((str(run_dir), metrics))
        names = metrics.get("metric_names", [])
        metric_cols += [m for m in names if m not in metric_cols]
        config = metrics.get("config") or {}
        lr_used = pd.to_numeric(metrics.get("lr", config.get("lr")), errors="coerce")  # NaN when unknown
        row = run_key(metrics, labels)
        row.update({"seed": metrics.get("seed"), "fold": metrics.get("fold"), "run": str(run_dir),
                    "lr_setting": str(config.get("lr", "")), "lr_used": lr_used,
                    "threshold_setting": str(config.get("threshold", "")), "threshold_used": run_threshold(metrics)})
        row.update({m: metrics.get(m) for m in names})
        rows.append(row)
    if not rows:
        raise ValueError("no runs given; pass run folders with --runs")
    check_experiments(found, labels)
    frame = pd.DataFrame(rows)
    for m in metric_cols:
        frame[m] = pd.to_numeric(frame[m], errors="coerce")
    return frame, metric_cols


def summarise(runs: pd.DataFrame, metric_cols: Sequence[str]) -> pd.DataFrame:
    """Mean and `<metric>_std` over seeds per KEYS group, `seeds` and `runs` counts; sorted by
    number of modalities, then the first metric (best first)."""
    per_seed = runs.groupby(KEYS + ["seed"], sort=False, dropna=False)[list(metric_cols)].mean().reset_index()
    grouped = per_seed.groupby(KEYS, sort=False)
    table = grouped[list(metric_cols)].mean()
    std = grouped[list(metric_cols)].std(ddof=1)
    for m in metric_cols:
        table[f"{m}_std"] = std[m]
    table = table[[c for m in metric_cols for c in (m, f"{m}_std")]]
    table["seeds"] = grouped["seed"].nunique()
    table["runs"] = runs.groupby(KEYS, sort=False).size()
    table = table.reset_index()
    if "lr_setting" in runs.columns:
        table = table.merge(settings(runs), on=KEYS, how="left", validate="one_to_one")
    table["_n"] = table["Modalities"].str.count(r"\+") + 1
    by = ["_n"] + ([metric_cols[0]] if metric_cols else [])
    table = table.sort_values(by, ascending=[True] + [False] * (len(by) - 1), kind="stable")
    return table.drop(columns="_n").reset_index(drop=True)


def _cell(mean: float, std: float) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return ""
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.4f}"
    return f"{mean:.4f} ± {std:.4f}"


def to_markdown(table: pd.DataFrame, metric_cols: Sequence[str]) -> str:
    """Markdown table with `mean ± std` cells, the lr column, and the decision thresholds under it
    (`threshold_note`)."""
    header = KEYS + list(metric_cols) + ["lr", "seeds"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in table.iterrows():
        cells = [str(row[k]) for k in KEYS]
        cells += [_cell(row[m], row[f"{m}_std"]) for m in metric_cols]
        cells += [str(row["lr"]), str(int(row["seeds"]))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines + [""] + threshold_note(table)) + "\n"


def threshold_note(table: pd.DataFrame) -> list[str]:
    """The lines under a table giving each row's decision threshold (one line when all agree)."""
    lead = ("Decision threshold on the predicted probabilities (dev: chosen per run on its dev split, one "
            "value for all classes; the values used)")
    if table["threshold"].nunique() == 1:
        return [f"{lead}: {table['threshold'].iloc[0]} for every row."]
    return [f"{lead}:", ""] + [f"- {r['Features']} ({r['Pool']}, {r['Method']}): {r['threshold']}"
                               for _, r in table.iterrows()]


def class_note(run_dirs: Sequence[str | Path]) -> list[str]:
    """Lines for under a table: the classes of multi-label runs that cannot be scored (no positive
    among a run's test samples, from its predictions; seen once in its manifest), each an F1 of 0
    in `f1_macro`. [] when every class can be scored."""
    from data.classes import unscorable
    from core.manifest import read_manifest

    found: dict[str, set[str]] = {}
    manifests: set[str] = set()
    for run_dir in run_dirs:
        metrics = read_metrics(run_dir)
        if "f1_macro" not in metrics.get("metric_names", []) or not (Path(run_dir) / PREDICTIONS).exists():
            continue  # a binary task, or a run folder made without predictions (tests)
        _, _, targets, classes, _ = read_predictions(run_dir)
        where = "the test split" if metrics.get("fold") is None else f"fold {metrics['fold']}"
        for c in np.flatnonzero(targets.sum(0) == 0):
            found.setdefault(classes[c], set()).add(f"no positive in {where}")
        manifests.add(str(metrics.get("manifest", "")))
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
    runs, metric_cols = read_runs(run_dirs, labels)
    table = summarise(runs, metric_cols)
    note = class_note(run_dirs)
    return write_csv_md(out, table, to_markdown(table, metric_cols) + ("\n" + "\n".join(note) + "\n" if note else ""))


# ---------------------------------------------------------------------------------------------
# importance figure


def importance_groups(run_dirs: Sequence[str | Path], labels: dict[str, str] | None = None,
                      pool: str = "max") -> list[dict]:
    """Per run group with `pool`: modalities, mean importance (M,) over test samples with
    non-empty sets, then over runs (seeds, folds), and its std over runs."""
    labels = labels or {}
    groups: dict[tuple, dict] = {}
    found = [(str(run_dir), read_metrics(run_dir)) for run_dir in run_dirs]
    check_experiments(found, labels)
    for run_dir, metrics in found:
        if metrics["pool"] != pool:
            continue
        _, importance, modalities = read_importance(run_dir)  # (N, M)
        nonempty = importance.sum(1) > 0
        per_run = importance[nonempty].mean(0) if nonempty.any() else np.zeros(len(modalities))
        key = tuple(run_key(metrics, labels).values())
        group = groups.setdefault(key, {"key": dict(zip(KEYS, key)), "modalities": modalities,
                                        "labels": [labels.get(m, m) for m in modalities], "runs": []})
        group["runs"].append(per_run)
        group.setdefault("dirs", []).append(run_dir)
    for group in groups.values():
        stack = np.stack(group["runs"])  # (runs, M)
        group["mean"] = stack.mean(0)
        group["std"] = stack.std(0, ddof=1) if len(stack) > 1 else np.zeros(stack.shape[1])
    return list(groups.values())


def removal_shares(group: dict, removal: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean (M,) and std over runs of the group's mean removal-effect share, or None when a run
    is missing from `removal` (run folder -> report.removal.Removal)."""
    import os

    per_run = []
    for run_dir in group["dirs"]:
        item = removal.get(os.path.normpath(str(run_dir)))
        if item is None:
            return None
        per_run.append(item.mean_share())
    stack = np.stack(per_run)
    return stack.mean(0), stack.std(0, ddof=1) if len(stack) > 1 else np.zeros(stack.shape[1])


def write_figure(run_dirs: Sequence[str | Path], out: str | Path,
                 labels: dict[str, str] | None = None, pool: str = "max",
                 removal: str | Path | None = None) -> Path:
    """PNG: one bar panel per run group, mean importance per modality with std over runs; with
    `removal` (the robustness output's OUT_removal.h5) the removal-effect share beside it."""
    from report import plots

    groups = importance_groups(run_dirs, labels, pool)
    if not groups:
        raise ValueError(f"none of the {len(run_dirs)} runs uses pool {pool} with an importance.h5; "
                         "pass runs trained with that pool or choose --pool")
    panels = [(g["labels"], g["mean"], g["std"], f"{g['key']['Features']} ({g['key']['Pool']}, {len(g['runs'])} runs)")
              for g in groups]
    second = None
    if removal:
        from report.removal import read_removal

        effects = read_removal(removal)
        second = [removal_shares(g, effects) for g in groups]
    return plots.importance_bars(panels, out, second)
