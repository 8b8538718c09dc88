"""Run folders read for the tables and figures: the one reader, one row per experiment.

A run's row (`run_key`: Method, Modalities, Features, Pool) comes from its metrics.json: its pool
name (model/options.py) and its features, keyed NAME:ENCODER for a non-default encoder and
NAME:mean for a collapsed feature. One row is one experiment over seeds (and folds):
`read_runs` refuses (ValueError naming the row, what differs and the fix) runs of one row that
differ in anything defining the experiment (`experiment`: the training options but
RUNTIME_OPTIONS, and each feature store's STORE_KEYS, its extractor options but
RUNTIME_EXTRACT), or that repeat a seed and fold.

Every table, figure and the gallery read runs here: `read_runs` gives the `Run`s in the order
given, `group_rows` one `Row` per run_key (rows and runs in the order given; `Row.seeds`, its
runs per seed) and `run_frame` one DataFrame row per run (the tables' input).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from model.options import COLLAPSE, LR_AUTO, pool_method, pool_reduction
from model.runfiles import read_metrics, run_threshold

KEYS = ["Method", "Modalities", "Features", "Pool"]
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


@dataclass(frozen=True)
class Run:
    """One run folder: its path as given, its metrics.json and its row (`run_key`, in KEYS order)."""

    dir: str
    metrics: dict
    key: tuple[str, ...]

    @classmethod
    def of(cls, run_dir: str | Path, metrics: dict, labels: dict[str, str] | None = None) -> "Run":
        return cls(str(run_dir), metrics, tuple(run_key(metrics, labels or {}).values()))

    @property
    def seed(self) -> int | None:
        return self.metrics.get("seed")

    @property
    def fold(self) -> int | None:
        return self.metrics.get("fold")

    @property
    def pool(self) -> str:
        return self.metrics["pool"]


@dataclass
class Row:
    """One table row, one experiment: its key (KEYS order) and its runs in the order given."""

    key: tuple[str, ...]
    runs: list[Run]

    @property
    def labels(self) -> dict[str, str]:
        """{Method, Modalities, Features, Pool}."""
        return dict(zip(KEYS, self.key))

    @property
    def pool(self) -> str:
        """The pool name its runs trained with (one per row: the key holds its Method and Pool)."""
        return self.runs[0].pool

    def seeds(self) -> dict[int | None, list[Run]]:
        """Its runs per seed (a seed's folds), seeds in the order first given."""
        out: dict[int | None, list[Run]] = {}
        for run in self.runs:
            out.setdefault(run.seed, []).append(run)
        return out


def check_experiments(runs: Sequence[Run]) -> None:
    """Refuse (ValueError naming the row, what differs and the fix) runs of one row that differ
    in `experiment` (a key missing on either side is not compared), or that repeat a (seed, fold)."""
    for row in group_rows(runs):
        name = f"{row.key[2]} ({row.key[3]}, {row.key[0]})"
        first = row.runs[0]
        defined = experiment(first.metrics)
        for run in row.runs[1:]:
            other = experiment(run.metrics)
            differ = sorted(k for k in defined.keys() & other.keys() if defined[k] != other[k])
            if differ:
                shown = "; ".join(f"{k}: {defined[k]!r} vs {other[k]!r}" for k in differ[:4])
                raise ValueError(f"table row {name} would average different experiments: {first.dir} and "
                                 f"{run.dir} differ in {shown}. A row is one experiment over seeds: "
                                 "pass the runs of one setting (one table per setting)")
        seen: dict[tuple, str] = {}
        for run in row.runs:
            at = (run.seed, run.fold)
            if at in seen:
                raise ValueError(f"table row {name}: runs {seen[at]} and {run.dir} are both seed {at[0]}"
                                 + (f" fold {at[1]}" if at[1] is not None else "")
                                 + "; pass each run once (one run folder per seed and fold)")
            seen[at] = run.dir


ROW_OPTIONS = ("encoders", "collapse")  # training options that belong to a row (its combination)


def training_differences(a: Run, b: Run) -> list[str]:
    """`KEY: A vs B` for each part of `experiment` in which runs of two rows differ beyond what
    makes them different rows (pool, features, collapse, encoders): training options, and the
    stores of the features both read. [] when they are one setting, comparable seed by seed."""
    first, second = experiment(a.metrics), experiment(b.metrics)
    row_specific = tuple(f"train.{k}" for k in ROW_OPTIONS)
    shared = sorted(k for k in first.keys() & second.keys() if not k.startswith(row_specific))
    return [f"{k}: {first[k]!r} vs {second[k]!r}" for k in shared if first[k] != second[k]]


def read_runs(run_dirs: Iterable[str | Path], labels: dict[str, str] | None = None) -> list[Run]:
    """The runs of `run_dirs` in that order (metrics.json read once each), checked: the runs of
    one row are one experiment (`check_experiments`)."""
    runs = [Run.of(run_dir, read_metrics(run_dir), labels) for run_dir in run_dirs]
    check_experiments(runs)
    return runs


def group_rows(runs: Iterable[Run]) -> list[Row]:
    """One Row per run_key, in the order of each row's first run."""
    rows: dict[tuple[str, ...], Row] = {}
    for run in runs:
        rows.setdefault(run.key, Row(run.key, [])).runs.append(run)
    return list(rows.values())


def run_frame(runs: Sequence[Run]) -> tuple[pd.DataFrame, list[str]]:
    """One row per run (KEYS, seed, fold, run, the lr and threshold as set and as used, metrics)
    and the metric columns in order."""
    rows, metric_cols = [], []
    for run in runs:
        metrics = run.metrics
        names = metrics.get("metric_names", [])
        metric_cols += [m for m in names if m not in metric_cols]
        config = metrics.get("config") or {}
        lr_used = pd.to_numeric(metrics.get("lr", config.get("lr")), errors="coerce")  # NaN when unknown
        row = dict(zip(KEYS, run.key))
        row.update({"seed": run.seed, "fold": run.fold, "run": run.dir,
                    "lr_setting": str(config.get("lr", "")), "lr_used": lr_used,
                    "threshold_setting": str(config.get("threshold", "")), "threshold_used": run_threshold(metrics)})
        row.update({m: metrics.get(m) for m in names})
        rows.append(row)
    if not rows:
        raise ValueError("no runs given; pass run folders with --runs")
    frame = pd.DataFrame(rows)
    for m in metric_cols:
        frame[m] = pd.to_numeric(frame[m], errors="coerce")
    return frame, metric_cols
