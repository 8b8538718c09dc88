"""Missing-modality robustness of trained toy runs: intact reproduces the run, removal hurts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from model.__main__ import main as model_main
from model.runfiles import read_importance, read_metrics
from report.__main__ import main
from report.removal import read_removal, removal_path
from report.robustness import conditions, emptied, removal_effects, score_runs, summarise, write_robustness
from tests.builders import make_toy

torch.set_num_threads(1)
FAST = ["epochs=20", "dim=8", "hidden=8", "batch_size=32", "lr=0.02", "warmup_epochs=1"]
LABELS = {"signal": "WSL(i)", "noise": "RoBERTa(t)", "tags": "IE(obj)", "tags:cnn": "CNN-text(obj)"}
PNG = b"\x89PNG\r\n\x1a\n"


def train(manifest: Path, stores: dict, features: list[str], pool: str, seed: int, out: Path,
          extra: list[str] = ()) -> Path:
    sets = [a for option in [*FAST, *extra] for a in ("--set", option)]
    assert model_main(["train", "--manifest", str(manifest), *[f"--feature={f}={stores[f]}" for f in features],
                 "--pool", pool, "--seed", str(seed), "--out", str(out), *sets]) == 0
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("robust")
    manifest, stores = make_toy(root / "toy", n=360, classes=2, missing=0.0)
    plan = {"max0": (["signal", "noise"], "max", 0, []), "max1": (["signal", "noise"], "max", 1, []),
            "concat0": (["signal", "noise", "tags"], "concat_padded", 0, []),
            "permod0": (["signal", "noise", "tags"], "max_per_modality", 0, []),
            "cnn0": (["signal", "tags"], "mean", 0, ["encoder.tags=cnn", "max_elements.tags=2"]),
            "single": (["signal"], "max", 0, [])}
    return {key: train(manifest, stores, f, pool, seed, root / "runs" / key, extra)
            for key, (f, pool, seed, extra) in plan.items()}


def test_conditions_and_emptied_tables() -> None:
    names = [name for name, _ in conditions(["a", "b", "c"])]
    assert names == ["intact", "without a", "without b", "without c", "only a", "only b", "only c"]
    assert dict(conditions(["a", "b"]))["only b"] == [False, True]
    from model.inputs import FeatureInfo, FeatureTable

    table = FeatureTable(FeatureInfo("x", "dense", 3), torch.tensor([0, 2, 2, 5]), torch.ones(5, 3))
    empty = emptied(table)
    assert empty.counts.tolist() == [0, 0, 0] and empty.values.shape == (0, 3)


def test_intact_reproduces_each_run_and_removal_hurts(runs) -> None:
    chosen = [runs[k] for k in ("max0", "max1", "concat0", "permod0", "cnn0", "single")]
    frame = score_runs(chosen, LABELS)
    assert str(runs["single"]) not in set(frame["run"])  # one feature: nothing to remove
    for run in chosen[:-1]:
        rows = frame[frame["run"] == str(run)].set_index("condition")
        metrics = read_metrics(run)
        for metric in ("f1_micro", "f1_macro"):
            assert rows.loc["intact", metric] == pytest.approx(metrics[metric], abs=1e-9)
        assert metrics["f1_micro"] > 0.75  # the signal feature was learnt
        # the labels live in `signal` only: without it the score drops
        assert rows.loc["without WSL(i)", "f1_micro"] < metrics["f1_micro"] - 0.15
        if metrics["pool"] != "mean":  # signal alone keeps most of it (the mean pool
            # run sees its set size halve, a shift this table is there to show)
            assert rows.loc["only WSL(i)", "f1_micro"] > rows.loc["without WSL(i)", "f1_micro"] + 0.1
    cnn = frame[frame["run"] == str(runs["cnn0"])]
    assert set(cnn["condition"]) == {"intact", "without WSL(i)", "without CNN-text(obj)",
                                     "only WSL(i)", "only CNN-text(obj)"}

    table, metric_cols = summarise(frame)
    assert metric_cols == ["f1_micro", "f1_macro"]
    pair = table[(table["pool"] == "max")].set_index("condition")
    assert pair.loc["intact", "seeds"] == 2 and pair.loc["intact", "delta"] == 0
    per_run = frame[frame["pool"] == "max"].pivot(index="seed", columns="condition", values="f1_micro")
    deltas = per_run["without WSL(i)"] - per_run["intact"]
    assert pair.loc["without WSL(i)", "delta"] == pytest.approx(deltas.mean())
    assert pair.loc["without WSL(i)", "delta_std"] == pytest.approx(deltas.std(ddof=1))
    assert pair.loc["without WSL(i)", "intact"] == pytest.approx(per_run["intact"].mean())
    assert pair.loc["without WSL(i)", "f1_micro"] == pytest.approx(per_run["without WSL(i)"].mean())


def test_writes_csv_md_and_heatmap(runs, tmp_path) -> None:
    csv, md, png = write_robustness([runs["max0"], runs["concat0"], runs["permod0"], runs["single"]],
                                    tmp_path / "r.csv", LABELS)
    table = pd.read_csv(csv)
    assert list(table.columns[:4]) == ["combination", "modalities", "pool", "condition"]
    for column in ("f1_micro", "f1_micro_std", "f1_macro", "intact", "delta", "delta_std", "seeds", "runs"):
        assert column in table.columns
    assert table["combination"].iloc[0] == "WSL(i), RoBERTa(t)"  # fewest features first
    assert set(table["pool"]) == {"max", "concat padded", "max per modality"} and len(table) == 5 + 7 + 7
    assert "| WSL(i), RoBERTa(t) | max | without WSL(i) |" in md.read_text()
    assert png.read_bytes()[:8] == PNG


def test_cli(runs, tmp_path) -> None:
    out = tmp_path / "cli" / "demo_robustness.csv"
    assert main(["robustness", "--runs", str(runs["max0"]), str(runs["max1"]), "--out", str(out),
                 "--label", "signal=WSL(i)"]) == 0
    table = pd.read_csv(out)
    assert table["condition"].tolist() == ["intact", "without WSL(i)", "without noise", "only WSL(i)", "only noise"]
    assert (table["seeds"] == 2).all() and out.with_suffix(".png").exists() and out.with_suffix(".md").exists()
    assert main(["robustness", "--runs", str(runs["single"]), "--out", str(out)]) == 2


def test_scoring_apart_from_labelling_gives_the_one_step_tables(runs, tmp_path) -> None:
    """The pipeline scores once (`robustness-scores`, no labels) and labels apart (`robustness
    --scored`), so a change of display labels reruns only the labelling; the files are the same
    as one `robustness --runs` call's."""
    chosen = [str(runs[k]) for k in ("max0", "max1", "concat0", "cnn0")]
    whole, apart = tmp_path / "whole" / "r.csv", tmp_path / "apart" / "r.csv"
    assert main(["robustness", "--runs", *chosen, "--out", str(whole), "--label", "signal=WSL(i)"]) == 0
    assert main(["robustness-scores", "--runs", *chosen, "--out", str(apart)]) == 0
    scores = pd.read_csv(apart.with_name("r_scores.csv"))
    assert not scores.isin(["WSL(i)", "without WSL(i)"]).any().any()  # no label in the scores
    assert main(["robustness", "--scored", "--out", str(apart), "--label", "signal=WSL(i)"]) == 0
    for name in ("r.csv", "r.md", "r_views.csv"):
        assert (apart.parent / name).read_text() == (whole.parent / name).read_text(), name
    # another label: only the labelling runs again, from the same scores
    assert main(["robustness", "--scored", "--out", str(apart), "--label", "signal=Signal"]) == 0
    assert "| Signal, noise | max | without Signal |" in apart.with_suffix(".md").read_text()
    assert main(["robustness", "--out", str(apart)]) == 2  # neither --runs nor --scored


def test_errors_say_what_to_pass(runs, tmp_path) -> None:
    with pytest.raises(ValueError, match="multi-feature"):
        score_runs([runs["single"]])
    with pytest.raises(FileNotFoundError, match="train the run first"):
        score_runs([tmp_path / "nothing"])


def test_binary_folds_are_averaged_per_seed(tmp_path) -> None:
    manifest, stores = make_toy(tmp_path / "toy", n=240, classes=1, missing=0.0, folds=3)
    runs = [train(manifest, stores, ["signal", "noise"], "max", seed, tmp_path / f"s{seed}f{fold}", [f"fold={fold}"])
            for seed in (0, 1) for fold in (0, 1)]
    frame = score_runs(runs)
    for run in runs:
        rows = frame[frame["run"] == str(run)].set_index("condition")
        assert rows.loc["intact", "accuracy"] == pytest.approx(read_metrics(run)["accuracy"], abs=1e-9)
    table, metric_cols = summarise(frame)
    assert metric_cols == ["accuracy", "auc"]
    intact = table.set_index("condition").loc["intact"]
    assert intact["runs"] == 4 and intact["seeds"] == 2
    per_seed = frame[frame["condition"] == "intact"].groupby("seed")["accuracy"].mean()
    assert intact["accuracy"] == pytest.approx(per_seed.mean())
    assert intact["accuracy_std"] == pytest.approx(per_seed.std(ddof=1))


def test_removal_effect_per_sample_and_modality() -> None:
    intact = np.array([[0.9, 0.2], [0.5, 0.5]])
    without = [np.array([[0.1, 0.2], [0.5, 0.5]]), np.array([[0.9, 0.4], [0.5, 0.5]])]
    targets = np.array([[1.0, 0.0], [0.0, 1.0]])
    prob, loss = removal_effects(intact, without, targets)
    np.testing.assert_allclose(prob, [[0.4, 0.1], [0.0, 0.0]], atol=1e-6)
    bce = lambda p, t: -np.mean(t * np.log(p) + (1 - t) * np.log(1 - p))  # noqa: E731
    want = bce(np.array([0.1, 0.2]), targets[0]) - bce(intact[0], targets[0])
    assert loss[0, 0] == pytest.approx(want, rel=1e-5) and loss[0, 0] > 0 and loss[1, 0] == 0


def test_two_views_of_importance_are_written(runs, tmp_path) -> None:
    out = tmp_path / "views" / "r.csv"
    write_robustness([runs["max0"], runs["max1"], runs["concat0"]], out, LABELS)
    removal = read_removal(removal_path(out))
    item = removal[str(runs["max0"])]
    ids = read_importance(runs["max0"])[0]
    assert item.ids == ids and item.modalities == ["signal", "noise"] and item.prob.shape == (len(ids), 2)
    # the labels live in `signal`: removing it moves the probabilities more and raises the loss
    assert item.prob[:, 0].mean() > 2 * item.prob[:, 1].mean() and item.loss[:, 0].mean() > 0.05
    np.testing.assert_allclose(item.share.sum(1)[item.prob.sum(1) > 0], 1, atol=1e-5)
    table = pd.read_csv(out.with_name("r_views.csv")).set_index(["pool", "modality"])
    assert table.loc[("max", "WSL(i)"), "runs"] == 2
    assert table.loc[("max", "WSL(i)"), "removal_share"] > table.loc[("max", "RoBERTa(t)"), "removal_share"]
    assert 0 < table.loc[("max", "WSL(i)"), "importance"] <= 1  # the argmax share beside it
    assert "Two views of importance" in out.with_suffix(".md").read_text()
