"""Feature importance matrices (FIM), the paper's Figures 2 and 3.

For one test sample, a FIM has one row per feature combination (one run group with the chosen
pool, at one seed) and one column per modality (the union over all combinations); a cell holds the
importance of that modality for that sample in that run (from `importance.h5`: the share of the
D pooled dimensions the modality won for max/min pooling, of the mass for the other pools and the
concat baseline), grey where the modality is not part of the combination.
Each row is labelled with the labels that run predicted for the sample (probability >= the run's
threshold, 0.5 by default) and the title gives the sample id and its true labels.

Samples are chosen deterministically unless `--ids` names them: among the test samples present in
every combination, those with the most modalities present (rows in the feature stores named in
`metrics.json`, or non-zero importance when a store cannot be read; the highest tiers of that
count holding at least 4 samples per requested sample), spread across classes: round robin over
the true classes (most frequent first, skipping classes an earlier pick already shows), each time
the sample of that class with the most modalities, then the fewest already shown classes, then
the lowest id.

Outputs in the output folder: `<id>.png` per sample, `samples.png` (the chosen samples side by
side, like the paper's last figure row), `overview.png` (mean importance over all test samples
and runs per combination x modality) and `matrices.csv` (every cell, long format). This module
computes what is drawn; report/plots.py draws it.
"""

from __future__ import annotations

import re
import sys
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from extract.store import read_store
from model.options import FeatureSpec
from model.runfiles import IMPORTANCE, read_importance, read_predictions, run_threshold
from report.importance import importance_groups
from report.runs import group_rows, read_runs
from report.tables import write_csv


@dataclass
class Combination:
    """One row of runs (feature set, pool) at one seed; folds merged (each holds its test ids)."""

    key: tuple[str, ...]  # its row (report/runs.py KEYS order)
    features: str  # labels joined by ", "
    names: list[str]  # feature names in run order
    labels: list[str]  # modality labels in run order
    seed: int | None
    runs: list[Path] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)  # (N,) test ids over all folds
    importance: np.ndarray | None = None  # (N, M) in `labels` order
    probabilities: np.ndarray | None = None  # (N, C)
    targets: np.ndarray | None = None  # (N, C)
    classes: list[str] = field(default_factory=list)
    thresholds: np.ndarray | None = None  # (N,) each sample's run's decision threshold
    stores: dict[str, str] = field(default_factory=dict)  # name -> store path (first run)
    task: str = "multilabel"
    metrics: dict = field(default_factory=dict)  # its first run's metrics.json
    _index: dict[str, int] = field(default_factory=dict, init=False, repr=False)  # id -> row

    def row(self, sample_id: str) -> int | None:
        return self._index.get(sample_id)

    def finish(self) -> None:
        """Index `ids`; call after setting them."""
        self._index = {sid: k for k, sid in enumerate(self.ids)}


def load_combinations(run_dirs: Sequence[str | Path], labels: dict[str, str] | None = None,
                      pool: str = "max", seed: int | None = 0) -> list[Combination]:
    """Rows of runs with `pool` and an importance.h5, each at `seed` (or its smallest seed when it
    has no run with `seed`); ordered by number of modalities, then as first given."""
    labels = labels or {}
    drawn = (run for run in read_runs(run_dirs, labels) if run.pool == pool and (Path(run.dir) / IMPORTANCE).exists())
    combos = []
    for row in group_rows(drawn):
        features, by_seed = row.labels["Features"], row.seeds()
        seeds = sorted(by_seed, key=lambda s: (s is None, s))
        chosen = seed if seed in by_seed else seeds[0]
        if seed is not None and chosen != seed:
            print(f"note: {features} ({pool}) has no run with seed {seed}; using seed {chosen}",
                  file=sys.stderr)
        members = sorted(by_seed[chosen], key=lambda run: (run.fold is None, run.fold or 0))
        first = members[0].metrics
        names = list(first["features"])
        combo = Combination(row.key, features, names, [labels.get(n, n) for n in names], chosen,
                            stores=dict(first.get("feature_stores") or {}), task=first.get("task", "multilabel"),
                            metrics=first)
        ids, imps, probs, targets, cuts = [], [], [], [], []
        for run in members:
            run_dir = Path(run.dir)
            imp_ids, importance, modalities = read_importance(run_dir)  # (N, M)
            if modalities != names:
                order = [modalities.index(n) for n in names]
                importance = importance[:, order]
            pred_ids, prob, target, classes, task = read_predictions(run_dir)
            position = {sid: k for k, sid in enumerate(pred_ids)}
            missing = [sid for sid in imp_ids if sid not in position]
            if missing:
                raise ValueError(f"{run_dir}: {len(missing)} ids of importance.h5 are not in "
                                 f"predictions.h5 (e.g. {missing[0]}); retrain the run")
            take = [position[sid] for sid in imp_ids]
            combo.classes = combo.classes or classes
            combo.task = task or combo.task
            combo.runs.append(run_dir)
            ids += imp_ids
            imps.append(importance)
            probs.append(prob[take])
            cuts.append(np.full(len(take), run_threshold(run.metrics)))
            targets.append(target[take])
        combo.ids = ids
        combo.importance = np.concatenate(imps).astype(np.float64)
        combo.probabilities = np.concatenate(probs)
        combo.thresholds = np.concatenate(cuts)
        combo.targets = np.concatenate(targets)
        combo.finish()
        combos.append(combo)
    order = {c.key: k for k, c in enumerate(combos)}
    combos.sort(key=lambda c: (len(c.names), order[c.key]))
    return combos


def modality_columns(combos: Sequence[Combination]) -> list[str]:
    """Union of modality labels: the largest combination's order first, then others as they come."""
    columns: list[str] = []
    for combo in sorted(combos, key=lambda c: -len(c.labels)):
        columns += [label for label in combo.labels if label not in columns]
    return columns


def sample_matrix(combos: Sequence[Combination], columns: Sequence[str], sample_id: str) -> np.ndarray:
    """(rows, M) importance of each modality for `sample_id`; NaN where the modality is not in
    the combination or the sample is not in its test set."""
    matrix = np.full((len(combos), len(columns)), np.nan)
    for r, combo in enumerate(combos):
        k = combo.row(sample_id)
        if k is None:
            continue
        for m, label in enumerate(combo.labels):
            matrix[r, columns.index(label)] = combo.importance[k, m]
    return matrix


def label_names(classes: Sequence[str], flags: np.ndarray, task: str) -> list[str]:
    names = [c for c, on in zip(classes, flags) if on]
    if not names and task == "binary" and len(classes) == 1:
        return [f"not {classes[0]}"]
    return names


def predicted(combo: Combination, sample_id: str) -> list[str] | None:
    k = combo.row(sample_id)
    if k is None:
        return None
    return label_names(combo.classes, combo.probabilities[k] >= combo.thresholds[k], combo.task)


def truth(combos: Sequence[Combination], sample_id: str) -> list[str]:
    for combo in combos:
        k = combo.row(sample_id)
        if k is not None:
            return label_names(combo.classes, combo.targets[k] > 0, combo.task)
    raise KeyError(f"sample {sample_id!r} is in the test set of none of the runs")


# ---------------------------------------------------------------------------------------------
# choosing samples


def _store_counts(name: str, value: str) -> dict[str, int] | None:
    """id -> row count of feature `name`'s store (`STORE.h5[:COLUMN]`; ids and offsets only, no
    row column is read)."""
    spec = FeatureSpec.parse(f"{name}={value}").path
    if not spec.is_file():
        return None
    try:
        store = read_store(spec, columns=[])
    except (OSError, KeyError, ValueError):
        return None
    return dict(zip(store.ids, store.counts.tolist()))


def presence(combos: Sequence[Combination], columns: Sequence[str], candidates: Sequence[str]) -> np.ndarray:
    """(len(candidates), M) bool: modality present for the sample (store rows > 0; fallback:
    non-zero importance in some combination that has the modality)."""
    present = np.zeros((len(candidates), len(columns)), dtype=bool)
    for m, label in enumerate(columns):
        holders = [c for c in combos if label in c.labels]
        counts = None
        for combo in holders:
            name = combo.names[combo.labels.index(label)]
            if name in combo.stores:
                counts = _store_counts(name, combo.stores[name])
                if counts is not None:
                    break
        if counts is not None:
            present[:, m] = [counts.get(sid, 0) > 0 for sid in candidates]
            continue
        for combo in holders:
            j = combo.labels.index(label)
            present[:, m] |= [combo.importance[combo.row(sid), j] > 0
                              if combo.row(sid) is not None else False for sid in candidates]
    return present


def choose_samples(combos: Sequence[Combination], columns: Sequence[str], count: int) -> list[str]:
    """Deterministic choice, see the module docstring."""
    if not combos or count < 1:
        return []
    common = set(combos[0].ids)
    for combo in combos[1:]:
        common &= set(combo.ids)
    candidates = sorted(common)
    if not candidates:
        raise ValueError("no test sample is in every combination's runs; pass --ids")
    n_present = presence(combos, columns, candidates).sum(1)  # (K,)
    # the highest tier of "most modalities present" that still offers a few choices per pick
    need = min(len(candidates), count * 4)
    threshold = int(np.sort(n_present)[::-1][need - 1])
    pool = [sid for sid, n in zip(candidates, n_present) if n >= threshold]
    rank = dict(zip(candidates, n_present.tolist()))
    position = {sid: k for k, sid in enumerate(pool)}
    classes = {sid: frozenset(truth(combos, sid)) or frozenset(["(none)"]) for sid in pool}
    frequency = Counter(c for sid in pool for c in classes[sid])
    order = sorted(frequency, key=lambda c: (-frequency[c], c))  # most common class first
    chosen: list[str] = []
    covered: set[str] = set()
    while len(chosen) < min(count, len(pool)):
        remaining = [sid for sid in pool if sid not in chosen]
        targets = [c for c in order if c not in covered and any(c in classes[sid] for sid in remaining)]
        if not targets:
            covered = set()  # every class has a sample: next round
            continue
        best = max((sid for sid in remaining if targets[0] in classes[sid]),
                   key=lambda sid: (rank[sid], -len(classes[sid] & covered), -position[sid]))
        chosen.append(best)
        covered |= classes[best]
    return chosen


# ---------------------------------------------------------------------------------------------
# what the figures show (report/plots.py draws them)


def _wrap(names: Sequence[str], width: int = 34) -> str:
    lines, line = [], ""
    for name in names:
        piece = name if not line else f", {name}"
        if line and len(line) + len(piece) > width:
            lines.append(line + ",")
            line = name
        else:
            line += piece
    lines.append(line)
    return "\n".join(lines)


def _row_labels(combos: Sequence[Combination], sample_id: str, true: Sequence[str]) -> tuple[list[str], list[str]]:
    labels, colors = [], []
    for r, combo in enumerate(combos, 1):
        pred = predicted(combo, sample_id)
        if pred is None:
            labels.append(f"{r}: (not in test set)")
            colors.append("#7f7f7f")
            continue
        labels.append(f"{r}: " + (_wrap(pred) if pred else "(none)"))
        colors.append("#1a7f37" if set(pred) == set(true) else "#b31b1b")
    return labels, colors


def legend_text(combos: Sequence[Combination], pool: str) -> str:
    """The footnote naming the rows of a sample's matrix."""
    text = "   ".join(f"{r}: {c.features} (seed {c.seed})" for r, c in enumerate(combos, 1))
    return (f"Rows ({pool} pooling): {text}. Row label = predicted labels: green when they equal "
            "the true labels, red otherwise; grey hatched = modality not in the combination.")


def safe_name(sample_id: str) -> str:
    """A file name for `sample_id`: the id itself when it is safe, else its safe characters plus
    a hash of the id, so ids differing only in unsafe characters (`a/1`, `a 1`, `a_1`) never
    share a file."""
    text = str(sample_id)
    name = re.sub(r"[^\w.-]", "_", text)
    if name == text and text not in ("", ".", ".."):
        return name
    return f"{name.strip('.') or 'sample'}-{zlib.crc32(text.encode('utf-8')):08x}"


def sample_panel(combos: Sequence[Combination], columns: Sequence[str], sample_id: str,
                 title_width: int = 60) -> tuple[np.ndarray, list[str], list[str], str]:
    """(matrix (rows, M), row labels, row colours, title) of one sample."""
    true = truth(combos, sample_id)
    row_labels, colors = _row_labels(combos, sample_id, true)
    return (sample_matrix(combos, columns, sample_id), row_labels, colors,
            f"{sample_id}\ntrue: {_wrap(true or ['(none)'], title_width)}")


def write_sample(combos: Sequence[Combination], columns: Sequence[str], sample_id: str,
                 out: Path, pool: str, poster=None) -> Path:
    """`out` PNG: the importance matrix of `sample_id`, its poster (PIL image) beside it if given."""
    from report import plots

    matrix, row_labels, colors, title = sample_panel(combos, columns, sample_id)
    return plots.sample_png(matrix, columns, row_labels, colors, f"sample {title}", legend_text(combos, pool), out,
                            poster)


def load_posters(combos: Sequence[Combination], ids: Sequence[str]) -> dict[str, object]:
    """id -> poster (PIL image) of `ids`, from the image column of the runs' manifest; samples
    without a readable image (or runs whose manifest is gone) are left out."""
    from core.manifest import read_manifest
    from extract.base import BadInput
    from extract.image_files import load_rgb

    manifest = combos[0].metrics.get("manifest") if combos else None
    if not manifest or not Path(manifest).exists():
        return {}
    images = read_manifest(manifest).set_index("id")["image"]
    posters = {}
    for sid in ids:
        path = images.get(sid, "")
        if path:
            try:
                posters[sid] = load_rgb(path)
            except BadInput as err:
                print(f"note: sample {sid}: {err}; matrix drawn without its poster", file=sys.stderr)
    return posters


def write_samples_row(combos: Sequence[Combination], columns: Sequence[str], ids: Sequence[str],
                      out: Path, pool: str) -> Path:
    """The chosen samples side by side (the paper's last figure row)."""
    from report import plots

    panels = [sample_panel(combos, columns, sample_id, 40) for sample_id in ids]
    return plots.samples_png(panels, columns, legend_text(combos, pool), out)


def overview_matrix(run_dirs: Sequence[str | Path], columns: Sequence[str], combos: Sequence[Combination],
                    labels: dict[str, str], pool: str) -> tuple[np.ndarray, list[int]]:
    """(rows, M) mean importance over non-empty test samples, then over all runs (every seed
    and fold) of each combination; and the number of runs per row."""
    groups = {tuple(g["key"].values()): g for g in importance_groups(run_dirs, labels, pool)}
    matrix = np.full((len(combos), len(columns)), np.nan)
    counts = []
    for r, combo in enumerate(combos):
        group = groups[combo.key]
        for label, value in zip(group["labels"], group["mean"]):
            matrix[r, columns.index(label)] = value
        counts.append(len(group["runs"]))
    return matrix, counts


def write_overview(matrix: np.ndarray, counts: Sequence[int], combos: Sequence[Combination],
                   columns: Sequence[str], out: Path, pool: str) -> Path:
    from report import plots

    row_labels = [f"{r}: {_wrap(c.labels, 30)}  [{n} runs]" for r, (c, n) in enumerate(zip(combos, counts), 1)]
    return plots.overview_png(matrix, columns, row_labels,
                              f"Mean feature importance over test samples and runs ({pool} pooling)", out)


def write_matrices(run_dirs: Sequence[str | Path], out_dir: str | Path, samples: int = 4,
                   seed: int | None = 0, pool: str = "max", labels: dict[str, str] | None = None,
                   ids: Sequence[str] | None = None) -> dict:
    """Write every figure and matrices.csv; returns {"samples", "pngs", "csv", "overview"}."""
    labels = labels or {}
    combos = load_combinations(run_dirs, labels, pool, seed)
    if not combos:
        raise ValueError(f"none of the {len(run_dirs)} runs uses pool {pool} with an importance.h5; "
                         "pass runs trained with that pool or choose --pool")
    columns = modality_columns(combos)
    if ids:
        chosen = [str(i) for i in ids]
        unknown = [sid for sid in chosen if all(c.row(sid) is None for c in combos)]
        if unknown:
            raise ValueError(f"--ids {', '.join(unknown)}: not in the test set of any {pool} run")
    else:
        chosen = choose_samples(combos, columns, samples)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs, records = [], []
    posters = load_posters(combos, chosen)
    for sample_id in chosen:
        pngs.append(write_sample(combos, columns, sample_id, out_dir / f"{safe_name(sample_id)}.png", pool,
                                 posters.get(sample_id)))
        matrix = sample_matrix(combos, columns, sample_id)
        true = "|".join(truth(combos, sample_id))
        for r, combo in enumerate(combos):
            pred = predicted(combo, sample_id)
            for m, label in enumerate(columns):
                records.append({"sample": sample_id, "row": r + 1, "features": combo.features,
                                "pool": pool, "seed": combo.seed, "modality": label,
                                "in_combination": label in combo.labels,
                                "importance": matrix[r, m], "predicted": "" if pred is None else "|".join(pred),
                                "true": true})
    if chosen:
        write_samples_row(combos, columns, chosen, out_dir / "samples.png", pool)
    matrix, counts = overview_matrix(run_dirs, columns, combos, labels, pool)
    overview = write_overview(matrix, counts, combos, columns, out_dir / "overview.png", pool)
    for r, combo in enumerate(combos):
        for m, label in enumerate(columns):
            records.append({"sample": "(mean)", "row": r + 1, "features": combo.features, "pool": pool,
                            "seed": "all", "modality": label, "in_combination": label in combo.labels,
                            "importance": matrix[r, m], "predicted": "", "true": ""})
    csv = out_dir / "matrices.csv"
    write_csv(csv, pd.DataFrame(records))
    return {"samples": chosen, "pngs": pngs, "csv": csv, "overview": overview, "columns": columns}
