"""Differences between rows of a dataset's table, with confidence intervals and p-values.

A row is a table row (report/runs.py `Row`: method, modalities, pool) with its runs. Compared:
every multi-feature row against its best single-feature row (per metric, the single-feature row
of one of its features with the highest mean); a `set` or `set per modality` row against the
`concat mean` and `concat padded` rows on the same features; a `set` row against the `set per
modality` row with its pool; and "set vs collapsed": a row whose features were trained as sets
against the same row trained with `collapse.NAME=mean` (its modalities read `NAME:mean`).

Statistics, per comparison and main metric (F1 micro / macro, or accuracy / AUC), over the S
seeds both rows have (seed s of the row paired with seed s of the baseline: same training order
and element subsets):
- `delta`: the row's metric minus the baseline's on all test samples, averaged over the S
  seeds; each run scored at its own decision threshold (metrics.json `threshold`, chosen on dev
  under `threshold: dev`). Cross-validated runs are pooled per seed first: the out-of-fold
  predictions of all folds form one test set.
- `ci_low`, `ci_high`: 95% percentile interval of a two-level bootstrap (`ci_over` =
  `seeds+samples`): each of R resamples draws S seed pairs with replacement and, independently,
  the test samples with replacement (one draw for both rows and every seed, test samples being
  crossed with seeds), and averages the delta over the drawn seeds; that average's departure from
  the average over all S seeds (same sample draw) is stretched by `seed_scale(S)` (below). With
  fewer than MIN_SEEDS
  seeds there is too little to resample: the seeds are kept as trained and only test samples
  are drawn (`ci_over` = `samples`); such an interval leaves training randomness out.
- `p_value`: two-sided, from the same resamples: 2 x the share (plus one) of resampled deltas on
  the far side of zero, p = min(1, 2 (1 + min(#{d* <= 0}, #{d* >= 0})) / (1 + R)): the test
  dual to the interval (p <= 0.05 exactly where the 95% interval excludes zero).
Multi-label counts are resampled as matrix products: per sample and class the run's true
positives, false positives and false negatives (N, 3C); a resample's totals are its bootstrap
weights (R, N) times them, giving each seed's delta (R, S); the seed draw is a count per seed
(R, S) that weights those; AUC ranks all resamples at once (`scipy.stats.rankdata` along rows).
No Python loop over resamples or samples; draws are made in chunks of at most CHUNK_ELEMENTS
resamples x samples, so memory stays bounded for large test sets. With a fixed `seed` the draws
are shared by every comparison of the table.

Why this test. A training run is one draw of the training procedure, and a claim about a method
("set beats concat") is a claim about the procedure, not about the seeds that happened to run: on
the demo's old grid 5 seeds gave per-seed differences from +0.014 to -0.072 F1 micro (issue 22).
The permutation test used before (swap each sample's predictions between the rows) asks whether
these trained models are exchangeable sample by sample: it conditions on the seeds and cannot see
training randomness. The only exact permutation test over seeds swaps whole runs between the
rows, which with S seeds has 2^S outcomes: at 5 seeds p can never go below 1/16. The two-level
("pigeonhole") bootstrap resamples both random factors of the crossed seeds x samples design; it
is mildly conservative for such designs (Owen 2007, "The pigeonhole bootstrap": it counts the
seed x sample interaction in both factors). But S draws from S seeds spread too little: their
mean has (S - 1) / S of the seeds' variance and normal tails, where a mean of S trained seeds
has Student's t tails with S - 1 degrees of freedom. Where seeds disagree more than test samples
do, the plain two-level bootstrap said p <= 0.05 for 25%, 15% and 9.5% of comparisons with no
true difference at 3, 5 and 10 seeds. Stretching each resample's seed departure by
sqrt(S / (S - 1)) t(S-1) / z brings that to 5% (sample noise as large: at most 5%;
`test_seed_level_is_calibrated_when_seeds_disagree_more_than_samples`). The interval widens
with the seeds' disagreement where the old one did not (`test_seed_variance_widens_the_interval`:
five seeds whose deltas disagree include zero; test samples alone exclude it). p is read off the
same resamples so that p and the interval never disagree (they did before: an interval excluding
zero came with p = 0.10 on the demo).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from model.options import COLLAPSE
from model.runfiles import read_predictions, run_threshold
from report.runs import KEYS, Row, group_rows, read_runs, run_frame, training_differences
from report.tables import markdown_table, write_csv_md

MAIN = {"multilabel": ("f1_micro", "f1_macro"), "binary": ("accuracy", "auc")}
COLUMNS = ["row", "baseline", "metric", "delta", "ci_low", "ci_high", "p_value", "ci_over", "seeds", "samples"]
RESAMPLES = 1000
LEVEL = 0.95
MIN_SEEDS = 3  # paired seeds needed to resample seeds (fewer: `ci_over` = samples)
SETS = ("set", "set per modality")
CONCATS = ("concat mean", "concat padded")
CHUNK_ELEMENTS = 2**23  # resamples x samples drawn at once (bounds memory for large test sets)


@dataclass
class Side:
    """One table row's test predictions, pooled per seed, samples in `ids` order."""

    ids: np.ndarray  # (N,) str, sorted
    probs: dict[int, np.ndarray]  # seed -> (N, C) float32
    targets: np.ndarray  # (N, C) uint8
    task: str
    thresholds: dict[int, np.ndarray]  # seed -> (N, 1) each sample's run's decision threshold


def load_side(row: Row) -> Side:
    """One row's runs: per seed, the test predictions of all its runs (folds) pooled."""
    probs_by_seed, thresholds, tasks, reference = {}, {}, {}, None
    for seed, runs in sorted(row.seeds().items(), key=lambda item: int(item[0] or 0)):
        seed, parts = int(seed or 0), []
        for run in runs:
            ids, probs, targets, _, task = read_predictions(run.dir)
            tasks[run.dir] = task or run.metrics.get("task", "")
            parts.append((ids, probs, targets, np.full((len(ids), 1), run_threshold(run.metrics), dtype=np.float32)))
        ids = np.concatenate([np.asarray(p[0], dtype=str) for p in parts])
        order = np.argsort(ids, kind="stable")
        ids = ids[order]
        if len(np.unique(ids)) != len(ids):
            raise ValueError(f"seed {seed} of {row.runs[0].dir}'s row tests some sample twice; "
                             "pass each run (fold) once")
        probs = np.concatenate([p[1] for p in parts])[order].astype(np.float32)
        targets = np.concatenate([p[2] for p in parts])[order].astype(np.uint8)
        if reference is None:
            reference = (ids, targets)
        elif not np.array_equal(reference[0], ids):
            raise ValueError(f"the seeds of {row.runs[0].dir}'s row test different samples; retrain them on "
                             "one manifest")
        probs_by_seed[seed] = probs
        thresholds[seed] = np.concatenate([p[3] for p in parts])[order]
    return Side(reference[0], probs_by_seed, reference[1], tasks[row.runs[-1].dir], thresholds)


def paired_seeds(a: Side, b: Side, row: str, baseline: str) -> list[int]:
    """Seeds both sides have; both must test the same samples."""
    if len(a.ids) != len(b.ids) or not np.array_equal(a.ids, b.ids):
        only = sorted(set(a.ids) ^ set(b.ids))
        raise ValueError(f"{row} and {baseline} test different samples ({len(only)} differ, e.g. "
                         f"{only[0] if only else '?'}); train both on the same manifest and split")
    seeds = sorted(set(a.probs) & set(b.probs))
    if not seeds:
        raise ValueError(f"{row} and {baseline} share no seed; train them with the same seeds")
    return seeds


# ---------------------------------------------------------------------------------------------
# vectorised statistics


def resample_indices(n: int, resamples: int, seed: int | Sequence[int] = 0) -> np.ndarray:
    """(R, N) bootstrap draws of sample positions (common to every comparison of a size)."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def bootstrap_weights(index: np.ndarray, n: int) -> np.ndarray:
    """(R, N) float32 times each of n positions is drawn in each resample of `index` (R, k)."""
    r = len(index)
    flat = (index + np.arange(r)[:, None] * n).ravel()
    return np.bincount(flat, minlength=r * n).reshape(r, n).astype(np.float32)


def seed_weights(seeds: int, resamples: int, seed: int | Sequence[int] = 2) -> np.ndarray:
    """(R, S) float32 times each of S paired seeds is drawn in each resample: S draws with
    replacement, or each seed once when S < MIN_SEEDS (the seeds as trained)."""
    if seeds < MIN_SEEDS:
        return np.ones((resamples, seeds), np.float32)
    draws = np.random.default_rng(seed).integers(0, seeds, size=(resamples, seeds))
    return bootstrap_weights(draws, seeds)


def label_counts(probs: np.ndarray, targets: np.ndarray, threshold: float | np.ndarray) -> np.ndarray:
    """(N, 3C) float32 per sample and class: true positives, false positives, false negatives."""
    p, t = probs >= threshold, targets.astype(bool)
    return np.concatenate([p & t, p & ~t, ~p & t], axis=1).astype(np.float32)


def f1_from_totals(totals: np.ndarray) -> dict[str, np.ndarray]:
    """F1 micro and macro from totals (..., 3C) of (tp, fp, fn) per class (scikit-learn's,
    zero_division=0)."""
    tp, fp, fn = np.split(totals.astype(np.float64), 3, axis=-1)
    den = 2 * tp + fp + fn
    per_class = np.divide(2 * tp, den, out=np.zeros_like(den), where=den > 0)
    micro_den = den.sum(-1)
    micro = np.divide(2 * tp.sum(-1), micro_den, out=np.zeros_like(micro_den), where=micro_den > 0)
    return {"f1_micro": micro, "f1_macro": per_class.mean(-1)}


def auc_rows(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of `scores` (R, N) against `targets` (R, N) or (N,) 0/1 (average ranks
    for ties); NaN for a row with one class."""
    from scipy.stats import rankdata

    y = np.broadcast_to(targets.astype(bool), scores.shape)
    ranks = rankdata(scores, axis=1)
    pos = y.sum(1).astype(np.float64)
    neg = y.shape[1] - pos
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((pos > 0) & (neg > 0),
                        ((ranks * y).sum(1) - pos * (pos + 1) / 2) / (pos * neg), np.nan)


def multilabel_deltas(a: list[np.ndarray], b: list[np.ndarray],
                      weights: np.ndarray) -> dict[str, tuple[float, np.ndarray]]:
    """Per metric: (delta averaged over seeds, each seed's delta on each bootstrap resample
    (R, S)) of seed-paired count matrices `a`, `b` (S lists of (N, 3C)), `weights` (R, N)."""
    A, B = np.stack(a, 1), np.stack(b, 1)  # (N, S, 3C)
    n, s, k = A.shape
    point_a, point_b = f1_from_totals(A.sum(0)), f1_from_totals(B.sum(0))  # (S,) each
    fa = f1_from_totals((weights @ A.reshape(n, s * k)).reshape(-1, s, k))  # (R, S) each
    fb = f1_from_totals((weights @ B.reshape(n, s * k)).reshape(-1, s, k))
    return {m: (float((point_a[m] - point_b[m]).mean()), fa[m] - fb[m]) for m in MAIN["multilabel"]}


def binary_deltas(a: list[np.ndarray], b: list[np.ndarray], targets: np.ndarray,
                  thresholds: tuple[np.ndarray, np.ndarray],
                  index: np.ndarray) -> dict[str, tuple[float, np.ndarray]]:
    """As `multilabel_deltas` for a binary task: `a`, `b` S lists of probabilities (N,), their
    decision `thresholds` ((S, N) or scalars) each, bootstrap draws `index` (R, N)."""
    y = targets.reshape(-1).astype(bool)
    P, Q = np.stack(a), np.stack(b)  # (S, N)
    correct = lambda p, t: ((p >= t) == y).astype(np.float32)  # noqa: E731
    gap = correct(P, thresholds[0]) - correct(Q, thresholds[1])  # (S, N)
    weights = bootstrap_weights(index, len(y)) / len(y)
    out = {"accuracy": (float(gap.mean()), weights @ gap.T)}  # (R, S)
    point = np.mean([auc_rows(P[i][None], y)[0] - auc_rows(Q[i][None], y)[0] for i in range(len(P))])
    boot = np.stack([auc_rows(P[i][index], y[index]) - auc_rows(Q[i][index], y[index]) for i in range(len(P))], 1)
    out["auc"] = (float(point), boot)
    return out


def seed_scale(seeds: int) -> float:
    """How far a resample's seed draw is stretched from the all-seeds average: the mean of S
    seeds drawn from S has (S - 1) / S of the seeds' variance over S and normal tails, where the
    mean of S trained seeds has the full variance and Student's t tails with S - 1 degrees of
    freedom. sqrt(S / (S - 1)) t(S-1) / z at LEVEL: 2.69 at 3 seeds, 1.58 at 5, 1.22 at 10."""
    from scipy.stats import norm, t

    q = 1 - (1 - LEVEL) / 2
    return float(np.sqrt(seeds / (seeds - 1)) * t.ppf(q, seeds - 1) / norm.ppf(q))


def seed_average(per_seed: np.ndarray, drawn: np.ndarray) -> np.ndarray:
    """(R,) each resample's delta averaged over its drawn seeds: per-seed deltas (R, S) weighted
    by the times each seed is drawn (R, S)."""
    weighted = np.where(drawn > 0, per_seed * drawn, 0.0)  # a NaN delta of an undrawn seed counts 0
    return weighted.sum(1) / drawn.sum(1)


def resampled_deltas(per_seed: np.ndarray, drawn: np.ndarray) -> np.ndarray:
    """(R,) the resampled deltas: each resample's `seed_average`, its departure from the average
    over all S seeds on the same test-sample draw stretched by `seed_scale(S)`. Seeds as trained
    (S < MIN_SEEDS, each drawn once): the plain average."""
    average = seed_average(per_seed, drawn)
    seeds = per_seed.shape[1]
    if seeds < MIN_SEEDS:
        return average
    finite = np.isfinite(per_seed)
    whole = np.where(finite, per_seed, 0.0).sum(1) / np.maximum(finite.sum(1), 1)
    return whole + seed_scale(seeds) * (average - whole)


def resample_chunks(n: int, resamples: int, seeds: int, seed: int = 0
                    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """`(index (r, N), weights (r, N), drawn seeds (r, S))` per chunk of at most CHUNK_ELEMENTS
    draws, `resamples` in all; chunk k is seeded by (seed, k), so every comparison of as many
    samples and seeds sees the same ones."""
    size = max(1, CHUNK_ELEMENTS // max(n, 1))
    chunks = []
    for k, start in enumerate(range(0, resamples, size)):
        r = min(size, resamples - start)
        index = resample_indices(n, r, [seed, 0, k])
        chunks.append((index, bootstrap_weights(index, n), seed_weights(seeds, r, [seed, 2, k])))
    return chunks


def summarise_stats(delta: float, boot: np.ndarray) -> dict[str, float]:
    """delta, percentile interval at LEVEL and the two-sided bootstrap p-value of the resampled
    deltas `boot` (R,). The interval's ends are the k-th smallest and k-th largest of the R
    deltas, k = floor((R + 1)(1 - LEVEL) / 2) (25 of 1,000; at least 1), so that it excludes zero
    exactly where p <= 1 - LEVEL (R >= 39 at 95%); an interpolated percentile could exclude zero
    at p = 0.052."""
    valid = np.sort(boot[np.isfinite(boot)])
    r = len(valid)
    if not r:
        return {"delta": delta, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan}
    k = max(1, int(np.floor((r + 1) * (1 - LEVEL) / 2 + 1e-9)))
    far = min(np.sum(valid <= 0), np.sum(valid >= 0))
    p = min(1.0, 2 * (1 + far) / (1 + r))
    return {"delta": delta, "ci_low": float(valid[k - 1]), "ci_high": float(valid[r - k]), "p_value": float(p)}


# ---------------------------------------------------------------------------------------------
# which rows are compared


def row_label(key: dict) -> str:
    """`Features (pool)`: the pool, `POOL per modality`, or the concat baseline's name."""
    method, pool = key["Method"], key["Pool"]
    how = pool if method == "set" else f"{pool} per modality" if method == "set per modality" else method
    return f"{key['Features']} ({how})"


def collapsed_base(modalities: str) -> str | None:
    """The modalities of the uncollapsed row (`a+b:mean` -> `a+b`), None when nothing is collapsed."""
    keys = modalities.split("+")
    plain = [k.split(":")[0] if k.partition(":")[2] in COLLAPSE else k for k in keys]
    return "+".join(plain) if plain != keys else None


def plan_comparisons(table: pd.DataFrame, metrics: Sequence[str]) -> list[tuple[int, int, str, str]]:
    """(row index, baseline index, baseline kind, metric) of every comparison over the rows of
    `table` (one per KEYS group, with the mean of each metric)."""
    plans = []
    single = table[~table["Modalities"].str.contains(r"\+")]

    def against(i: int, rows: pd.DataFrame, kind: str) -> None:
        plans.extend((i, int(rows.index[0]), kind, m) for m in metrics if len(rows))

    for i, row in table.iterrows():
        keys = row["Modalities"].split("+")
        same = table[table["Modalities"] == row["Modalities"]]
        if len(keys) > 1:
            candidates = single[single["Modalities"].isin(keys)]
            for metric in metrics:
                if len(candidates) and candidates[metric].notna().any():
                    plans.append((i, int(candidates[metric].idxmax()), "best single", metric))
            if row["Method"] in SETS:
                for kind in CONCATS:
                    against(i, same[same["Method"] == kind], kind)
            if row["Method"] == "set":
                against(i, same[(same["Method"] == "set per modality") & (same["Pool"] == row["Pool"])],
                        "set per modality")
        base = collapsed_base(row["Modalities"])
        if base is not None:
            sets = table[(table["Modalities"] == base) & (table["Pool"] == row["Pool"])
                         & (table["Method"] == row["Method"])]
            plans += [(int(sets.index[0]), i, "collapsed", m) for m in metrics if len(sets)]
    return plans


def pair_stats(a: Side, b: Side, seeds: list[int], chunks) -> dict[str, tuple[float, np.ndarray]]:
    """Per metric: (delta, resampled deltas (R,)) of two rows over their paired `seeds`."""
    if a.task == "multilabel":
        counts_a = [label_counts(a.probs[s], a.targets, a.thresholds[s]) for s in seeds]
        counts_b = [label_counts(b.probs[s], b.targets, b.thresholds[s]) for s in seeds]
        parts = [(multilabel_deltas(counts_a, counts_b, w), drawn) for _, w, drawn in chunks]
    else:
        probs_a = [a.probs[s].reshape(-1) for s in seeds]
        probs_b = [b.probs[s].reshape(-1) for s in seeds]
        cut = tuple(np.stack([side.thresholds[s].reshape(-1) for s in seeds]) for side in (a, b))  # (S, N) each
        parts = [(binary_deltas(probs_a, probs_b, a.targets, cut, x), drawn) for x, _, drawn in chunks]
    return {m: (parts[0][0][m][0], np.concatenate([resampled_deltas(d[m][1], drawn) for d, drawn in parts]))
            for m in parts[0][0]}


def compare(run_dirs: Sequence[str | Path], labels: dict[str, str] | None = None,
            resamples: int = RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """The comparisons table (COLUMNS) of the runs of one dataset."""
    runs = read_runs(run_dirs, labels)
    frame, _ = run_frame(runs)
    groups = frame.groupby(KEYS, sort=False)
    grouped = {row.key: row for row in group_rows(runs)}
    sides = {key: load_side(row) for key, row in grouped.items()}
    tasks = {s.task for s in sides.values()}
    if len(tasks) != 1:
        raise ValueError(f"the runs mix tasks ({', '.join(sorted(tasks))}); pass the runs of one dataset")
    task = tasks.pop()
    metrics = MAIN[task]
    table = groups[list(metrics)].mean().reset_index()
    plans = plan_comparisons(table, metrics)
    n = len(next(iter(sides.values())).ids)
    small = n * resamples <= 4 * CHUNK_ELEMENTS  # keep the draws for every pair, else redraw them
    kept: dict[int, list] = {}  # seeds -> chunks
    cache: dict[tuple[int, int], tuple[list[int], dict]] = {}
    rows = []
    for i, j, kind, metric in plans:
        key_a, key_b = (tuple(table.loc[k, KEYS]) for k in (i, j))
        a, b = sides[key_a], sides[key_b]
        name_a, name_b = row_label(table.loc[i]), f"{kind}: {row_label(table.loc[j])}"
        if (i, j) not in cache:
            differ = training_differences(grouped[key_a].runs[0], grouped[key_b].runs[0])
            if differ:
                raise ValueError(f"{name_a} and {name_b} were trained differently ({'; '.join(differ[:3])}): "
                                 "a comparison pairs seeds of one setting; pass the runs of one setting")
            seeds = paired_seeds(a, b, name_a, name_b)
            if len(a.ids) != n:
                raise ValueError(f"{name_a} tests {len(a.ids)} samples, other rows {n}; pass the runs of one dataset")
            chunks = kept.get(len(seeds)) or resample_chunks(n, resamples, len(seeds), seed)
            if small:
                kept[len(seeds)] = chunks
            cache[(i, j)] = (seeds, pair_stats(a, b, seeds, chunks))
        seeds, stats = cache[(i, j)]
        rows.append({"row": name_a, "baseline": name_b, "metric": metric, **summarise_stats(*stats[metric]),
                     "ci_over": "seeds+samples" if len(seeds) >= MIN_SEEDS else "samples",
                     "seeds": len(seeds), "samples": len(a.ids)})
    return pd.DataFrame(rows, columns=COLUMNS)


def excludes_zero(frame: pd.DataFrame) -> pd.Series:
    return (frame["ci_low"] > 0) | (frame["ci_high"] < 0)


def to_markdown(frame: pd.DataFrame, resamples: int = RESAMPLES) -> str:
    header = ["Row", "Baseline", "Metric", "Δ", f"{LEVEL:.0%} CI", "p", "CI excludes 0", "CI over", "seeds",
              "samples"]
    rows = ([r["row"], r["baseline"], r["metric"], f"{r['delta']:+.4f}", f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]",
             f"{r['p_value']:.3f}", "**yes**" if mark else "no",
             r["ci_over"] + ("" if r["ci_over"] == "seeds+samples" else " †"), int(r["seeds"]), int(r["samples"])]
            for (_, r), mark in zip(frame.iterrows(), excludes_zero(frame)))
    lines = markdown_table(header, rows) + [""]
    lines.append(f"Δ = row − baseline, test metric averaged over the paired seeds. CI: {LEVEL:.0%} percentile "
                 f"interval of a two-level bootstrap ({resamples} resamples): the paired seeds drawn with "
                 "replacement (their spread stretched to Student's t with seeds - 1 degrees of freedom), and "
                 "the test samples drawn with replacement; p: two-sided, from the same "
                 "resamples (p ≤ 0.05 exactly where the interval excludes 0). **yes**: the interval excludes zero.")
    if (frame["ci_over"] != "seeds+samples").any():
        lines.append("")
        lines.append(f"† fewer than {MIN_SEEDS} paired seeds: the interval and p resample test samples only, for the "
                     "seeds as trained; they leave training randomness out (train more seeds).")
    return "\n".join(lines) + "\n"


def write_comparisons(run_dirs: Sequence[str | Path], out: str | Path, labels: dict[str, str] | None = None,
                      resamples: int = RESAMPLES) -> tuple[Path, Path]:
    """OUT.csv and OUT.md next to it."""
    frame = compare(run_dirs, labels, resamples)
    return write_csv_md(out, frame, to_markdown(frame, resamples))
