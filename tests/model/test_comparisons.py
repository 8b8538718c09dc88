"""Differences between table rows with CIs: the vectorised statistics against plain loops over
resamples, the pairing of rows, pooled cross-validation folds, and the CLI on trained runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model import comparisons as C
from model.metrics import binary_metrics, f1_scores
from model.runfiles import write_metrics, write_predictions


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


def test_multilabel_resamples_and_permutations_match_a_plain_loop():
    rng = np.random.default_rng(1)
    n, c, seeds, r = 150, 5, 2, 6
    targets = (rng.random((n, c)) < 0.35).astype(np.uint8)
    a = [_probs(rng, n, c, targets, 0.9) for _ in range(seeds)]
    b = [_probs(rng, n, c, targets, 0.7) for _ in range(seeds)]
    index = C.resample_indices(n, r, 0)
    swap = C.flips(n, r, 1)
    stats = C.multilabel_stats([C.label_counts(x, targets, 0.5) for x in a],
                               [C.label_counts(x, targets, 0.5) for x in b], C.bootstrap_weights(index, n), swap)
    f1 = lambda p, t, m: f1_scores(t, (p >= 0.5).astype(int))[m]  # noqa: E731
    for m in ("f1_micro", "f1_macro"):
        delta, boot, perm = stats[m]
        assert delta == pytest.approx(np.mean([f1(a[s], targets, m) - f1(b[s], targets, m) for s in range(seeds)]))
        for k in range(r):
            rows = index[k]
            want = np.mean([f1(a[s][rows], targets[rows], m) - f1(b[s][rows], targets[rows], m) for s in range(seeds)])
            assert boot[k] == pytest.approx(want)
            flip = swap[k].astype(bool)[:, None]
            want = np.mean([f1(np.where(flip, b[s], a[s]), targets, m) - f1(np.where(flip, a[s], b[s]), targets, m)
                            for s in range(seeds)])
            assert perm[k] == pytest.approx(want)


def test_binary_resamples_and_permutations_match_a_plain_loop():
    rng = np.random.default_rng(2)
    n, r = 120, 5
    y = (rng.random(n) < 0.4).astype(np.uint8)
    a = [np.round(_probs(rng, n, 1, y[:, None], 0.8)[:, 0], 2) for _ in range(2)]  # rounded: ties
    b = [np.round(_probs(rng, n, 1, y[:, None], 0.6)[:, 0], 2) for _ in range(2)]
    index, swap = C.resample_indices(n, r, 0), C.flips(n, r, 1)
    stats = C.binary_stats(a, b, y[:, None], (0.5, 0.5), index, swap)
    for m in ("accuracy", "auc"):
        delta, boot, perm = stats[m]
        assert delta == pytest.approx(np.mean([binary_metrics(y, p)[m] - binary_metrics(y, q)[m] for p, q in zip(a, b)]))
        for k in range(r):
            rows, flip = index[k], swap[k].astype(bool)
            want = np.mean([binary_metrics(y[rows], p[rows])[m] - binary_metrics(y[rows], q[rows])[m] for p, q in zip(a, b)])
            assert boot[k] == pytest.approx(want)
            want = np.mean([binary_metrics(y, np.where(flip, q, p))[m] - binary_metrics(y, np.where(flip, p, q))[m]
                            for p, q in zip(a, b)])
            assert perm[k] == pytest.approx(want)


def _run(root: Path, name: str, features: list[str], pool: str, seed: int, ids, probs, targets,
         fold=None, collapse=None, task="multilabel", threshold=None) -> Path:
    """A run folder as training writes it (predictions.h5 and metrics.json)."""
    out = root / name / pool / (f"seed{seed}" + (f"-fold{fold}" if fold is not None else ""))
    out.mkdir(parents=True)
    classes = [f"c{k}" for k in range(targets.shape[1])]
    write_predictions(out, ids, probs, targets, classes, task)
    scores = (binary_metrics(targets, probs) if task == "binary"
              else f1_scores(targets, (probs >= 0.5).astype(int)))
    write_metrics(out, {**scores, "metric_names": list(scores), "task": task, "pool": pool, "seed": seed,
                        "fold": fold, "features": features, "method": "concat" if pool == "concat" else "set",
                        "config": {"threshold": 0.5, "collapse": collapse or {}}}
                  | ({"threshold": threshold} if threshold is not None else {}))
    return out


@pytest.fixture
def grid(tmp_path):
    """Rows a, b (single), a+b max, a+b concat, a+b with b collapsed; 3 seeds, 400 test samples.
    a+b max is clearly better than concat; the collapsed row equals the set row."""
    rng = np.random.default_rng(3)
    n, c = 400, 4
    ids = [f"{k:04d}" for k in range(n)]
    targets = (rng.random((n, c)) < 0.4).astype(np.uint8)
    runs = []
    for seed in range(3):
        same = _probs(rng, n, c, targets, 0.9)
        plan = {("a", ("a",), "max"): 0.7, ("b", ("b",), "max"): 0.6, ("ab", ("a", "b"), "max"): 0.9,
                ("ab", ("a", "b"), "concat"): 0.65}
        for (name, feats, pool), skill in plan.items():
            probs = same if (name, pool) == ("ab", "max") else _probs(rng, n, c, targets, skill)
            runs.append(_run(tmp_path, name, list(feats), pool, seed, ids, probs, targets))
        runs.append(_run(tmp_path, "ab_mean", ["a", "b"], "max", seed, ids, same, targets, collapse={"b": "mean"}))
    return runs


def test_rows_are_paired_with_best_single_concat_and_collapsed(grid):
    frame = C.compare(grid, {"a": "A(i)", "b": "B(t)"}, resamples=300)
    assert list(frame.columns) == C.COLUMNS
    pairs = set(zip(frame["row"], frame["baseline"], frame["metric"]))
    for metric in ("f1_micro", "f1_macro"):
        assert ("A(i), B(t) (max)", "best single: A(i) (max)", metric) in pairs
        assert ("A(i), B(t) (concat)", "best single: A(i) (max)", metric) in pairs
        assert ("A(i), B(t) (max)", "concat: A(i), B(t) (concat)", metric) in pairs
        assert ("A(i), B(t) (max)", "collapsed: A(i), B(t) mean (max)", metric) in pairs
        assert ("A(i), B(t) mean (max)", "best single: A(i) (max)", metric) in pairs
    assert len(frame) == 2 * 5  # nothing else: single rows are baselines only
    assert (frame["seeds"] == 3).all() and (frame["samples"] == 400).all()
    assert ((frame["ci_low"] <= frame["delta"]) & (frame["delta"] <= frame["ci_high"])).all()
    vs_concat = frame[frame["baseline"].str.startswith("concat")]
    assert (vs_concat["ci_low"] > 0).all() and (vs_concat["p_value"] < 0.01).all()
    same = frame[frame["baseline"].str.startswith("collapsed")]  # identical predictions
    assert (same[["delta", "ci_low", "ci_high"]].abs().to_numpy() < 1e-12).all() and (same["p_value"] == 1).all()
    assert "**yes**" in C.to_markdown(frame)


def test_cross_validated_rows_pool_their_folds(tmp_path):
    rng = np.random.default_rng(4)
    n, folds = 90, 3
    y = (rng.random((n, 1)) < 0.5).astype(np.uint8)
    runs = []
    for seed in range(2):
        for name, feats, pool, skill in (("a", ["a"], "max", 0.6), ("ab", ["a", "b"], "max", 0.8),
                                         ("ab", ["a", "b"], "concat", 0.7)):
            probs = _probs(rng, n, 1, y, skill)
            for fold in range(folds):
                rows = np.arange(n)[np.arange(n) % folds == fold]
                runs.append(_run(tmp_path, name, feats, pool, seed, [f"{k:03d}" for k in rows], probs[rows],
                                 y[rows], fold=fold, task="binary"))
    frame = C.compare(runs, resamples=200)
    assert set(frame["metric"]) == {"accuracy", "auc"} and (frame["samples"] == n).all()
    assert (frame["seeds"] == 2).all()


def test_rows_testing_other_samples_are_refused(grid, tmp_path):
    other = _run(tmp_path / "x", "ab", ["a", "b"], "concat", 5, ["9999"], np.zeros((1, 4)),
                 np.zeros((1, 4), np.uint8))
    with pytest.raises(ValueError, match="test different samples"):
        C.compare([r for r in grid if "concat" not in str(r)] + [other], resamples=10)


def test_cli_writes_csv_and_markdown(grid, tmp_path):
    from model.__main__ import main

    out = tmp_path / "demo_comparisons.csv"
    assert main(["comparisons", "--runs", *map(str, grid), "--out", str(out), "--resamples", "100"]) == 0
    frame = pd.read_csv(out)
    assert list(frame.columns) == C.COLUMNS and len(frame) == 10
    assert "CI excludes 0" in out.with_suffix(".md").read_text()


def test_resamples_in_chunks_give_the_same_table(grid, monkeypatch):
    whole = C.compare(grid, resamples=400)
    monkeypatch.setattr(C, "CHUNK_ELEMENTS", 400 * 30)  # 30 resamples of 400 samples per chunk, redrawn per pair
    chunked = C.compare(grid, resamples=400)
    pd.testing.assert_frame_equal(whole.drop(columns=["ci_low", "ci_high", "p_value"]),
                                  chunked.drop(columns=["ci_low", "ci_high", "p_value"]))
    assert np.allclose(whole[["ci_low", "ci_high"]], chunked[["ci_low", "ci_high"]], atol=0.015)  # other draws
    assert (chunked[chunked["baseline"].str.startswith("concat")]["p_value"] < 0.01).all()
    chunks = C.resample_chunks(400, 200)
    assert [len(x) for x, _, _ in chunks] == [30] * 6 + [20]


def test_each_run_is_scored_at_its_own_recorded_threshold(tmp_path):
    """`threshold: dev` gives every run (seed, fold) its own threshold, recorded in metrics.json;
    the comparisons read it (they read config.threshold, 0.5, before)."""
    rng = np.random.default_rng(5)
    n, c = 300, 3
    ids = [f"{k:04d}" for k in range(n)]
    targets = (rng.random((n, c)) < 0.4).astype(np.uint8)
    cuts = {("ab", "max"): (0.3, 0.7), ("ab", "concat"): (0.6, 0.45)}
    probs, runs = {}, []
    for seed in range(2):
        for (name, pool), threshold in cuts.items():
            probs[name, pool, seed] = _probs(rng, n, c, targets, 0.8)
            runs.append(_run(tmp_path, name, ["a", "b"], pool, seed, ids, probs[name, pool, seed], targets,
                             threshold=threshold[seed]))
    frame = C.compare(runs, resamples=50)
    row = frame[frame["metric"] == "f1_micro"].iloc[0]
    want = np.mean([f1_scores(targets, probs["ab", "max", s] >= cuts["ab", "max"][s])["f1_micro"]
                    - f1_scores(targets, probs["ab", "concat", s] >= cuts["ab", "concat"][s])["f1_micro"]
                    for s in range(2)])
    assert row["delta"] == pytest.approx(want)
