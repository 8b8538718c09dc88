"""Differences between table rows with CIs: the vectorised statistics against plain loops over
resamples, the pairing of rows, pooled cross-validation folds, and the CLI on trained runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model.metrics import binary_metrics, f1_scores
from model.runfiles import write_metrics, write_predictions
from report import comparisons as C


def _probs(rng, n, c, targets, skill):
    """Probabilities that agree with `targets` more often the higher `skill` is."""
    noise = rng.random((n, c))
    return np.clip(np.where(targets > 0, skill, 1 - skill) * noise + (1 - noise) * rng.random((n, c)), 0, 1)


def test_f1_from_totals_is_scikit_learns():
    rng = np.random.default_rng(0)
    t, p = rng.random((200, 7)) < 0.3, rng.random((200, 7)) < 0.3
    t[:, 3] = p[:, 3] = False  # a class with no support and no prediction: zero_division=0
    got = C.f1_from_totals(C.label_counts(p.astype(np.float32), t, 0.5).sum(0))
    want = f1_scores(t.astype(int), p.astype(int))
    assert got["f1_micro"] == pytest.approx(want["f1_micro"]) and got["f1_macro"] == pytest.approx(want["f1_macro"])


def test_multilabel_resamples_match_a_plain_loop():
    rng = np.random.default_rng(1)
    n, c, seeds, r = 150, 5, 4, 6
    targets = (rng.random((n, c)) < 0.35).astype(np.uint8)
    a = [_probs(rng, n, c, targets, 0.9) for _ in range(seeds)]
    b = [_probs(rng, n, c, targets, 0.7) for _ in range(seeds)]
    index = C.resample_indices(n, r, 0)
    drawn = C.seed_weights(seeds, r, 2)
    stats = C.multilabel_deltas([C.label_counts(x, targets, 0.5) for x in a],
                                [C.label_counts(x, targets, 0.5) for x in b], C.bootstrap_weights(index, n))
    f1 = lambda p, t, m: f1_scores(t, (p >= 0.5).astype(int))[m]  # noqa: E731
    for m in ("f1_micro", "f1_macro"):
        delta, per_seed = stats[m]
        assert delta == pytest.approx(np.mean([f1(a[s], targets, m) - f1(b[s], targets, m) for s in range(seeds)]))
        boot = C.seed_average(per_seed, drawn)
        for k in range(r):
            rows = index[k]
            picks = [s for s in range(seeds) for _ in range(int(drawn[k, s]))]  # the seeds drawn, with repeats
            assert len(picks) == seeds
            want = np.mean([f1(a[s][rows], targets[rows], m) - f1(b[s][rows], targets[rows], m) for s in picks])
            assert boot[k] == pytest.approx(want)


def test_binary_resamples_match_a_plain_loop():
    rng = np.random.default_rng(2)
    n, r, seeds = 120, 5, 3
    y = (rng.random(n) < 0.4).astype(np.uint8)
    a = [np.round(_probs(rng, n, 1, y[:, None], 0.8)[:, 0], 2) for _ in range(seeds)]  # rounded: ties
    b = [np.round(_probs(rng, n, 1, y[:, None], 0.6)[:, 0], 2) for _ in range(seeds)]
    index, drawn = C.resample_indices(n, r, 0), C.seed_weights(seeds, r, 2)
    stats = C.binary_deltas(a, b, y[:, None], (0.5, 0.5), index)
    for m in ("accuracy", "auc"):
        delta, per_seed = stats[m]
        assert delta == pytest.approx(np.mean([binary_metrics(y, p)[m] - binary_metrics(y, q)[m] for p, q in zip(a, b)]))
        boot = C.seed_average(per_seed, drawn)
        for k in range(r):
            rows = index[k]
            picks = [s for s in range(seeds) for _ in range(int(drawn[k, s]))]
            want = np.mean([binary_metrics(y[rows], a[s][rows])[m] - binary_metrics(y[rows], b[s][rows])[m]
                            for s in picks])
            assert boot[k] == pytest.approx(want)


def test_seeds_are_resampled_from_three_paired_seeds_on():
    assert (C.seed_weights(2, 50) == 1).all()  # two seeds: kept as trained
    drawn = C.seed_weights(5, 400)
    assert (drawn.sum(1) == 5).all() and (drawn != 1).any() and set(np.unique(drawn)) <= set(range(6))
    assert abs(drawn.mean(0) - 1).max() < 0.15  # every seed drawn about once on average


def _run(root: Path, name: str, features: list[str], pool: str, seed: int, ids, probs, targets,
         fold=None, collapse=None, task="multilabel", threshold=None, config=None) -> Path:
    """A run folder as training writes it (predictions.h5 and metrics.json)."""
    out = root / name / pool / (f"seed{seed}" + (f"-fold{fold}" if fold is not None else ""))
    out.mkdir(parents=True)
    classes = [f"c{k}" for k in range(targets.shape[1])]
    write_predictions(out, ids, probs, targets, classes, task)
    scores = (binary_metrics(targets, probs) if task == "binary"
              else f1_scores(targets, (probs >= 0.5).astype(int)))
    write_metrics(out, {**scores, "metric_names": list(scores), "task": task, "pool": pool, "seed": seed,
                        "fold": fold, "features": features,
                        "config": {"threshold": 0.5, "collapse": collapse or {}, **(config or {})}}
                  | ({"threshold": threshold} if threshold is not None else {}))
    return out


@pytest.fixture
def grid(tmp_path):
    """Rows a, b (single); a+b as a set (max), a set per modality, concat mean and concat padded;
    a+b with b collapsed; 3 seeds, 400 test samples. The sets are clearly better than both concat
    baselines; the collapsed row equals the set row."""
    rng = np.random.default_rng(3)
    n, c = 400, 4
    ids = [f"{k:04d}" for k in range(n)]
    targets = (rng.random((n, c)) < 0.4).astype(np.uint8)
    runs = []
    for seed in range(3):
        same = _probs(rng, n, c, targets, 0.9)
        plan = {("a", ("a",), "max"): 0.7, ("b", ("b",), "max"): 0.6, ("ab", ("a", "b"), "max"): 0.9,
                ("ab", ("a", "b"), "max_per_modality"): 0.88, ("ab", ("a", "b"), "concat_mean"): 0.65,
                ("ab", ("a", "b"), "concat_padded"): 0.6}
        for (name, feats, pool), skill in plan.items():
            probs = same if (name, pool) == ("ab", "max") else _probs(rng, n, c, targets, skill)
            runs.append(_run(tmp_path, name, list(feats), pool, seed, ids, probs, targets))
        runs.append(_run(tmp_path, "ab_mean", ["a", "b"], "max", seed, ids, same, targets, collapse={"b": "mean"}))
    return runs


def test_rows_are_paired_with_best_single_both_concats_per_modality_and_collapsed(grid):
    frame = C.compare(grid, {"a": "A(i)", "b": "B(t)"}, resamples=300)
    assert list(frame.columns) == C.COLUMNS
    pairs = set(zip(frame["row"], frame["baseline"], frame["metric"]))
    ab = "A(i), B(t)"
    for metric in ("f1_micro", "f1_macro"):
        for row in ("max", "max per modality", "concat mean", "concat padded"):
            assert (f"{ab} ({row})", "best single: A(i) (max)", metric) in pairs
        for row in ("max", "max per modality"):  # both sets against both concat baselines
            assert (f"{ab} ({row})", f"concat mean: {ab} (concat mean)", metric) in pairs
            assert (f"{ab} ({row})", f"concat padded: {ab} (concat padded)", metric) in pairs
        assert (f"{ab} (max)", f"set per modality: {ab} (max per modality)", metric) in pairs
        assert (f"{ab} (max)", f"collapsed: {ab} mean (max)", metric) in pairs
        assert (f"{ab} mean (max)", "best single: A(i) (max)", metric) in pairs
    assert len(frame) == 2 * 11  # nothing else: single rows are baselines only
    assert (frame["seeds"] == 3).all() and (frame["samples"] == 400).all()
    assert (frame["ci_over"] == "seeds+samples").all()
    assert ((frame["ci_low"] <= frame["delta"]) & (frame["delta"] <= frame["ci_high"])).all()
    vs_concat = frame[frame["baseline"].str.startswith("concat")]
    assert (vs_concat["ci_low"] > 0).all() and (vs_concat["p_value"] < 0.01).all()
    same = frame[frame["baseline"].str.startswith("collapsed")]  # identical predictions
    assert (same[["delta", "ci_low", "ci_high"]].abs().to_numpy() < 1e-12).all() and (same["p_value"] == 1).all()
    markdown = C.to_markdown(frame)
    assert "**yes**" in markdown and "†" not in markdown  # every row resamples seeds


def test_seed_variance_widens_the_interval(tmp_path, monkeypatch):
    """Five seeds whose deltas disagree (the row's seeds range from much better to much worse than
    the baseline's): resampling test samples only gives a tight interval away from zero for the
    seeds as trained; resampling seeds too includes zero, and p agrees with the interval."""
    rng = np.random.default_rng(5)
    n, c = 3000, 4
    ids = [f"{k:05d}" for k in range(n)]
    targets = (rng.random((n, c)) < 0.4).astype(np.uint8)
    runs = []
    for seed, skill in enumerate((0.97, 0.62, 0.96, 0.64, 0.95)):  # the baseline: 0.75 every seed
        runs.append(_run(tmp_path, "ab", ["a", "b"], "max", seed, ids, _probs(rng, n, c, targets, skill), targets))
        runs.append(_run(tmp_path, "ab", ["a", "b"], "concat_mean", seed, ids, _probs(rng, n, c, targets, 0.75),
                         targets))
    frame = C.compare(runs, resamples=1000)
    row = frame[(frame["baseline"].str.startswith("concat mean")) & (frame["metric"] == "f1_micro")].iloc[0]
    assert row["delta"] > 0 and row["ci_over"] == "seeds+samples" and row["seeds"] == 5
    assert row["ci_low"] < 0 < row["ci_high"] and row["p_value"] > 0.05
    monkeypatch.setattr(C, "MIN_SEEDS", 6)  # test samples only, the seeds as trained (the old interval)
    samples = C.compare(runs, resamples=1000)
    old = samples[(samples["baseline"].str.startswith("concat mean")) & (samples["metric"] == "f1_micro")].iloc[0]
    assert old["ci_over"] == "samples" and old["delta"] == row["delta"]
    assert old["ci_low"] > 0 and old["p_value"] < 0.01
    assert old["ci_high"] - old["ci_low"] < (row["ci_high"] - row["ci_low"]) / 3
    assert "† fewer than 6 paired seeds" in C.to_markdown(samples) and "samples †" in C.to_markdown(samples)


@pytest.mark.parametrize("seeds", [3, 5, 10])
def test_seed_level_is_calibrated_when_seeds_disagree_more_than_samples(seeds):
    """No true difference, per-seed deltas that vary between seeds (SD 1), the test samples adding
    none: p <= 0.05 in about 5% of 600 such comparisons (the plain two-level bootstrap of 3, 5
    and 10 seeds gave 25%, 15% and 9.5%: S draws from S seeds have too little spread and normal
    tails); with sample noise as large as the seeds', no more."""
    rng = np.random.default_rng(seeds)
    drawn = C.seed_weights(seeds, 1000, [7, 2, 0])
    for noise, most in ((0.0, 0.07), (1.0, 0.06)):
        hits = 0
        for _ in range(600):
            per_seed, shift = rng.normal(0, 1, seeds), noise * rng.normal()
            boot = C.resampled_deltas(per_seed + shift + noise * rng.normal(0, 1, (1000, 1)), drawn)
            hits += C.summarise_stats(float(per_seed.mean() + shift), boot)["p_value"] <= 0.05
        assert 0.01 < hits / 600 <= most, (noise, hits / 600)


def test_cross_validated_rows_pool_their_folds(tmp_path):
    rng = np.random.default_rng(4)
    n, folds = 90, 3
    y = (rng.random((n, 1)) < 0.5).astype(np.uint8)
    runs = []
    for seed in range(2):
        for name, feats, pool, skill in (("a", ["a"], "max", 0.6), ("ab", ["a", "b"], "max", 0.8),
                                         ("ab", ["a", "b"], "concat_padded", 0.7)):
            probs = _probs(rng, n, 1, y, skill)
            for fold in range(folds):
                rows = np.arange(n)[np.arange(n) % folds == fold]
                runs.append(_run(tmp_path, name, feats, pool, seed, [f"{k:03d}" for k in rows], probs[rows],
                                 y[rows], fold=fold, task="binary"))
    frame = C.compare(runs, resamples=200)
    assert set(frame["metric"]) == {"accuracy", "auc"} and (frame["samples"] == n).all()
    assert (frame["seeds"] == 2).all() and (frame["ci_over"] == "samples").all()  # two seeds: samples only


def test_rows_testing_other_samples_are_refused(grid, tmp_path):
    other = _run(tmp_path / "x", "ab", ["a", "b"], "concat_mean", 5, ["9999"], np.zeros((1, 4)),
                 np.zeros((1, 4), np.uint8))
    with pytest.raises(ValueError, match="test different samples"):
        C.compare([r for r in grid if "concat_mean" not in str(r)] + [other], resamples=10)


def test_cli_writes_csv_and_markdown(grid, tmp_path):
    from report.__main__ import main

    out = tmp_path / "demo_comparisons.csv"
    assert main(["comparisons", "--runs", *map(str, grid), "--out", str(out), "--resamples", "100"]) == 0
    frame = pd.read_csv(out)
    assert list(frame.columns) == C.COLUMNS and len(frame) == 22
    assert "CI excludes 0" in out.with_suffix(".md").read_text()


def test_resamples_in_chunks_give_the_same_table(grid, monkeypatch):
    whole = C.compare(grid, resamples=400)
    monkeypatch.setattr(C, "CHUNK_ELEMENTS", 400 * 30)  # 30 resamples of 400 samples per chunk, redrawn per pair
    chunked = C.compare(grid, resamples=400)
    pd.testing.assert_frame_equal(whole.drop(columns=["ci_low", "ci_high", "p_value"]),
                                  chunked.drop(columns=["ci_low", "ci_high", "p_value"]))
    assert np.allclose(whole[["ci_low", "ci_high"]], chunked[["ci_low", "ci_high"]], atol=0.02)  # other draws
    assert (chunked[chunked["baseline"].str.startswith("concat")]["p_value"] < 0.01).all()
    chunks = C.resample_chunks(400, 200, 3)
    assert [len(x) for x, _, _ in chunks] == [30] * 6 + [20] and all(d.shape == (len(x), 3) for x, _, d in chunks)


def test_each_run_is_scored_at_its_own_recorded_threshold(tmp_path):
    """`threshold: dev` gives every run (seed, fold) its own threshold, recorded in metrics.json;
    the comparisons read it (they read config.threshold, 0.5, before)."""
    rng = np.random.default_rng(5)
    n, c = 300, 3
    ids = [f"{k:04d}" for k in range(n)]
    targets = (rng.random((n, c)) < 0.4).astype(np.uint8)
    cuts = {("ab", "max"): (0.3, 0.7, 0.5), ("ab", "concat_mean"): (0.6, 0.45, 0.35)}
    probs, runs = {}, []
    for seed in range(3):
        for (name, pool), threshold in cuts.items():
            probs[name, pool, seed] = _probs(rng, n, c, targets, 0.8)
            runs.append(_run(tmp_path, name, ["a", "b"], pool, seed, ids, probs[name, pool, seed], targets,
                             threshold=threshold[seed]))
    frame = C.compare(runs, resamples=50)
    row = frame[frame["metric"] == "f1_micro"].iloc[0]
    want = np.mean([f1_scores(targets, probs["ab", "max", s] >= cuts["ab", "max"][s])["f1_micro"]
                    - f1_scores(targets, probs["ab", "concat_mean", s] >= cuts["ab", "concat_mean"][s])["f1_micro"]
                    for s in range(3)])
    assert row["delta"] == pytest.approx(want)


def test_the_interval_excludes_zero_exactly_where_p_is_at_most_five_percent():
    """The interval's ends are order statistics matched to p's (1 + R): an interpolated percentile
    excluded zero at p = 0.052 (25 of 1,000 resampled deltas at or below zero)."""
    boot = np.r_[np.full(25, -1e-6), np.ones(975)]
    stats = C.summarise_stats(0.5, boot)
    assert stats["p_value"] == pytest.approx(52 / 1001) and stats["ci_low"] < 0
    stats = C.summarise_stats(0.5, boot[1:])  # 24 of 999 at or below zero
    assert stats["p_value"] <= 0.05 and stats["ci_low"] > 0
    rng = np.random.default_rng(0)
    for r in (40, 100, 999, 1000, 2000):
        for shift in np.linspace(0, 3, 40):
            stats = C.summarise_stats(shift, rng.normal(shift, 1, r))
            excludes = stats["ci_low"] > 0 or stats["ci_high"] < 0
            assert excludes == (stats["p_value"] <= 0.05), (r, shift, stats)


def test_rows_trained_differently_are_not_compared(tmp_path):
    """A set row at dim 32 and its concat baseline at dim 128 are not one setting: seed s of one is
    no pair for seed s of the other. Refused, naming what differs; collapse alone may differ
    (that is the set-vs-collapsed comparison)."""
    rng = np.random.default_rng(6)
    n, c = 60, 3
    ids = [f"{k:03d}" for k in range(n)]
    targets = (rng.random((n, c)) < 0.4).astype(np.uint8)
    runs = [_run(tmp_path, "ab", ["a", "b"], pool, seed, ids, _probs(rng, n, c, targets, 0.8), targets,
                 config={"dim": dim})
            for seed in range(3) for pool, dim in (("max", 32), ("concat_mean", 128))]
    with pytest.raises(ValueError, match=r"were trained differently \(train.dim: 32 vs 128\)"):
        C.compare(runs, resamples=50)
    alike = [_run(tmp_path / "same", "ab", ["a", "b"], "max", seed, ids, _probs(rng, n, c, targets, 0.8), targets)
             for seed in range(3)]
    alike += [_run(tmp_path / "same", "ab_mean", ["a", "b"], "max", seed, ids, _probs(rng, n, c, targets, 0.7),
                   targets, collapse={"b": "mean"}) for seed in range(3)]
    assert C.compare(alike, resamples=50)["baseline"].str.startswith("collapsed").all()
