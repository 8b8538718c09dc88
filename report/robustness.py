"""Missing-modality robustness: trained runs scored on their test split with modalities removed.

Every run with several features is rebuilt from its `model.pt` (`model.predict.load_trained`,
no retraining) and scores its own test samples (the ids of its predictions.h5) under each
condition: `intact`, `without X` (feature X made empty for every sample: zero set elements) for
each feature, and `only X` (every other feature made empty). A set model then pools the elements
that are left; a model that concatenates modalities (set per modality, the concat baselines) sees
zeros in the removed modality's block, as it does for an absent modality in training. Rows name
the pool as model/options.py `pool_label` does (`max`, `max per modality`, `concat padded`). Features
are loaded as in training (the run's stores, the whole manifest, its `max_elements` and seed),
and scored in the run's eval batches, so `intact` reproduces the run's metrics.json.

Output (`write_robustness`): one row per (feature combination, pool, condition) with the task's
two main metrics (F1 micro / macro, or accuracy / AUC) as mean and std over seeds (folds are
averaged per seed first), `intact`: the main metric without removal, and `delta` / `delta_std`:
the main metric's change vs intact, per seed, then mean and std over seeds. Written as CSV, a
markdown table next to it, and a heat map PNG (rows: combination / pool, columns: conditions).

Two views of importance (`removal_effects`, written by `write_robustness` beside the table):
- the run's own importance (importance.h5; for max pooling the paper's argmax share: the share of
  the pooled dimensions each modality's element won), and
- the removal effect: per test sample and modality, the mean absolute change of the predicted
  class probabilities when that modality is removed (`prob`, also as a share of the sample's
  total over modalities, `share`), and the change of the sample's loss (binary cross-entropy
  averaged over classes; positive: removal hurts).
They measure different things and can disagree: the argmax share counts where the pooled values
come from, not whether the head relies on those dimensions or whether another modality's element
would have won them nearly as well; the removal effect measures the model's output with the
modality gone, which also counts redundancy (little change when another modality carries the same
signal) and a set the model never saw in training. Files: OUT_removal.h5 (per run: `ids`,
`modalities`, `prob` (N, M), `loss` (N, M); attr `run`) and OUT_views.csv (per combination, pool
and modality: mean importance, mean removal `prob`, `share` and `loss` over test samples, then
over runs), also a table in OUT.md.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from core.manifest import read_manifest
from model.inputs import FeatureTable
from model.metrics import evaluate
from model.options import FeatureSpec, pool_label
from model.runfiles import read_importance, read_predictions
from report.removal import Removal, read_removal, removal_path, write_removal
from report.runs import Run, feature_labels, read_runs
from report.tables import cell, markdown_table, over_seeds, write_csv, write_csv_md

INTACT = "intact"
METRICS = {"multilabel": ("f1_micro", "f1_macro"), "binary": ("accuracy", "auc")}  # first = main
KEYS = ["combination", "modalities", "pool"]


def emptied(table: FeatureTable) -> FeatureTable:
    """`table` with the feature absent for every sample (zero rows each)."""
    return FeatureTable(table.info, torch.zeros_like(table.offsets), table.values[:0])


def conditions(labels: Sequence, raw: bool = False) -> list[tuple[Any, list[bool]]]:
    """`(name, kept (M,))` per condition: intact, then without each feature, then only each.
    `raw`: the name is `(kind, position)` instead of `without LABEL` (intact: position -1)."""
    count = len(labels)
    named = (lambda kind, m: (kind, m)) if raw else (lambda kind, m: f"{kind} {labels[m]}")  # noqa: E731
    out = [((INTACT, -1) if raw else INTACT, [True] * count)]
    out += [(named("without", m), [k != m for k in range(count)]) for m in range(count)]
    out += [(named("only", m), [k == m for k in range(count)]) for m in range(count)]
    return out


def _test_rows(run_dir: Path, metrics: dict, test_ids: list[str]) -> tuple[list[str], np.ndarray]:
    """The ids the run's tables were aligned to (its manifest's, so that a capped feature keeps
    the same seeded rows as in training) and the test samples' positions among them."""
    manifest = Path(metrics.get("manifest") or "")
    if manifest.is_file():
        ids = read_manifest(manifest)["id"].astype(str).tolist()
    else:
        print(f"note: {run_dir}: manifest {str(manifest) or '(none)'} not found; loading the test ids "
              "only (samples with more rows than max_elements may keep other rows than in training)",
              file=sys.stderr)
        ids = list(test_ids)
    where = {sid: k for k, sid in enumerate(ids)}
    missing = [sid for sid in test_ids if sid not in where]
    if missing:
        raise ValueError(f"{run_dir}: {len(missing)} test ids of predictions.h5 are not in {manifest} "
                         f"(e.g. {missing[0]}); retrain the run or restore its manifest")
    return ids, np.array([where[sid] for sid in test_ids], dtype=np.int64)


def sample_loss(probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(N,) binary cross-entropy of `probs` (N, C) against 0/1 `targets`, averaged over classes."""
    p = np.clip(probs.astype(np.float64), 1e-7, 1 - 1e-7)
    return -(targets * np.log(p) + (1 - targets) * np.log1p(-p)).mean(1)


def removal_effects(intact: np.ndarray, without: Sequence[np.ndarray], targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`(prob (N, M), loss (N, M))` from the intact probabilities (N, C) and those with each
    modality removed (M of (N, C))."""
    stack = np.stack(without, 1)  # (N, M, C)
    prob = np.abs(stack - intact[:, None, :]).mean(2)
    base = sample_loss(intact, targets)  # (N,)
    loss = np.stack([sample_loss(w, targets) for w in without], 1) - base[:, None]
    return prob.astype(np.float32), loss.astype(np.float32)


def score_run(run: Run, device: str | torch.device = "cpu", removal: list[Removal] | None = None) -> list[dict]:
    """One row per condition for one run, without labels (`label_scores` adds them): run, seed,
    fold, task, `kind` (intact, without, only), `position` (the modality's place in the run's
    feature order; -1 for intact) and the main metrics. With `removal`, the run's per-sample
    removal effects are appended to it."""
    from model.networks import infer
    from model.predict import load_for_run, load_trained

    run_dir = Path(run.dir)
    trained = load_trained(run_dir, device)
    test_ids, _, targets, _, task = read_predictions(run_dir)
    task = task or trained.task
    ids, positions = _test_rows(run_dir, run.metrics, test_ids)
    specs = [FeatureSpec(name, Path(trained.stores[name]["path"]), trained.stores[name].get("column"))
             for name in trained.names if name in trained.stores]
    if len(specs) != len(trained.names):
        raise ValueError(f"{run_dir}: model.pt does not record every feature's store; retrain the run")
    tables = load_for_run(trained, specs, ids, device)
    cuda = torch.device(device).type == "cuda"
    autocast = ((lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if trained.options.amp and cuda
                else contextlib.nullcontext)
    base = {"run": str(run_dir), "seed": run.seed, "fold": run.fold, "task": task}
    rows, outputs = [], {}
    for (kind, position), kept in conditions(list(range(len(tables))), raw=True):
        inputs = [t if keep else emptied(t) for t, keep in zip(tables, kept)]
        probs, _ = infer(trained.model, inputs, positions, trained.options.eval_batch_size, autocast)
        outputs[kind, position] = probs
        scores = evaluate(task, targets.astype(np.float32), probs, trained.options.threshold)
        rows.append({**base, "kind": kind, "position": position, **{m: scores[m] for m in METRICS[task]}})
    if removal is not None:
        without = [probs for (kind, _), probs in outputs.items() if kind == "without"]
        prob, loss = removal_effects(outputs[INTACT, -1], without, targets.astype(np.float64))
        removal.append(Removal(str(run_dir), list(test_ids), list(trained.names), prob, loss))
    return rows


def raw_scores(run_dirs: Sequence[str | Path], device: str | torch.device = "cpu",
               removal: list[Removal] | None = None) -> pd.DataFrame:
    """Rows of `score_run` for every run with more than one feature (others are skipped); their
    removal effects appended to `removal` when given. Label-free: the expensive part, which a
    change of display labels does not redo (the pipeline's `robustness_scores` job)."""
    rows = []
    for run in read_runs(run_dirs):
        features = run.metrics["features"]
        if len(features) < 2:
            print(f"note: {run.dir} has one feature ({features[0]}); nothing to remove", file=sys.stderr)
            continue
        rows += score_run(run, device, removal)
    if not rows:
        raise ValueError("none of the runs has more than one feature; pass runs of multi-feature combinations")
    frame = pd.DataFrame(rows)
    tasks = sorted(frame["task"].unique())
    if len(tasks) > 1:
        raise ValueError(f"the runs mix tasks ({', '.join(tasks)}); pass the runs of one dataset")
    return frame


def label_scores(frame: pd.DataFrame, labels: dict[str, str] | None = None) -> pd.DataFrame:
    """`raw_scores` rows with KEYS (combination = the features' labels, modalities, pool) and
    `condition` (`intact`, `without LABEL`, `only LABEL`) from each run's metrics.json."""
    runs = {run.dir: run for run in read_runs(frame["run"].unique(), labels)}
    out = []
    for run_dir, rows in frame.groupby("run", sort=False):
        run = runs[run_dir]
        names = feature_labels(run.metrics, labels or {})
        rows = rows.assign(combination=run.key[2], modalities=run.key[1], pool=pool_label(run.pool),
                           condition=[INTACT if kind == INTACT else f"{kind} {names[int(p)]}"
                                      for kind, p in zip(rows["kind"], rows["position"])])
        out.append(rows)
    return pd.concat(out, ignore_index=True)


def score_runs(run_dirs: Sequence[str | Path], labels: dict[str, str] | None = None,
               device: str | torch.device = "cpu", removal: list[Removal] | None = None) -> pd.DataFrame:
    """`raw_scores` with their labels (`label_scores`)."""
    return label_scores(raw_scores(run_dirs, device, removal), labels)


def summarise(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Mean and std over seeds per (KEYS, condition) (report/tables.py `over_seeds`: folds averaged
    per seed first), with `intact`, `delta`, `delta_std` of the main metric (the change against
    intact, per seed); and the metric names."""
    metric_cols = list(METRICS[frame["task"].iloc[0]])
    main = metric_cols[0]

    def delta(per_seed: pd.DataFrame) -> dict[str, np.ndarray]:
        intact = per_seed[per_seed["condition"] == INTACT].set_index(KEYS + ["seed"])[main]
        return {"delta": per_seed[main].to_numpy() - intact.reindex(
            pd.MultiIndex.from_frame(per_seed[KEYS + ["seed"]])).to_numpy()}

    table = over_seeds(frame, KEYS + ["condition"], metric_cols, delta)
    intact_mean = table[table["condition"] == INTACT].set_index(KEYS)[main]
    table.insert(table.columns.get_loc("delta"), "intact",
                 intact_mean.reindex(pd.MultiIndex.from_frame(table[KEYS])).to_numpy())
    order = table["modalities"].str.count(r"\+")  # fewest features first, then as given
    table = table.assign(_n=order).sort_values("_n", kind="stable").drop(columns="_n")
    return table.reset_index(drop=True), metric_cols


def to_markdown(table: pd.DataFrame, metric_cols: Sequence[str]) -> str:
    main = metric_cols[0]
    header = ["Features", "Pool", "Condition", *metric_cols, f"Δ {main} vs intact", "seeds"]
    rows = ([row["combination"], row["pool"], row["condition"], *(cell(row[m], row[f"{m}_std"]) for m in metric_cols),
             "" if row["condition"] == INTACT else cell(row["delta"], row["delta_std"], sign="+"), int(row["seeds"])]
            for _, row in table.iterrows())
    return "\n".join(markdown_table(header, rows)) + "\n"


def delta_matrix(table: pd.DataFrame, main: str) -> tuple[np.ndarray, list[str], list[str]]:
    """(rows, conditions) change of the main metric vs intact (NaN where a condition does not
    apply); row labels `combination / pool (intact x)`; condition columns, without first."""
    groups = list(table.groupby(KEYS, sort=False))
    columns: list[str] = []
    for prefix in ("without ", "only "):
        for _, group in groups:
            columns += [c for c in group["condition"] if c.startswith(prefix) and c not in columns]
    matrix = np.full((len(groups), len(columns)), np.nan)
    row_labels = []
    for r, ((combination, _, pool), group) in enumerate(groups):
        for _, row in group.iterrows():
            if row["condition"] != INTACT:
                matrix[r, columns.index(row["condition"])] = row["delta"]
        row_labels.append(f"{combination} / {pool} (intact {group['intact'].iloc[0]:.3f})")
    return matrix, row_labels, columns


def views(removal: Sequence[Removal], labels: dict[str, str] | None = None) -> pd.DataFrame:
    """Per (combination, pool, modality): mean importance (the run's importance.h5, over test
    samples with a non-empty set) beside the mean removal effect (`prob`, `share`, `loss`, over
    test samples), each then averaged over runs; `runs` counted."""
    runs = {run.dir: run for run in read_runs([item.run for item in removal], labels)}
    rows = []
    for item in removal:
        run = runs[item.run]
        names = feature_labels(run.metrics, labels or {})
        try:
            ids, importance, _ = read_importance(item.run)
            position = pd.Index(ids).get_indexer(item.ids)
            importance = importance[position]  # (N, M) in removal's sample order
            nonempty = importance.sum(1) > 0
            mean_importance = importance[nonempty].mean(0) if nonempty.any() else np.full(len(names), np.nan)
        except FileNotFoundError:
            mean_importance = np.full(len(names), np.nan)
        for m, label in enumerate(names):
            rows.append({"combination": run.key[2], "modalities": run.key[1], "pool": pool_label(run.pool),
                         "modality": label, "importance": mean_importance[m], "removal_prob": item.prob[:, m].mean(),
                         "removal_share": item.mean_share()[m], "removal_loss": item.loss[:, m].mean()})
    frame = pd.DataFrame(rows)
    grouped = frame.groupby(["combination", "modalities", "pool", "modality"], sort=False)
    table = grouped[["importance", "removal_share", "removal_prob", "removal_loss"]].mean()
    table["runs"] = grouped.size()
    return table.reset_index()


def views_markdown(table: pd.DataFrame) -> str:
    header = ["Features", "Pool", "Modality", "importance (mean share)", "removal share", "removal Δp", "removal Δloss",
              "runs"]
    rows = ([r["combination"], r["pool"], r["modality"], cell(r["importance"], digits=3), cell(r["removal_share"], digits=3),
             cell(r["removal_prob"]), cell(r["removal_loss"], sign="+"), int(r["runs"])] for _, r in table.iterrows())
    return "\n".join(markdown_table(header, rows)) + "\n"


def write_scores(run_dirs: Sequence[str | Path], out: str | Path, device: str = "cpu") -> tuple[Path, Path]:
    """OUT_scores.csv (`raw_scores`, no labels) and OUT_removal.h5 beside the robustness table
    OUT.csv: what `write_robustness --scores` labels and summarises."""
    _check_device(device)
    removal: list[Removal] = []
    frame = raw_scores(run_dirs, device, removal)
    return write_csv(scores_path(out), frame, None), write_removal(removal_path(out), removal)


def scores_path(out: str | Path) -> Path:
    """OUT_scores.csv beside the robustness table OUT.csv."""
    out = Path(out)
    return out.with_name(out.stem + "_scores.csv")


def _check_device(device: str) -> None:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda, but torch sees no GPU; use --device cpu")


def write_robustness(run_dirs: Sequence[str | Path] | None, out: str | Path, labels: dict[str, str] | None = None,
                     device: str = "cpu", scored: bool = False) -> tuple[Path, Path, Path]:
    """OUT.csv, OUT.md and OUT.png (heat map of the main metric's change) and OUT_views.csv
    (importance vs removal effect per modality). The runs are scored here (also writing
    OUT_removal.h5, per-sample removal effects), or, with `scored`, read from OUT_scores.csv and
    OUT_removal.h5 of `write_scores` (then only labels and summaries are computed)."""
    from report import plots

    if scored:
        frame = pd.read_csv(scores_path(out), dtype={"run": str})
        by_run = read_removal(removal_path(out))
        removal = [by_run[os.path.normpath(run)] for run in frame["run"].unique()]
    else:
        _check_device(device)
        removal = []
        frame = raw_scores(run_dirs or [], device, removal)
        write_removal(removal_path(out), removal)
    table, metric_cols = summarise(label_scores(frame, labels))
    out = Path(out)
    both = views(removal, labels)
    write_csv(out.with_name(out.stem + "_views.csv"), both)
    out, md = write_csv_md(out, table, to_markdown(table, metric_cols) + "\n## Two views of importance\n\n"
                           "Mean importance share (the run's own: for max pooling the paper's argmax share) "
                           "beside the removal effect: mean absolute change of the predicted probabilities "
                           "when the modality is removed (Δp, and as a share of the sample's total over "
                           "modalities), and the mean change of the sample's loss (positive: removal hurts)."
                           "\n\n" + views_markdown(both))
    main = metric_cols[0]
    matrix, row_labels, columns = delta_matrix(table, main)
    png = plots.robustness_png(
        matrix, columns, row_labels, main, f"Test {main} with modalities removed, change vs intact",
        "Mean over seeds of the change per seed; grey hatched: the combination lacks that modality. "
        "Set models pool what is left; per-modality and concat models fill a removed modality's block with zeros.",
        out.with_suffix(".png"))
    return out, md, png
