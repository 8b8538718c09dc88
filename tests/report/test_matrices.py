"""Feature importance matrices (paper Figs. 2 and 3) from trained toy runs."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from model.__main__ import main as model_main
from model.runfiles import read_importance, read_metrics
from report.__main__ import main
from report.matrices import (choose_samples, label_names, load_combinations, modality_columns, predicted,
                            sample_matrix)
from tests.builders import make_toy

torch.set_num_threads(1)
FAST = ["--set", "epochs=4", "--set", "dim=8", "--set", "hidden=8", "--set", "batch_size=32",
        "--set", "lr=0.02", "--set", "warmup_epochs=1"]
LABELS = {"signal": "WSL(i)", "noise": "RoBERTa(t)", "tags": "IE(obj)"}
LABEL_ARGS = [a for name, label in LABELS.items() for a in ("--label", f"{name}={label}")]
PNG = b"\x89PNG\r\n\x1a\n"


def train(manifest: Path, stores: dict, features: list[str], pool: str, seed: int, out: Path,
          fold: int | None = None) -> Path:
    extra = ["--set", f"fold={fold}"] if fold is not None else []
    assert model_main(["train", "--manifest", str(manifest), *[f"--feature={f}={stores[f]}" for f in features],
                 "--pool", pool, "--seed", str(seed), "--out", str(out), *FAST, *extra]) == 0
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fim")
    manifest, stores = make_toy(root / "toy", n=180, classes=3)
    plan = {"signal": (["signal"], "max", 0), "noise": (["noise"], "max", 0),
            "pair": (["signal", "noise"], "max", 0), "pair1": (["signal", "noise"], "max", 1),
            "all": (["tags", "signal", "noise"], "max", 0),
            "pair_sum": (["signal", "noise"], "sum", 0), "pair_concat": (["signal", "noise"], "concat_mean", 0),
            "pair_per_modality": (["signal", "noise"], "max_per_modality", 0)}
    return {key: train(manifest, stores, f, pool, seed, root / "runs" / key) for key, (f, pool, seed) in plan.items()}


def importance_of(run: Path, sample_id: str) -> dict[str, float]:
    ids, importance, names = read_importance(run)
    return {LABELS[n]: float(v) for n, v in zip(names, importance[ids.index(sample_id)])}


def test_cli_writes_pngs_with_importance_values(runs, tmp_path) -> None:
    out = tmp_path / "figures" / "matrices"
    assert main(["matrices", "--runs", *map(str, runs.values()), "--out-dir", str(out),
                 "--samples", "3", *LABEL_ARGS]) == 0
    cells = pd.read_csv(out / "matrices.csv", dtype={"sample": str})
    chosen = [s for s in cells["sample"].unique() if s != "(mean)"]
    assert len(chosen) == 3
    for name in [*chosen, "overview", "samples"]:
        assert (out / f"{name}.png").read_bytes()[:8] == PNG
    # rows: the four max combinations (sum, per-modality and concat runs are not drawn), fewest first
    rows = cells[cells["sample"] == chosen[0]].drop_duplicates("row")
    assert rows["features"].tolist() == ["WSL(i)", "RoBERTa(t)", "WSL(i), RoBERTa(t)",
                                         "IE(obj), WSL(i), RoBERTa(t)"]
    assert (rows["seed"].astype(str) == "0").all()
    by_combo = {"WSL(i)": runs["signal"], "RoBERTa(t)": runs["noise"], "WSL(i), RoBERTa(t)": runs["pair"],
                "IE(obj), WSL(i), RoBERTa(t)": runs["all"]}
    for sample_id in chosen:
        for _, cell in cells[cells["sample"] == sample_id].iterrows():
            expected = importance_of(by_combo[cell["features"]], sample_id)
            if cell["modality"] in expected:
                assert cell["in_combination"] and cell["importance"] == pytest.approx(expected[cell["modality"]], abs=1e-6)
            else:  # masked: the modality is not part of the combination
                assert not cell["in_combination"] and np.isnan(cell["importance"])
    # predicted labels are the run's probabilities >= its threshold (chosen on dev)
    with h5py.File(runs["pair"] / "predictions.h5") as h5:
        ids = list(h5["ids"].asstr()[()])
        probs = h5["probabilities"][ids.index(chosen[0])]
        classes = list(h5["classes"].asstr()[()])
    row = cells[(cells["sample"] == chosen[0]) & (cells["features"] == "WSL(i), RoBERTa(t)")].iloc[0]
    shown = "" if pd.isna(row["predicted"]) else str(row["predicted"])
    threshold = read_metrics(runs["pair"])["threshold"]
    assert shown == "|".join(c for c, p in zip(classes, probs) if p >= threshold)
    mean = cells[(cells["sample"] == "(mean)") & (cells["features"] == "WSL(i)")].set_index("modality")
    assert mean.loc["WSL(i)", "importance"] == pytest.approx(1.0)  # the only modality wins every dim
    assert np.isnan(mean.loc["RoBERTa(t)", "importance"])


def test_sample_matrix_and_mask(runs) -> None:
    combos = load_combinations(list(runs.values()), LABELS, "max", seed=0)
    columns = modality_columns(combos)
    assert columns == ["IE(obj)", "WSL(i)", "RoBERTa(t)"]  # the largest combination's order
    sample_id = combos[0].ids[0]
    matrix = sample_matrix(combos, columns, sample_id)  # (4, 3)
    assert matrix.shape == (4, 3)
    assert np.isnan(matrix[0, [0, 2]]).all() and np.isnan(matrix[2, 0])  # not in the combination
    pair = importance_of(runs["pair"], sample_id)
    assert matrix[2, 1:] == pytest.approx([pair["WSL(i)"], pair["RoBERTa(t)"]], abs=1e-6)
    assert np.nansum(matrix[3]) in (pytest.approx(1.0, abs=1e-5), 0.0)  # shares (or an empty set)


def test_choice_is_deterministic_and_spread(runs) -> None:
    combos = load_combinations(list(runs.values()), LABELS, "max", seed=0)
    columns = modality_columns(combos)
    first = choose_samples(combos, columns, 4)
    assert first == choose_samples(combos, columns, 4) and len(set(first)) == 4
    assert all(c.row(s) is not None for c in combos for s in first)  # in every combination
    with h5py.File(runs["all"] / "predictions.h5") as h5:
        ids = list(h5["ids"].asstr()[()])
        targets = h5["targets"][()]
    labels = {tuple(targets[ids.index(s)]) for s in first}
    assert len(labels) > 1  # not all the same label set
    # most modalities present: the chosen samples have the signal row (the only sometimes-absent one)
    with h5py.File(Path(runs["all"]).parents[1] / "toy" / "signal.h5") as h5:
        counts = dict(zip(h5["ids"].asstr()[()], np.diff(h5["offsets"][()])))
    assert all(counts[s] > 0 for s in first)


def test_explicit_ids_seed_and_errors(runs, tmp_path) -> None:
    ids, _, _ = read_importance(runs["pair"])
    out = tmp_path / "picked"
    assert main(["matrices", "--runs", *map(str, runs.values()), "--out-dir", str(out), "--ids", ids[5],
                 "--seed", "1", *LABEL_ARGS]) == 0
    assert (out / f"{ids[5]}.png").read_bytes()[:8] == PNG
    cells = pd.read_csv(out / "matrices.csv", dtype={"sample": str})
    seeds = cells[cells["sample"] == ids[5]].drop_duplicates("row").set_index("features")["seed"]
    assert str(seeds["WSL(i), RoBERTa(t)"]) == "1" and str(seeds["WSL(i)"]) == "0"  # falls back to its only seed
    pair1 = importance_of(runs["pair1"], ids[5])
    cell = cells[(cells["sample"] == ids[5]) & (cells["features"] == "WSL(i), RoBERTa(t)")
                 & (cells["modality"] == "RoBERTa(t)")].iloc[0]
    assert cell["importance"] == pytest.approx(pair1["RoBERTa(t)"], abs=1e-6)
    assert main(["matrices", "--runs", *map(str, runs.values()), "--out-dir", str(out), "--ids", "nope"]) == 2
    assert main(["matrices", "--runs", str(runs["pair_concat"]), "--out-dir", str(out)]) == 2


def test_folds_are_merged(tmp_path) -> None:
    manifest, stores = make_toy(tmp_path / "toy", n=90, classes=1, folds=3)
    runs = [train(manifest, stores, ["signal", "noise"], "max", 0, tmp_path / f"fold{k}", fold=k)
            for k in range(3)]
    combos = load_combinations(runs, {}, "max", seed=0)
    assert len(combos) == 1 and sorted(combos[0].ids) == [f"{k:05d}" for k in range(90)]
    out = tmp_path / "fim"
    assert main(["matrices", "--runs", *map(str, runs), "--out-dir", str(out), "--samples", "2"]) == 0
    assert len(list(out.glob("0*.png"))) == 2


def test_predicted_labels_use_the_threshold(runs) -> None:
    combos = load_combinations([runs["pair"]], LABELS, "max", seed=0)
    combo = combos[0]
    sample_id = combo.ids[3]
    combo.probabilities[3] = [0.7, 0.2, 0.5]  # (C,) in the run's class order
    assert combo.thresholds[3] == read_metrics(runs["pair"])["threshold"]  # the run's, chosen on dev
    combo.thresholds[3] = 0.5
    assert predicted(combo, sample_id) == [combo.classes[0], combo.classes[2]]
    combo.thresholds[3] = 0.45
    assert predicted(combo, sample_id) == [combo.classes[0], combo.classes[2]]
    combo.thresholds[3] = 0.55
    assert predicted(combo, sample_id) == [combo.classes[0]]
    assert label_names(["parallel"], np.array([False]), "binary") == ["not parallel"]
    assert label_names(["a", "b"], np.array([False, False]), "multilabel") == []
