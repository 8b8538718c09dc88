"""Our rows beside the paper's Tables 2 and 3: matching, differences, units, layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from extract.store import RaggedStore, write_store
from model.__main__ import main as model_main
from model.metrics import roc_auc
from model.runfiles import read_predictions, write_metrics, write_predictions
from report.__main__ import main
from report.paper_table import NO_RECORD, build_table, to_markdown
from tests.builders import make_toy

torch.set_num_threads(1)
IMDB_LABELS = ["--label", "image=WSL(i)", "--label", "text=RoBERTa(t)", "--label", "boxes=WSL(bbox)"]
LABELS = {"image": "WSL(i)", "text": "RoBERTa(t)", "boxes": "WSL(bbox)"}
FAST = ["--set", "epochs=2", "--set", "dim=8", "--set", "hidden=8", "--set", "batch_size=64"]
CUTS = {0: 0.5, 1: 0.65}  # decision threshold per fold (chosen on each run's dev split)


def fake_run(root: Path, features: list[str], pool: str, seed: int, values: dict[str, float],
             fold=None, stores: dict[str, str] | None = None) -> Path:
    run = root / f"{'+'.join(features)}_{pool}_{seed}_{fold}"
    run.mkdir(parents=True)
    metrics = dict(values)
    metrics.update({"metric_names": list(values), "features": features, "pool": pool, "seed": seed,
                    "fold": fold,
                    "feature_stores": stores or {}})
    write_metrics(run, metrics)
    return run


def store(path: Path, attrs: dict[str, str]) -> str:
    """A real (tiny) feature store with the given attrs, as the extractors write them."""
    ragged = RaggedStore(ids=["a", "b"], offsets=np.array([0, 1, 2]),
                         rows={"features": np.ones((2, 4), dtype=np.float32)},
                         attrs={"extractor": "image", "backend": "x", "dim": 4, **attrs})
    write_store(path, ragged)
    return str(path)


def f1(value: float) -> dict[str, float]:
    return {"f1_micro": value, "f1_macro": value - 0.1, "f1_samples": value + 0.01, "map": 0.5}


@pytest.fixture
def imdb_runs(tmp_path) -> list[Path]:
    return [
        fake_run(tmp_path, ["text", "image"], "max", 0, f1(0.60)),  # order differs from the paper's
        fake_run(tmp_path, ["text", "image"], "max", 1, f1(0.64)),
        fake_run(tmp_path, ["image", "text"], "concat_mean", 0, f1(0.58)),
        fake_run(tmp_path, ["image", "text"], "max_per_modality", 0, f1(0.57)),
        fake_run(tmp_path, ["image"], "max", 0, f1(0.50)),  # paper row has no pool
        fake_run(tmp_path, ["text"], "sum", 0, f1(0.66)),  # paper row says max
        fake_run(tmp_path, ["image", "boxes"], "max", 0, f1(0.45)),  # not in the paper
    ]


def test_imdb_rows_match_the_paper(imdb_runs, tmp_path) -> None:
    out = tmp_path / "results" / "imdb_table.csv"
    assert main(["paper-table", "--runs", *map(str, imdb_runs), "--paper", "imdb", "--out", str(out),
                 *IMDB_LABELS]) == 0
    table = pd.read_csv(out)
    table[["Features", "Pool"]] = table[["Features", "Pool"]].fillna("")
    paper = table[table["source"] == "paper"]
    ours = table[table["source"] == "dmms"]
    assert len(paper) == 24 and {"GMU [1]", "Kiela et al. 2018 [12]", "MFAS [26]", "MMBT [11]"} <= set(paper["Method"])
    assert paper.iloc[0]["f1_micro"] == pytest.approx(0.63)  # prior work kept with its numbers

    pair = ours[(ours["Features"] == "RoBERTa(t), WSL(i)") & (ours["Pool"] == "max")].iloc[0]
    assert pair["paper_f1_micro"] == pytest.approx(0.6623)
    assert pair["f1_micro"] == pytest.approx(0.62)
    assert pair["diff_f1_micro"] == pytest.approx(0.62 - 0.6623)
    assert pair["diff_f1_macro"] == pytest.approx(0.52 - 0.5961)
    assert pair["f1_micro_std"] == pytest.approx(np.std([0.60, 0.64], ddof=1), abs=1e-6)
    assert pair["seeds"] == 2
    # placed right after its paper row
    position = table.index[(table["source"] == "dmms") & (table["Features"] == "RoBERTa(t), WSL(i)")
                           & (table["Pool"] == "max")][0]
    assert table.loc[position - 1, "Features"] == "WSL(i), RoBERTa(t)" and table.loc[position - 1, "Pool"] == "max"

    single_image = ours[ours["Features"] == "WSL(i)"].iloc[0]
    assert single_image["paper_f1_micro"] == pytest.approx(0.5253)
    assert single_image["diff_f1_micro"] == pytest.approx(0.50 - 0.5253)
    single_text = ours[ours["Features"] == "RoBERTa(t)"].iloc[0]  # our sum vs the paper's max row
    assert single_text["paper_f1_micro"] == pytest.approx(0.6699)

    for method in ("concat mean", "set per modality"):  # only `set` rows are the paper's model
        other = ours[ours["Method"] == method].iloc[0]
        assert np.isnan(other["diff_f1_micro"]) and pd.isna(other["paper_row"])
    unmatched = ours[ours["Features"] == "WSL(i), WSL(bbox)"].iloc[0]
    assert np.isnan(unmatched["paper_f1_micro"]) and unmatched["f1_micro"] == pytest.approx(0.45)
    assert len(ours) == 6

    md = out.with_suffix(".md").read_text()
    assert "| Source | Method | Modalities | Features | Pool | F1-Micro | F1-Macro | F1-Samples | Seeds |" in md
    assert "0.6200 ± 0.0283 (Δ -0.0423)" in md
    assert "| paper | MMBT [11] | img+txt | - | - | 0.6640 | 0.6110 | - |  |" in md


def test_labels_must_map_to_match(imdb_runs) -> None:
    table = build_table(imdb_runs, "imdb")  # no labels: feature names are not paper labels
    ours = table[table["source"] == "dmms"]
    assert ours["paper_row"].isna().all() and len(ours) == 6
    assert len(table) == 24 + 6


def test_ads_folds_and_percent(tmp_path) -> None:
    keys = ["accuracy", "auc", "accuracy_non_parallel", "accuracy_parallel_equivalent",
            "accuracy_parallel_non_equivalent"]
    rng = np.random.default_rng(0)
    ids = np.array([f"ad_{k:03d}" for k in range(40)])
    targets = (rng.random(40) < 0.6).astype(np.uint8)
    runs, pooled = [], {0: [], 1: []}
    for seed, fold, value in [(0, 0, 0.5), (0, 1, 0.7), (1, 0, 0.7), (1, 1, 0.9)]:
        run = fake_run(tmp_path, ["image"], "max", seed, {k: value for k in keys}, fold=fold)
        metrics = json.loads((run / "metrics.json").read_text())
        write_metrics(run, {**metrics, "threshold": CUTS[fold]})  # each fold's run chose its own on dev
        rows = np.arange(fold, 40, 2)  # fold 0: even ads, fold 1: odd ads
        probs = np.clip(targets[rows] * 0.3 + rng.random(len(rows)) * 0.7, 0, 1)[:, None]
        write_predictions(run, ids[rows].tolist(), probs, targets[rows, None], ["parallel"], "binary")
        pooled[seed].append((targets[rows], probs[:, 0], np.full(len(rows), CUTS[fold])))
        runs.append(run)
    table = build_table(runs, "ads", {"image": "WSL(i)"})
    row = table[table["source"] == "dmms"].iloc[0]
    assert row["accuracy"] == pytest.approx(70.0)  # percent, folds averaged within a seed
    assert row["accuracy_std"] == pytest.approx(100 * np.std([0.6, 0.8], ddof=1))
    assert row["paper_accuracy"] == pytest.approx(57.726)
    assert row["diff_accuracy"] == pytest.approx(70.0 - 57.726)
    assert row["diff_parallel_equiv"] == pytest.approx(70.0 - 76.103)
    assert row["seeds"] == 2 and row["runs"] == 4
    assert table.iloc[0]["Method"] == "Zhang et al. 2018 [34]"
    # pooled out-of-fold: each seed's two folds scored together over all 40 ads, then over seeds
    per_seed = []
    for seed in (0, 1):
        y, p, cut = (np.concatenate(part) for part in zip(*pooled[seed]))
        per_seed.append((np.mean((p >= cut) == y), roc_auc(y, p)))
    acc, auc = np.array(per_seed).T
    assert row["oof_accuracy"] == pytest.approx(100 * acc.mean())
    assert row["oof_auc"] == pytest.approx(100 * auc.mean())
    assert row["oof_auc_std"] == pytest.approx(100 * np.std(auc, ddof=1))
    assert row["oof_samples"] == 40
    assert np.isnan(table[table["source"] == "paper"]["oof_auc"]).all()


def test_oof_refuses_a_fold_given_twice(tmp_path) -> None:
    runs = []
    for k, fold in enumerate((0, 0)):
        run = fake_run(tmp_path / str(k), ["image"], "max", 0, {"accuracy": 0.5, "auc": 0.5}, fold=fold)
        write_predictions(run, ["a", "b"], np.array([[0.2], [0.8]]), np.array([[0], [1]]), ["parallel"], "binary")
        runs.append(run)
    with pytest.raises(ValueError, match="both seed 0 fold 0; pass each run once"):
        build_table(runs, "ads")


def test_substitutions_listed_under_the_table(tmp_path) -> None:
    paper_store = store(tmp_path / "image.h5", {"model": "resnext101_32x16d_wsl", "substitute": ""})
    stand_in = store(tmp_path / "text.h5", {"model": "sentence-transformers/all-MiniLM-L6-v2",
                                            "substitute": "text backend minilm instead of the paper's RoBERTa"})
    old = store(tmp_path / "boxes.h5", {})  # records no substitution (not written by python -m extract)
    runs = [fake_run(tmp_path, ["image", "text"], "max", 0, f1(0.6),
                     stores={"image": paper_store, "text": f"{stand_in}:features"}),
            fake_run(tmp_path, ["image", "boxes"], "max", 0, f1(0.5),
                     stores={"image": paper_store, "boxes": old}),
            fake_run(tmp_path, ["image"], "max", 0, f1(0.5), stores={"image": paper_store})]
    out = tmp_path / "imdb_table.csv"
    assert main(["paper-table", "--runs", *map(str, runs), "--paper", "imdb", "--out", str(out), *IMDB_LABELS]) == 0
    table = pd.read_csv(out, keep_default_na=False).set_index(["source", "Features"])
    assert table.loc[("dmms", "WSL(i), RoBERTa(t)"), "substitutes"] == (
        "RoBERTa(t): text backend minilm instead of the paper's RoBERTa "
        "(ran sentence-transformers/all-MiniLM-L6-v2)")
    assert table.loc[("dmms", "WSL(i), WSL(bbox)"), "substitutes"] == f"WSL(bbox): {NO_RECORD}"
    assert table.loc[("dmms", "WSL(i)"), "substitutes"] == ""  # the paper's model
    md = out.with_suffix(".md").read_text()
    note = md[md.index("Substitutions"):]
    assert "- RoBERTa(t): text backend minilm instead of the paper's RoBERTa" in note
    assert f"- WSL(bbox): {NO_RECORD}" in note and "WSL(i):" not in note
    clean = build_table(runs[2:], "imdb", LABELS)
    assert clean.attrs["substitutes"] == {}
    assert "Substitutions: none" in to_markdown(clean, "imdb")


def test_trained_runs_end_to_end(tmp_path) -> None:
    """Real run folders: a binary toy whose fine classes carry the Ads names."""
    manifest, stores = make_toy(tmp_path / "toy", n=150, classes=1, folds=3)
    frame = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    frame["fine"] = np.where(frame["labels"] == "", "non-parallel",
                             np.where(np.arange(len(frame)) % 2, "parallel-equivalent", "parallel-non-equivalent"))
    frame.to_csv(manifest, index=False)
    runs = []
    for features, pool in ((["signal"], "max"), (["signal", "noise"], "max"), (["signal", "noise"], "concat_padded")):
        for fold in (0, 1):
            out = tmp_path / "runs" / "_".join(features) / pool / f"fold{fold}"
            assert model_main(["train", "--manifest", str(manifest), *[f"--feature={f}={stores[f]}" for f in features],
                         "--pool", pool, "--seed", "0", "--out", str(out), "--set", f"fold={fold}", *FAST]) == 0
            runs.append(out)
    out = tmp_path / "ads_table.csv"
    assert main(["paper-table", "--runs", *map(str, runs), "--paper", "ads", "--out", str(out),
                 "--label", "signal=WSL(i)", "--label", "noise=RoBERTa(ocr)"]) == 0
    table = pd.read_csv(out)
    ours = table[table["source"] == "dmms"]
    assert len(ours) == 3
    pair = ours[(ours["Features"] == "WSL(i), RoBERTa(ocr)") & (ours["Pool"] == "max")].iloc[0]
    assert pair["paper_accuracy"] == pytest.approx(61.721)
    for column in ("accuracy", "auc", "non_parallel", "parallel_equiv", "parallel_non_equiv"):
        assert 0 <= pair[column] <= 100 and not np.isnan(pair[f"diff_{column}"])
    assert np.isnan(pair["accuracy_std"])  # one seed
    folds = frame["split"].isin(["0", "1"]).sum()
    assert pair["oof_samples"] == folds and 0 <= pair["oof_accuracy"] <= 100 and 0 <= pair["oof_auc"] <= 100
    ids, probs, targets, _, _ = zip(*(read_predictions(r) for r in runs[2:4]))  # the pair's two folds
    y, p = np.concatenate(targets)[:, 0], np.concatenate(probs)[:, 0]
    assert pair["oof_auc"] == pytest.approx(100 * roc_auc(y, p), abs=1e-4)
    assert "Δ" in out.with_suffix(".md").read_text()
    with pytest.raises(ValueError, match="choose one of"):
        build_table(runs, "nope")


def test_ads_cnn_text_rows_match_the_papers(tmp_path) -> None:
    """The objects feature under the CNN-text encoder is labelled `objects:cnn` (config labels),
    so the grid's two CNN-text(objs) combinations meet Table 2's two rows, apart from IE(objs)."""
    import yaml

    config = yaml.safe_load((Path(__file__).resolve().parents[2] / "config/config.yaml").read_text())
    ads = config["datasets"]["ads"]["experiments"]
    labels = dict(ads["labels"])
    keys = ["accuracy", "auc", "accuracy_non_parallel", "accuracy_parallel_equivalent",
            "accuracy_parallel_non_equivalent"]
    runs = []
    for name, combo in ads["combinations"].items():
        run = fake_run(tmp_path / name, combo["features"], "max", 0, {k: 0.6 for k in keys})
        metrics = json.loads((run / "metrics.json").read_text())
        metrics["config"] = {"encoders": combo.get("encoders", {})}
        metrics["feature_kinds"] = {f: "index" if f in ("objects", "naturalness", "concreteness") else "dense"
                                    for f in combo["features"]}
        write_metrics(run, metrics)
        runs.append(run)
    table = build_table(runs, "ads", labels)
    note = to_markdown(table, "ads").split("Reading of the paper: ")[1].split("\n")[0]
    assert note.startswith("IE(con), IE(nat), IE(objs) encode a sample's several indices as ONE element, "
                           "the mean of their learned embeddings")  # the bag encoder, named in the note
    assert "CNN-text(objs) beside IE(objs)" in note
    cnn_only = [r for r, combo in zip(runs, ads["combinations"].values()) if combo.get("encoders")]
    assert "Reading of the paper" not in to_markdown(build_table(cnn_only, "ads", labels), "ads")
    ours = table[table["source"] == "dmms"]
    matched = ours.dropna(subset=["paper_row"])
    cnn = matched[matched["Features"].str.contains("CNN-text(objs)", regex=False)]
    reference = pd.read_csv(Path(__file__).resolve().parents[2] / "config/paper/table2_ads.csv")
    assert sorted(reference.loc[cnn["paper_row"].astype(int), "features"]) == sorted([
        "WSL(i), RoBERTa(ocr), Face(i), CNN-text(objs)",
        "WSL(i), RoBERTa(ocr), Face(i), CNN-text(objs), WSL(bbox)"])
    ie = matched[matched["Features"].str.contains("IE(objs)", regex=False)]
    assert len(ie) == 1 and "CNN-text" not in reference.loc[int(ie["paper_row"].iloc[0]), "features"]
    assert len(matched) == len(ads["combinations"])  # every configured row meets its paper row


def test_store_attributes_are_read_through_the_store_reader(tmp_path):
    """`store_substitute` and `inputs.store_attrs` go through extract/store.py: a real store's attrs
    are read, an HDF5 file that is not a store is refused (raw h5py read it as a store)."""
    import h5py

    from report.paper_table import store_substitute
    from model.inputs import store_attrs

    attrs = {"extractor": "image", "backend": "mobilenet_v2", "dim": 4, "substitute": "MobileNetV2",
             "model": "mobilenet_v2", "row_columns": '["features"]'}
    path = write_store(tmp_path / "s.h5", RaggedStore(["a"], np.array([0, 1]),
                                                      {"features": np.ones((1, 4), np.float16)}, attrs=attrs))
    assert store_substitute("image", f"{path}:features") == "MobileNetV2 (ran mobilenet_v2)"
    assert store_attrs(path) == {"extractor": "image", "backend": "mobilenet_v2", "dim": 4, "model": "mobilenet_v2"}
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as h5:
        h5.attrs.update({"extractor": "image", "substitute": "x"})
    for read in (lambda p: store_substitute("image", p), store_attrs):
        with pytest.raises(ValueError, match="not a dmms-ragged store"):
            read(str(other))
