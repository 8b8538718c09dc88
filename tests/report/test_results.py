"""Tables (mean/std over seeds, csv + md) and the importance figure from run folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.manifest import write_manifest
from model.runfiles import write_importance, write_metrics, write_predictions
from report.__main__ import main
from report.importance import importance_groups
from report.results import summarise
from report.runs import read_runs, run_frame

MULTI = ["f1_micro", "f1_macro", "f1_samples", "f1_weighted", "map"]


def fake_run(root: Path, features: list[str], pool: str, seed: int, f1: float, fold=None,
             importance: np.ndarray | None = None) -> Path:
    run = root / f"{'+'.join(features)}_{pool}_{seed}_{fold}"
    run.mkdir(parents=True)
    metrics = {m: f1 for m in MULTI}
    metrics.update({"metric_names": MULTI, "features": features, "pool": pool, "seed": seed, "fold": fold})
    write_metrics(run, metrics)
    if importance is not None:
        write_importance(run, [str(i) for i in range(len(importance))], importance,
                         np.ones(len(importance)), features, pool)
    return run


@pytest.fixture
def runs(tmp_path) -> list[Path]:
    imp = np.array([[0.75, 0.25], [0.5, 0.5], [0.0, 0.0]])  # last sample: empty set
    return [
        fake_run(tmp_path, ["image", "text"], "max", 0, 0.60, importance=imp),
        fake_run(tmp_path, ["image", "text"], "max", 1, 0.64, importance=imp[::-1] * [[1, 1]]),
        fake_run(tmp_path, ["image", "text"], "concat_mean", 0, 0.58),
        fake_run(tmp_path, ["image", "text"], "concat_mean", 1, 0.56),
        fake_run(tmp_path, ["image", "text"], "max_per_modality", 0, 0.55),
        fake_run(tmp_path, ["image", "text"], "concat_padded", 0, 0.54),
        fake_run(tmp_path, ["text"], "max", 0, 0.50, importance=np.ones((2, 1))),
        fake_run(tmp_path, ["text"], "max", 1, 0.52, importance=np.ones((2, 1))),
    ]


def test_table_mean_std_over_seeds(runs, tmp_path) -> None:
    out = tmp_path / "tables" / "demo_table.csv"
    assert main(["table", "--runs", *map(str, runs), "--out", str(out),
                 "--label", "image=WSL(i)", "--label", "text=RoBERTa(t)"]) == 0
    table = pd.read_csv(out)
    assert list(table.columns[:4]) == ["Method", "Modalities", "Features", "Pool"]
    assert table["Modalities"].tolist() == ["text"] + ["image+text"] * 4  # 1 modality first
    # then best metric first; Method from the pool name, Pool the set pool inside
    assert table["Method"].tolist() == ["set", "set", "concat mean", "set per modality", "concat padded"]
    assert table["Pool"].tolist() == ["max", "max", "mean", "max", "-"]
    row = table.iloc[1]
    assert row["Features"] == "WSL(i), RoBERTa(t)" and row["Method"] == "set"
    assert row["f1_micro"] == pytest.approx(0.62) and row["f1_micro_std"] == pytest.approx(np.std([0.6, 0.64], ddof=1), abs=1e-6)
    assert row["seeds"] == 2
    md = out.with_suffix(".md").read_text()
    assert "| Method | Modalities | Features | Pool | f1_micro |" in md
    assert "0.6200 ± 0.0283" in md


def test_unscorable_classes_are_noted_under_the_table(tmp_path) -> None:
    """A class without a test positive, and one seen once, counted as F1 = 0 silently before."""
    manifest = tmp_path / "manifest.csv"
    write_manifest(pd.DataFrame({"id": list("abcdef"), "split": ["train"] * 3 + ["test"] * 3, "image": "",
                                 "text": "x", "labels": ["cat|owl", "dog|rare", "cat|owl", "cat", "dog", "dog"]}),
                   manifest)
    run_dirs = []
    for seed in (0, 1):
        run = fake_run(tmp_path, ["text"], "max", seed, 0.5)
        metrics = json.loads((run / "metrics.json").read_text())
        write_metrics(run, {**metrics, "manifest": str(manifest)})
        targets = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0]])  # cat, dog, owl, rare
        write_predictions(run, list("def"), np.full((3, 4), 0.5, np.float32), targets, ["cat", "dog", "owl", "rare"],
                          "multilabel")
        run_dirs.append(run)
    out = tmp_path / "t.csv"
    assert main(["table", "--runs", *map(str, run_dirs), "--out", str(out)]) == 0
    md = out.with_suffix(".md").read_text()
    assert "Classes that cannot be scored (each counts as F1 = 0 in the macro averages" in md
    assert "- owl: no positive in the test split\n" in md
    assert "- rare: no positive in the test split; seen once\n" in md
    assert "cat" not in md.split("cannot be scored")[1]


def test_folds_are_averaged_per_seed(tmp_path) -> None:
    runs = [fake_run(tmp_path, ["image"], "sum", seed, f1, fold=fold)
            for seed, fold, f1 in [(0, 0, 0.5), (0, 1, 0.7), (1, 0, 0.7), (1, 1, 0.9)]]
    frame, metrics = run_frame(read_runs(runs))
    table = summarise(frame, metrics)
    assert table.loc[0, "f1_micro"] == pytest.approx(0.7)
    assert table.loc[0, "f1_micro_std"] == pytest.approx(np.std([0.6, 0.8], ddof=1))
    assert table.loc[0, "seeds"] == 2 and table.loc[0, "runs"] == 4


def test_importance_figure(runs, tmp_path) -> None:
    groups = importance_groups(runs)
    pair = next(g for g in groups if g["modalities"] == ["image", "text"])
    # run means over non-empty samples: [0.625, 0.375] and (reversed rows) the same
    assert pair["mean"] == pytest.approx([0.625, 0.375]) and len(pair["runs"]) == 2
    out = tmp_path / "fig.png"
    assert main(["figure", "--runs", *map(str, runs), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["figure", "--runs", str(runs[2]), "--out", str(tmp_path / "none.png")]) == 2


def test_importance_figure_with_removal_effects_beside(runs, tmp_path) -> None:
    from report.importance import removal_shares
    from report.robustness import Removal, write_removal

    pair = next(g for g in importance_groups(runs) if g["modalities"] == ["image", "text"])
    effects = [Removal(str(run), ["a", "b"], ["image", "text"], np.array([[0.3, 0.1], [0.0, 0.0]], np.float32),
                       np.zeros((2, 2), np.float32)) for run in pair["dirs"]]
    path = write_removal(tmp_path / "r_removal.h5", effects)
    mean, std = removal_shares(pair, {e.run: e for e in effects})
    assert mean == pytest.approx([0.75, 0.25]) and std == pytest.approx([0, 0])  # over samples that change
    out = tmp_path / "fig.png"
    assert main(["figure", "--runs", *map(str, runs), "--out", str(out), "--removal", str(path)]) == 0
    plain = tmp_path / "plain.png"
    assert main(["figure", "--runs", *map(str, runs), "--out", str(plain)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.read_bytes() != plain.read_bytes()


def with_settings(run: Path, **changes) -> Path:
    """The fake run's metrics.json with `changes` merged in (config, stores, lr, threshold)."""
    metrics = json.loads((run / "metrics.json").read_text())
    write_metrics(run, {**metrics, **changes})
    return run


def test_table_refuses_runs_of_one_row_that_differ_in_lr(tmp_path, capsys) -> None:
    """Two image+text/max/seed0 runs trained with lr 1e-3 and 1e-2 came out as one row, "seeds 1,
    runs 2", no std."""
    config = {"lr": 0.001, "threshold": 0.5, "dim": 32, "fold": None, "feature_device": "auto"}
    a = with_settings(fake_run(tmp_path / "a", ["image", "text"], "max", 0, 0.6), config=config)
    b = with_settings(fake_run(tmp_path / "b", ["image", "text"], "max", 0, 0.7), config={**config, "lr": 0.01})
    out = tmp_path / "t.csv"
    assert main(["table", "--runs", str(a), str(b), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "table row image, text (max, set) would average different experiments" in error
    assert "train.lr: 0.001 vs 0.01" in error and not out.exists()
    for command in (["comparisons"], ["paper-table", "--paper", "imdb"]):
        assert main([*command, "--runs", str(a), str(b), "--out", str(out)]) == 2
        assert "would average different experiments" in capsys.readouterr().err
    # runtime options do not define the experiment; a repeated seed is refused as such
    c = with_settings(fake_run(tmp_path / "c", ["image", "text"], "max", 1, 0.7),
                      config={**config, "fold": None, "feature_device": "host"})
    assert main(["table", "--runs", str(a), str(c), "--out", str(out)]) == 0
    d = with_settings(fake_run(tmp_path / "d", ["image", "text"], "max", 0, 0.7), config=config)
    assert main(["table", "--runs", str(a), str(d), "--out", str(out)]) == 2
    assert "are both seed 0; pass each run once" in capsys.readouterr().err


def test_table_refuses_runs_whose_stores_were_extracted_differently(tmp_path) -> None:
    from report.runs import Run, check_experiments

    store = {"path": "a/image.h5", "extractor": "image", "backend": "timm", "dim": 512, "model": "resnet18",
             "config": json.dumps({"model": "resnet18", "batch_size": 16})}
    runs = []
    for seed, options in ((0, {"model": "resnet18", "batch_size": 16}), (1, {"model": "resnet18", "batch_size": 64}),
                          (2, {"model": "resnet18", "full": True, "batch_size": 16})):
        runs.append((f"run{seed}", {"features": ["image"], "pool": "max", "seed": seed, "method": "set",
                                    "stores": {"image": {**store, "path": f"s{seed}/image.h5",
                                                         "config": json.dumps(options)}}}))
    runs = [Run.of(run_dir, metrics) for run_dir, metrics in runs]
    check_experiments(runs[:2])  # another batch size or store path: the same features
    with pytest.raises(ValueError, match=r"store.image.config: \{'model': 'resnet18'\} vs \{'model': 'resnet18', 'full': True\}"):
        check_experiments(runs)


def test_table_shows_lr_and_thresholds_used(tmp_path) -> None:
    auto = {"lr": "auto", "lr_candidates": "1e-3,1e-2", "threshold": "dev"}
    runs = [with_settings(fake_run(tmp_path, ["text"], "max", seed, 0.5), config=auto, lr=lr, threshold=t)
            for seed, lr, t in ((0, 0.01, 0.35), (1, 0.001, 0.4), (2, 0.01, 0.35))]
    runs.append(with_settings(fake_run(tmp_path, ["image"], "max", 0, 0.4), config={"lr": 0.001, "threshold": 0.5}))
    out = tmp_path / "t.csv"
    assert main(["table", "--runs", *map(str, runs), "--out", str(out)]) == 0
    table = pd.read_csv(out).set_index("Modalities")
    assert table.loc["text", "lr"] == "auto: 0.001, 0.01" and table.loc["text", "threshold"] == "dev: 0.35, 0.4"
    assert str(table.loc["image", "lr"]) == "0.001" and str(table.loc["image", "threshold"]) == "0.5"
    md = out.with_suffix(".md").read_text()
    assert "| lr | seeds |" in md and "| auto: 0.001, 0.01 | 3 |" in md
    assert "Decision threshold on the predicted probabilities" in md and "- text (max, set): dev: 0.35, 0.4" in md
